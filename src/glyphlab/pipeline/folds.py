"""The one k-fold driver: fit a model on each stratified fold's training part and measure it on the held-out part,
folds in parallel worker processes. A search's CV accuracy (:func:`glyphlab.pipeline.search.cv_score`) and the
label audit's out-of-fold probabilities (:func:`glyphlab.pipeline.audit.out_of_fold_proba`) are two measures
over the same folds."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from glyphlab.data.splits import kfold_indices
from glyphlab.models.base import GlyphModel
from glyphlab.models.registry import create_model, model_spec
from glyphlab.models.torch import THREADS_ENV, usable_cores
from glyphlab.pipeline.parallel import in_worker

T = TypeVar("T")
#: what a fold reports: called in the worker with the fitted model, the held-out images, labels and indices
Measure = Callable[[GlyphModel, np.ndarray, np.ndarray, np.ndarray], T]


def fold_workers(model: str, k: int, n_jobs: int | None = None) -> int:
    """Processes to fit ``k`` folds with: one per core (up to k), unless the model spreads its own fit over
    the cores (it takes ``n_jobs``: random forest, XGBoost), where parallel folds would only fight it."""
    # an unknown name (or a missing extra) is one clear error here, not in a worker
    if "n_jobs" in model_spec(model).cls.defaults:
        return 1
    return max(1, min(int(k), int(n_jobs) if n_jobs else usable_cores()))


@dataclass(frozen=True)
class FoldJob:
    """``model`` with ``params`` fitted on each of ``k`` stratified folds of (images, labels), seeded by ``seed``."""

    model: str
    params: dict[str, Any]
    images: np.ndarray
    labels: np.ndarray
    k: int
    seed: int
    #: the output columns every fold model keeps, even when its training part lacks a class
    classes: list[str] | None = None
    #: worker processes at most (default: one per core, see :func:`fold_workers`)
    n_jobs: int | None = None


def _fit_fold(job: FoldJob, train: np.ndarray, held: np.ndarray, measure: Measure[T], threads: int | None) -> T:
    if threads is not None:  # a fold worker process: share the cores with the other folds, not oversubscribe them
        os.environ[THREADS_ENV] = str(threads)
    # one BLAS thread: the many tiny BLAS calls of small classical fits (e.g. the SVC's sigmoid calibration)
    # are several times slower when OpenBLAS threads spin against a busy CPU
    with threadpool_limits(limits=1, user_api="blas"):
        m = create_model(job.model, **job.params)
        m.fit(job.images[train], job.labels[train], classes=job.classes)
        return measure(m, job.images[held], job.labels[held], held)


def over_folds(job: FoldJob, measure: Measure[T]) -> Iterator[T]:
    """``measure`` of each fold of ``job``, in fold order.

    ``measure`` runs in the worker process (a module-level function, so it travels there); the results do
    not depend on how many workers run (:func:`fold_workers`).
    """
    folds = kfold_indices(job.labels, job.k, job.seed)
    workers = fold_workers(job.model, len(folds), job.n_jobs)
    if workers == 1:
        for train, held in folds:
            yield _fit_fold(job, train, held, measure, None)
        return
    threads = max(1, usable_cores() // workers)
    yield from Parallel(n_jobs=workers, return_as="generator")(
        delayed(in_worker)(_fit_fold, job, train, held, measure, threads) for train, held in folds
    )
