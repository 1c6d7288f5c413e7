"""report.html is built from the run folder alone: self-contained, one leaderboard row per model, and it still
builds after the models' weights are deleted."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from glyphlab.cli import app
from glyphlab.errors import GlyphlabError
from glyphlab.reporting import figures
from glyphlab.reporting.feature_map import feature_map_model
from glyphlab.reporting.html import build_report
from glyphlab.runfolder import TSNE_CACHE

REPORT_MODELS = ["logreg", "random-forest"]  # as in conftest.py


class _Page(HTMLParser):
    """The bits of the page the tests look at: images, links, leaderboard rows, section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.external: list[str] = []
        self.ids: list[str] = []
        self.leaderboard_rows: list[str] = []
        self._in_leaderboard = self._in_body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href"):
            v = a.get(key)
            if v and not (v.startswith("data:") or v.startswith("#")):
                self.external.append(v)
        if tag == "link":
            self.external.append(str(a))
        if tag == "table" and a.get("id") == "leaderboard-table":
            self._in_leaderboard = True
        if self._in_leaderboard and tag == "tbody":
            self._in_body = True
        if self._in_body and tag == "tr":
            self.leaderboard_rows.append(a.get("data-model", ""))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_leaderboard = self._in_body = False


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_is_self_contained(built_report: Path, report_run: Path):
    assert built_report == report_run / "report.html"
    page = _parse(built_report)
    assert sorted(page.leaderboard_rows) == sorted(REPORT_MODELS)
    assert page.external == []  # no network, no files beside the page
    assert page.imgs and all(src.startswith("data:image/png;base64,") for src in page.imgs)
    # dataset figures (3) + scatter + per model (2 confusions, pairs, gallery) + t-SNE
    assert len(page.imgs) >= 3 + 1 + 4 * len(REPORT_MODELS) + 1
    for section in (
        "overview",
        "dataset",
        "leaderboard",
        "feature-map",
        "environment",
        *(f"model-{m}" for m in REPORT_MODELS),
    ):
        assert section in page.ids
    text = built_report.read_text(encoding="utf-8")
    assert "<script src" not in text and "@import" not in text and "url(http" not in text
    assert "→" in text and "scikit-learn" in text  # gallery caption, library versions
    assert built_report.stat().st_size < 5_000_000


def test_rebuild_without_weights_reuses_the_feature_map(built_report: Path, report_run: Path):
    """Delete every model/ folder, add what later steps may leave (robustness sweep, a network's history.csv
    without its figure) and rebuild through `glyphlab report`: no model is needed and the t-SNE is not redone."""
    best = _leaderboard_order(report_run)[0]
    assert feature_map_model(report_run, [{"model": m} for m in _leaderboard_order(report_run)]) == best
    cache = report_run / "models" / best / TSNE_CACHE
    assert cache.is_file()
    with np.load(cache) as z:
        assert z["xy"].shape == (len(z["labels"]), 2)
    stamp = cache.stat().st_mtime_ns
    for m in REPORT_MODELS:
        shutil.rmtree(report_run / "models" / m / "model", ignore_errors=True)
    (report_run / "robustness.csv").write_text("model,angle,accuracy\nlogreg,0,0.97\nlogreg,30,0.61\n")
    (report_run / "robustness.png").write_bytes(figures.learning_curves([{"epoch": 1, "train_acc": 0.5}]))
    (report_run / "models" / best / "history.csv").write_text(  # now the best model is also the best "network"
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,1.0,0.6,0.9,0.7,0.001,0.5\n"
        "2,0.5,0.8,0.6,0.75,0.001,0.5\n"
    )
    try:
        result = CliRunner().invoke(app, ["report", str(report_run)])
        assert result.exit_code == 0, result.output
        path = report_run / "report.html"
        assert cache.stat().st_mtime_ns == stamp  # the embedding was reused, not recomputed
        page = _parse(path)
        assert sorted(page.leaderboard_rows) == sorted(REPORT_MODELS)
        assert "robustness" in page.ids
        text = path.read_text(encoding="utf-8")
        assert "weights not kept" in text and "Learning curves" in text
        assert "(weights not kept): no attributions" in text  # the attributions say why they are missing
        assert "best validation accuracy 0.7500 at epoch 2" in text
    finally:  # leave the shared run as the other tests expect it
        (report_run / "models" / best / "history.csv").unlink()


def _leaderboard_order(run_dir: Path) -> list[str]:
    import csv

    with open(run_dir / "leaderboard.csv", newline="") as fh:
        return [r["model"] for r in csv.DictReader(fh)]


def test_feature_map_prefers_the_best_network(tmp_path: Path):
    for name in ("svm", "mlp", "cnn"):
        d = tmp_path / "models" / name
        d.mkdir(parents=True)
        (d / "features.npz").write_bytes(b"")
    (tmp_path / "models" / "mlp" / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    (tmp_path / "models" / "cnn" / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    rows = [{"model": m} for m in ("svm", "cnn", "mlp")]  # leaderboard order: best first
    assert feature_map_model(tmp_path, rows) == "cnn"
    assert feature_map_model(tmp_path, [{"model": "svm"}]) == "svm"


def test_figures_return_png():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 10)
    classes = list("abcd")
    for png in (
        figures.sample_grid(images, labels, classes),
        figures.mean_images(images, labels, classes),
        figures.class_distribution(classes, {"train": [5, 6, 7, 8], "test": [1, 2, 3, 4]}),
        figures.embedding_scatter(rng.normal(size=(40, 2)), labels, classes),
    ):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    proba = np.full((40, 4), 0.1, np.float32)
    proba[np.arange(40), (labels + 1) % 4] = 0.7  # all wrong
    png, n_wrong = figures.confident_mistakes(images, labels, (labels + 1) % 4, proba, classes)
    assert png and n_wrong == 40
    assert figures.confident_mistakes(images, labels, labels, proba, classes) == (None, 0)


def test_not_a_run_folder(tmp_path: Path):
    with pytest.raises(GlyphlabError, match="not a glyphlab run folder"):
        build_report(tmp_path)
    with pytest.raises(GlyphlabError, match="not a folder"):
        build_report(tmp_path / "missing")
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a glyphlab run folder" in " ".join(result.output.split())


def test_pdf_without_a_browser_says_how_to_install(report_run: Path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GlyphlabError, match="apt-get install chromium"):
        build_report(report_run, pdf=True)
