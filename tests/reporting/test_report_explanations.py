"""The report's attributions: computed from the saved model at report time (occlusion for a classical model,
Integrated Gradients for a network), cached, and skipped with a note when the weights are gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from glyphlab.evaluation.attributions import has_captum
from glyphlab.models.registry import create_model
from glyphlab.reporting.explanations import attribution_part, choose_images
from glyphlab.reporting.html import build_report
from glyphlab.runfolder import ATTRIBUTIONS_CACHE, ModelFolder


def test_report_shows_attributions_of_confused_pairs_and_top_losses(
    built_report: Path, report_run: Path, tmp_path: Path
):
    run = tmp_path / "run"
    shutil.copytree(report_run, run)  # with its t-SNE cache; the shared run stays as the other tests expect it
    page = build_report(run).read_text(encoding="utf-8")
    assert page.count("attributions of the most-confused pairs") == 2  # logreg and random-forest
    assert page.count("attributions of the top losses") == 2
    assert page.count("occlusion — occlusion of the class probability (numpy)") == 2
    cache = run / "models" / "logreg" / ATTRIBUTIONS_CACHE
    stamp = cache.stat().st_mtime_ns
    build_report(run)
    assert cache.stat().st_mtime_ns == stamp  # a rebuild reuses the arrays
    shutil.rmtree(run / "models" / "logreg" / "model")
    page = build_report(run).read_text(encoding="utf-8")
    assert page.count("attributions of the top losses") == 1
    assert "no saved model in logreg/model/ (weights not kept): no attributions" in page


@pytest.mark.skipif(not has_captum(), reason="ig needs pip install 'glyphlab[explain]'")
def test_a_network_is_explained_with_integrated_gradients(digits, tmp_path: Path):
    tr, te = digits.splits["train"], digits.splits["test"]
    model = create_model("cnn-small", epochs=1, progress=False, device="cpu", patience=0)
    model.fit(tr.images[:300], tr.labels[:300], tr.images[300:400], tr.labels[300:400], classes=digits.classes)
    model.save(tmp_path / "cnn-small" / "model")
    proba = model.predict_proba(te.images[:60])
    pred = {"y_true": te.labels[:60], "y_pred": proba.argmax(1), "proba": proba, "index": np.arange(60)}
    pairs = [
        {"true": str(digits.classes[t]), "predicted": str(digits.classes[p])}
        for t, p in zip(pred["y_true"], pred["y_pred"])
        if t != p
    ][:1]
    part = attribution_part(
        ModelFolder(tmp_path / "cnn-small"), (te.images[:60] * 255).astype(np.uint8), pred, list(digits.classes), pairs
    )
    assert part["skipped"] is None and part["method"] == "ig"
    assert part["losses"][:8] == b"\x89PNG\r\n\x1a\n"
    assert (part["pairs"] is not None) == bool(pairs)


def test_choose_images_picks_the_pair_and_the_largest_losses():
    classes = ["a", "b", "c"]
    y_true = np.array([0, 0, 1, 2, 0])
    y_pred = np.array([1, 1, 1, 2, 2])
    proba = np.array([[0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.05, 0.05, 0.9]])
    pr, pt, _, lr, lt, _ = choose_images(
        {"y_true": y_true, "y_pred": y_pred, "proba": proba}, classes, [{"true": "a", "predicted": "b"}]
    )
    assert pr == [1, 0]  # surest first
    assert pt.tolist() == [[1, 0], [1, 0]]  # why b (predicted) and not a (true)
    assert lr[:3] == [4, 1, 0]  # -log p(true): 0.05 < 0.1 < 0.3
    assert lt[0].tolist() == [2, 0]
