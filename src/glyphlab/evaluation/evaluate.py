"""Turn a model's saved predictions into its metrics, tables and figures.

Like fastai's ``Interpretation``: everything here reads ``predictions.npz`` (and the run's saved test
images), so reports and re-evaluations never need the model or the process that trained it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.evaluation.calibration import calibration_summary, plot_reliability
from glyphlab.evaluation.metrics import compute_metrics, confusion, most_confused, per_class_report
from glyphlab.evaluation.plots import plot_confusion, plot_most_confused
from glyphlab.evaluation.significance import wilson_interval
from glyphlab.fileio import atomic_open, write_csv
from glyphlab.runfolder import (
    CLASSIFICATION_REPORT, CONFUSION_COUNTS, CONFUSION_NORMALIZED_PNG, CONFUSION_PNG, MOST_CONFUSED_CSV,
    MOST_CONFUSED_PNG, RELIABILITY_PNG, ModelFolder,
)


def evaluate_predictions(
    directory: Path,
    classes: list[str],
    images: np.ndarray | None,
    title: str,
    extra: dict[str, Any] | None = None,
    top_pairs: int = 8,
) -> dict[str, Any]:
    """Write metrics.json (with the calibration error and a 95 % interval of the accuracy), the classification
    report, both confusion matrices, the most-confused pairs and the reliability diagram."""
    folder = ModelFolder(directory)
    pred = folder.read_predictions()
    y_true, y_pred = pred["y_true"], pred["y_pred"]
    n = len(classes)
    metrics = {**compute_metrics(y_true, y_pred, n), **calibration_summary(y_true, pred["proba"]), **(extra or {})}
    metrics["accuracy_ci95"] = list(wilson_interval(int((y_true == y_pred).sum()), len(y_true)))
    folder.write_metrics(metrics)
    write_csv(folder.file(CLASSIFICATION_REPORT), per_class_report(y_true, y_pred, classes))
    cm = confusion(y_true, y_pred, n)
    with atomic_open(folder.file(CONFUSION_COUNTS), "w") as fh:
        np.savetxt(fh, cm, fmt="%d", delimiter=",", header=",".join(classes), comments="")
    plot_confusion(cm, classes, folder.file(CONFUSION_PNG), f"{title}: confusion matrix (counts)", normalized=False)
    plot_confusion(confusion(y_true, y_pred, n, normalize=True), classes, folder.file(CONFUSION_NORMALIZED_PNG),
                   f"{title}: confusion matrix (row-normalised)", normalized=True)
    plot_reliability(y_true, pred["proba"], folder.file(RELIABILITY_PNG), f"{title}: reliability")
    pairs = most_confused(cm, classes, k=top_pairs)
    write_csv(folder.file(MOST_CONFUSED_CSV), pairs,
              columns=["true", "predicted", "true_index", "predicted_index", "count", "rate"])
    if images is not None:
        plot_most_confused(pairs, images[pred["index"]], y_true, y_pred, folder.file(MOST_CONFUSED_PNG),
                           f"{title}: most-confused pairs (true → predicted)")
    return metrics
