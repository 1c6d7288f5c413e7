"""How a trial is scored: classical models by stratified k-fold CV accuracy on train+val (folds in parallel
processes), networks by their validation accuracy, reported epoch by epoch to the pruner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from glyphlab.data.splits import kfold_indices
from glyphlab.models.registry import create_model, with_seed
from glyphlab.models.torch import usable_cores
from glyphlab.pipeline.parallel import in_worker
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


def _fold_score(
    model: str,
    params: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    classes: list[str] | None,
) -> float:
    # one BLAS thread: the many tiny BLAS calls of small classical fits (e.g. the SVC's sigmoid calibration)
    # are several times slower when OpenBLAS threads spin against a busy CPU
    with threadpool_limits(limits=1, user_api="blas"):
        m = create_model(model, **params)
        m.fit(images[train], labels[train], classes=classes)
        return float(m.score(images[val], labels[val]))


def fold_workers(model: str, k: int, n_jobs: int | None = None) -> int:
    """Processes to score ``k`` folds with: one per core (up to k), unless the model spreads its own fit over
    the cores (it takes ``n_jobs``: random forest, XGBoost), where parallel folds would only fight it."""
    if "n_jobs" in model_defaults(model):
        return 1
    return max(1, min(int(k), int(n_jobs) if n_jobs else usable_cores()))


def cv_score(
    model: str,
    params: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    k: int,
    seed: int,
    classes: list[str] | None = None,
    on_fold: Callable[[int, float], None] | None = None,
    n_jobs: int | None = None,
) -> tuple[float, float, list[float]]:
    """Stratified k-fold accuracy (mean, std, per fold) of ``model`` with ``params`` on (images, labels).

    Folds are independent fits, so they run in parallel worker processes (:func:`fold_workers`; libsvm and
    most scikit-learn fits use one core each); the scores do not depend on how many run at once.
    """
    folds = list(kfold_indices(labels, k, seed))
    workers = fold_workers(model, len(folds), n_jobs)
    if workers == 1:
        scores_iter = (_fold_score(model, params, images, labels, tr, va, classes) for tr, va in folds)
    else:
        scores_iter = Parallel(n_jobs=workers, return_as="generator")(
            delayed(in_worker)(_fold_score, model, params, images, labels, tr, va, classes) for tr, va in folds
        )
    scores: list[float] = []
    for i, score in enumerate(scores_iter):
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
