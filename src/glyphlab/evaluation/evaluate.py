"""Turn saved predictions into metrics, tables and figures.

Like fastai's ``Interpretation``: everything here reads ``predictions.npz`` (and the run's saved test
images), so reports and re-evaluations never need the model or the process that trained it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.errors import GlyphlabError
from glyphlab.io import read_csv, write_csv  # noqa: F401  (read_csv: re-exported for older imports)
from glyphlab.evaluation.metrics import compute_metrics, confusion, most_confused, per_class_report
from glyphlab.evaluation.plots import plot_confusion, plot_most_confused

PREDICTIONS = "predictions.npz"


def save_predictions(directory: Path, y_true: np.ndarray, proba: np.ndarray, index: np.ndarray | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PREDICTIONS
    np.savez_compressed(
        path,
        y_true=np.asarray(y_true, dtype=np.int64),
        y_pred=np.asarray(proba).argmax(axis=1).astype(np.int64),
        proba=np.asarray(proba, dtype=np.float32),
        index=np.arange(len(y_true)) if index is None else np.asarray(index),
    )
    return path


def load_predictions(directory: Path) -> dict[str, np.ndarray]:
    path = Path(directory) / PREDICTIONS
    if not path.is_file():
        raise GlyphlabError(f"no {PREDICTIONS} in {directory}: was this model evaluated? Run `glyphlab evaluate`.")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def evaluate_predictions(
    directory: Path,
    classes: list[str],
    images: np.ndarray | None,
    title: str,
    extra: dict[str, Any] | None = None,
    top_pairs: int = 8,
) -> dict[str, Any]:
    """Write metrics.json, the classification report, both confusion matrices and the most-confused pairs."""
    directory = Path(directory)
    pred = load_predictions(directory)
    y_true, y_pred = pred["y_true"], pred["y_pred"]
    n = len(classes)
    metrics = {**compute_metrics(y_true, y_pred, n), **(extra or {})}
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_csv(directory / "classification_report.csv", per_class_report(y_true, y_pred, classes))
    cm = confusion(y_true, y_pred, n)
    np.savetxt(directory / "confusion_counts.csv", cm.astype(np.int64), fmt="%d", delimiter=",",
               header=",".join(classes), comments="")
    plot_confusion(cm, classes, directory / "confusion.png", f"{title}: confusion matrix (counts)", normalized=False)
    plot_confusion(confusion(y_true, y_pred, n, normalize=True), classes, directory / "confusion_normalized.png",
                   f"{title}: confusion matrix (row-normalised)", normalized=True)
    pairs = most_confused(cm, classes, k=top_pairs)
    write_csv(directory / "most_confused.csv", pairs)
    if images is not None:
        plot_most_confused(pairs, images[pred["index"]], y_true, y_pred, directory / "most_confused.png",
                           f"{title}: most-confused pairs (true → predicted)")
    return metrics
