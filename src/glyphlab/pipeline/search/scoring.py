"""How a trial is scored: classical models by stratified k-fold CV accuracy on train+val (folds in parallel
processes), networks by their validation accuracy, reported epoch by epoch to the pruner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from glyphlab.models.base import GlyphModel
from glyphlab.models.registry import create_model, with_seed
from glyphlab.pipeline.folds import FoldJob, over_folds
from glyphlab.pipeline.search.space import model_defaults


class EpochReporter:
    """An epoch callback that reports validation accuracy to an Optuna trial and prunes.

    Passed to ``fit(callbacks=[...])``, which calls it after every epoch, so a pruned trial stops training
    there; epochs already reported are skipped when ``model.history_`` is replayed after fit.
    """

    def __init__(self, trial) -> None:
        self.trial = trial
        self.reported: set[int] = set()

    def __call__(self, row: dict[str, Any]) -> None:
        import optuna  # the search extra; a trial only exists when it is installed

        value = row.get("val_acc")
        epoch = int(row.get("epoch", len(self.reported) + 1))
        if value is None or epoch in self.reported:
            return
        self.reported.add(epoch)
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} (val_acc {value:.4f})")


def model_params(model: str, params: dict[str, Any], fixed: dict[str, Any], seed: int) -> dict[str, Any]:
    """Trial parameters: fixed + searched, the run seed when the model takes one, and no per-epoch output."""
    out = with_seed(model, {**fixed, **params}, seed)
    if "progress" in model_defaults(model) and "progress" not in out:
        out["progress"] = False
    return out


def _accuracy(model: GlyphModel, images: np.ndarray, labels: np.ndarray, held: np.ndarray) -> float:
    return float(model.score(images, labels))


def cv_score(job: FoldJob, on_fold: Callable[[int, float], None] | None = None) -> tuple[float, float, list[float]]:
    """Stratified k-fold accuracy (mean, std, per fold) of ``job``'s model and parameters on its images.

    Folds are independent fits, so they run in parallel worker processes (:func:`~glyphlab.pipeline.folds.
    over_folds`; libsvm and most scikit-learn fits use one core each); the scores do not depend on how many
    run at once.
    """
    scores: list[float] = []
    for i, score in enumerate(over_folds(job, _accuracy)):
        scores.append(score)
        if on_fold is not None:
            on_fold(i, score)
    return float(np.mean(scores)), float(np.std(scores)), scores


def validation_score(
    model: str, params: dict[str, Any], train, val, classes: list[str], reporter: EpochReporter | None = None
) -> float:
    """A network's accuracy on the validation split after training (its best epoch restored)."""
    m = create_model(model, **params)
    m.fit(
        train.images,
        train.labels,
        val.images,
        val.labels,
        classes=classes,
        callbacks=[reporter] if reporter is not None else (),
    )
    if reporter is not None:
        for row in m.history_:
            reporter(row)
    return m.score(val.images, val.labels)
