"""Turn a model's saved predictions into its metrics, tables and figures (the files of ``models/NAME/``).

Like fastai's ``Interpretation``: everything here reads ``predictions.npz`` (and the run's saved test
images) through :class:`~glyphlab.evaluation.interpretation.Interpretation`, so reports and re-evaluations
never need the model or the process that trained it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.evaluation.calibration import calibration_summary, plot_reliability
from glyphlab.evaluation.interpretation import Interpretation
from glyphlab.evaluation.metrics import most_confused, per_class_report
from glyphlab.evaluation.plots import save_figure
from glyphlab.evaluation.significance import wilson_interval
from glyphlab.fileio import atomic_open, write_csv
from glyphlab.runfolder import (
    CLASSIFICATION_REPORT,
    CONFUSION_COUNTS,
    CONFUSION_NORMALIZED_PNG,
    CONFUSION_PNG,
    MOST_CONFUSED_CSV,
    MOST_CONFUSED_PNG,
    RELIABILITY_PNG,
    ModelFolder,
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
    report, both confusion matrices, the most-confused pairs and the reliability diagram.

    ``images`` are the test images the predictions' ``index`` points into (None: no example figure).
    """
    folder = ModelFolder(directory)
    it = Interpretation.from_model_folder(folder, classes, images)
    metrics = {**it.metrics(), **calibration_summary(it.y_true, it.proba), **(extra or {})}
    metrics["accuracy_ci95"] = list(wilson_interval(int((it.y_true == it.y_pred).sum()), len(it.y_true)))
    folder.write_metrics(metrics)
    write_csv(folder.file(CLASSIFICATION_REPORT), per_class_report(it.y_true, it.y_pred, classes))
    with atomic_open(folder.file(CONFUSION_COUNTS), "w") as fh:
        np.savetxt(fh, it.confusion_matrix().to_numpy(), fmt="%d", delimiter=",", header=",".join(classes), comments="")
    save_figure(it.plot_confusion_matrix(title=f"{title}: confusion matrix (counts)"), folder.file(CONFUSION_PNG))
    save_figure(
        it.plot_confusion_matrix(normalize=True, title=f"{title}: confusion matrix (row-normalised)"),
        folder.file(CONFUSION_NORMALIZED_PNG),
    )
    plot_reliability(it.y_true, it.proba, folder.file(RELIABILITY_PNG), f"{title}: reliability")
    pairs = most_confused(it.confusion_matrix().to_numpy(), classes, k=top_pairs)  # with the class indices
    write_csv(
        folder.file(MOST_CONFUSED_CSV),
        pairs,
        columns=["true", "predicted", "true_index", "predicted_index", "count", "rate"],
    )
    if it.images is not None and pairs:
        save_figure(
            it.plot_most_confused(top_pairs, title=f"{title}: most-confused pairs (true → predicted)"),
            folder.file(MOST_CONFUSED_PNG),
        )
    return metrics
