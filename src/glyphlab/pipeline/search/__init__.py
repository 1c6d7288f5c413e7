"""Hyper-parameter search with Optuna: ``glyphlab search``.

A *space file* (TOML, validated by pydantic: :mod:`.space`) declares the parameters to search, the model
they are for and parameters fixed in every trial.

Scores (:mod:`.scoring`): classical models get a stratified k-fold cross-validation accuracy (mean and std)
on train+val; networks are scored on the validation split (their best epoch's accuracy), and their
per-epoch validation accuracies are reported to the pruner through an epoch callback.

Every trial is recorded in an Optuna storage (:mod:`.study`): by default ``sqlite:///RUN/study.db`` in the
run folder, so rerunning the same command resumes the study: finished trials are kept, trials left RUNNING
by a killed process are marked FAIL and their parameters asked again (:mod:`.workers`), and only the missing
trials are run. The sampler (:mod:`.samplers`) continues the study rather than replaying it:
trial ``n`` draws from a random
stream seeded by the search's seed and ``n``, so a resumed or second worker never re-asks points the study
already scored, and the grid sampler skips grid points already finished. With a shared
``--storage postgresql://...`` and ``--study NAME`` several workers on several machines fill one study; each
stops when the study holds ``--trials`` finished trials (COMPLETE or PRUNED), and the total is exact: a
trial numbered beyond the budget by a race between workers is dropped before it runs (marked FAIL,
``surplus``). Dead workers on other machines are detected by Optuna's heartbeat (``HEARTBEAT_GRACE_S``).

At the end (:mod:`.outputs`): ``trials.csv``, ``best_params.json``, ``optimization_history.png``,
``param_importance.png`` (when at least two parameters and enough trials), then the best parameters are
refit on train+val and evaluated once on the test split as a normal run model folder ``RUN/models/MODEL-best``
with the leaderboard.

Space files validate on a core install; running a search needs the ``search`` extra (Optuna), so the names
that need it are imported from :mod:`.study`, :mod:`.samplers`, :mod:`.workers` and :mod:`.outputs` only when
first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from glyphlab.pipeline.search.scoring import EpochReporter, cv_score, model_params, validation_score
from glyphlab.pipeline.search.space import (
    ParamSpec,
    SearchSpace,
    builtin_spaces,
    decode_params,
    find_space,
    load_space,
    model_defaults,
    parse_space,
)

#: names that import Optuna (the search extra), by the module that holds them
_NEEDS_OPTUNA = {
    "SearchConfig": "study",
    "run_search": "study",
    "refit_best": "study",
    "make_sampler": "samplers",
    "make_pruner": "study",
    "default_out": "study",
    "SAMPLERS": "study",
    "PRUNERS": "study",
    "reap_dead_trials": "workers",
    "make_storage": "workers",
    "redact": "workers",
    "worker_id": "workers",
    "trial_rows": "outputs",
    "write_outputs": "outputs",
    "plot_history": "outputs",
    "plot_importance": "outputs",
}


def __getattr__(name: str) -> Any:
    """Lazy re-exports (PEP 562): ``from glyphlab.pipeline.search import run_search`` imports Optuna then."""
    module = _NEEDS_OPTUNA.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "EpochReporter",
    "ParamSpec",
    "SearchSpace",
    "builtin_spaces",
    "cv_score",
    "decode_params",
    "find_space",
    "load_space",
    "model_defaults",
    "model_params",
    "parse_space",
    "validation_score",
    *_NEEDS_OPTUNA,
]
