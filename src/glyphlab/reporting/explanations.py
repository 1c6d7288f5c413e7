"""The report's attribution figures: why the model confused its most-confused pairs, and its top losses.

Unlike the rest of the report this needs the model: attributions are computed at report time from the saved
``models/NAME/model/`` folder and the run's ``test_images.npz``. Without the saved model (or its optional
packages) the section is skipped with a note that says why. The arrays are cached in
``models/NAME/attributions.npz`` under a key made of the model's manifest, the chosen images and the method,
so rebuilding a report costs nothing once they are computed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from glyphlab.errors import GlyphlabError
from glyphlab.evaluation.attributions import Explainer, Explanation
from glyphlab.fileio import atomic_open
from glyphlab.models.persistence import load_model
from glyphlab.runfolder import ATTRIBUTIONS_CACHE, MANIFEST, ModelFolder, read_npz

#: images per most-confused pair, pairs shown, top losses shown
PER_PAIR = 2
PAIRS = 3
TOP_LOSSES = 6


def choose_images(
    pred: dict[str, np.ndarray], classes: list[str], confused: list[dict[str, Any]]
) -> tuple[list[int], np.ndarray, list[str], list[int], np.ndarray, list[str]]:
    """Rows of predictions.npz to explain, with (predicted, other) targets and titles, for two figures.

    Most-confused pairs: the test images of each (true a, predicted b) pair the model was surest of, explained as
    "why b and not a". Top losses: the largest -log p(true), explained as predicted vs true (vs runner-up when
    the prediction was right)."""
    y_true, y_pred = pred["y_true"].astype(np.int64), pred["y_pred"].astype(np.int64)
    proba = np.asarray(pred["proba"], dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    pair_rows: list[int] = []
    for p in confused[:PAIRS]:
        a, b = index.get(str(p.get("true"))), index.get(str(p.get("predicted")))
        if a is None or b is None:
            continue
        rows = np.flatnonzero((y_true == a) & (y_pred == b))
        pair_rows += [int(r) for r in rows[np.argsort(-proba[rows, b], kind="stable")][:PER_PAIR]]
    pair_targets = np.array([[y_pred[r], y_true[r]] for r in pair_rows], dtype=np.int64).reshape(-1, 2)
    pair_titles = [f"true {classes[y_true[r]]}" for r in pair_rows]
    loss = -np.log(np.clip(proba[np.arange(len(y_true)), y_true], 1e-12, 1.0))
    loss_rows = [int(r) for r in np.argsort(-loss, kind="stable")[:TOP_LOSSES]]
    runner = np.argsort(-proba, axis=1, kind="stable")[:, 1]
    loss_targets = np.array(
        [[y_pred[r], y_true[r] if y_true[r] != y_pred[r] else runner[r]] for r in loss_rows], dtype=np.int64
    ).reshape(-1, 2)
    loss_titles = [f"true {classes[y_true[r]]}, loss {loss[r]:.1f}" for r in loss_rows]
    return pair_rows, pair_targets, pair_titles, loss_rows, loss_targets, loss_titles


def _cache_key(folder: ModelFolder, rows: list[int], targets: np.ndarray) -> str:
    manifest = (folder.model_path / MANIFEST).read_bytes()
    return hashlib.sha256(manifest + json.dumps(rows).encode() + targets.tobytes()).hexdigest()


def _explain(folder: ModelFolder, x: np.ndarray, rows: list[int], targets: np.ndarray) -> Explanation:
    key = _cache_key(folder, rows, targets)
    cache = folder.file(ATTRIBUTIONS_CACHE)
    c = read_npz(cache)  # a missing or damaged cache is recomputed
    if c is not None and str(c.get("key")) == key and {"method", "classes", "probabilities", "attributions"} <= set(c):
        return Explanation(
            method=str(c["method"]),
            classes=[str(s) for s in c["classes"]],
            images=x,
            targets=targets,
            probabilities=c["probabilities"],
            attributions=c["attributions"],
            note=str(c.get("note", "")),
        )
    model = load_model(folder.model_path)
    expl = Explainer(model).explain(x, "auto", targets)
    try:
        with atomic_open(cache, "wb") as fh:
            np.savez_compressed(
                fh,
                key=np.array(key),
                method=np.array(expl.method),
                note=np.array(expl.note),
                classes=np.array(expl.classes),
                probabilities=expl.probabilities,
                attributions=expl.attributions,
            )
    except OSError:  # a read-only run folder still gets its report
        pass
    return expl


def attribution_part(
    folder: ModelFolder,
    images: np.ndarray | None,
    pred: dict[str, np.ndarray] | None,
    classes: list[str],
    confused: list[dict[str, Any]],
) -> dict[str, Any]:
    """``{"pairs": PNG, "losses": PNG, "method", "note", "skipped": None}``, or ``skipped`` saying why not."""
    part: dict[str, Any] = {"skipped": None, "method": "", "note": "", "pairs": None, "losses": None}
    if not folder.has_saved_model:
        why = f"no saved model in {folder.name}/{folder.model_path.name}/ (weights not kept): no attributions"
        return {**part, "skipped": why}
    if images is None or pred is None or not {"y_true", "y_pred", "proba"} <= set(pred):
        return {**part, "skipped": "no predictions.npz or test images: no attributions"}
    index = pred.get("index", np.arange(len(pred["y_true"])))
    if not len(index) or int(np.max(index)) >= len(images):
        return {**part, "skipped": "predictions.npz does not match test_images.npz: no attributions"}
    x_all = np.asarray(images, dtype=np.float32)
    if x_all.max() > 1.0:  # test_images.npz keeps uint8 0-255
        x_all = x_all / 255.0
    pr, pt, ptitles, lr, lt, ltitles = choose_images(pred, classes, confused)
    rows = pr + lr
    targets = np.concatenate([pt, lt])
    try:
        expl = _explain(folder, x_all[index[rows]], rows, targets)
    except (GlyphlabError, ImportError) as exc:
        return {**part, "skipped": f"attributions not computed: {exc}"}
    n = len(pr)
    return {
        **part,
        "method": expl.method,
        "note": expl.note,
        "pairs": expl.to_png(list(range(n)), ptitles, dpi=80) if n else None,
        "losses": expl.to_png(list(range(n, len(rows))), ltitles, dpi=80) if len(lr) else None,
    }
