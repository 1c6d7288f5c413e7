"""The search itself: a study in an Optuna storage, the sampler and pruner, the loop that runs trials until the
study holds ``--trials`` finished ones, and the refit of the best parameters (see the package docstring)."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from glyphlab.data.spec import DataSpec
from glyphlab.data.splits import merge_splits
from glyphlab.errors import ConfigError, GlyphlabError
from glyphlab.events import (
    Note,
    Observer,
    RunFinished,
    SearchFinished,
    SearchStarted,
    TaskAdvanced,
    TaskEnded,
    TaskStarted,
    Tracked,
    TrialFinished,
    emit,
    observing,
)
from glyphlab.fileio import write_json
from glyphlab.models.registry import model_spec
from glyphlab.pipeline.folds import FoldJob
from glyphlab.pipeline.run import RunConfig, load_run_dataset, run
from glyphlab.pipeline.search.outputs import write_outputs
from glyphlab.pipeline.search.samplers import make_sampler
from glyphlab.pipeline.search.scoring import EpochReporter, cv_score, model_params, validation_score
from glyphlab.pipeline.search.space import decode_params, find_space, load_space
from glyphlab.pipeline.search.workers import make_storage, reap_dead_trials, redact, worker_id
from glyphlab.runfolder import RunFolder
from glyphlab.tracking import TrackerObserver, open_tracker

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_CV = 5
MAX_CONSECUTIVE_FAILURES = 3
WAIT_POLL_S = 2.0
STUDY_DB = "study.db"


@dataclass
class SearchConfig(DataSpec):
    """The data (:class:`DataSpec`) and the search on it."""

    model: str | None = None
    space: str = "svm-default"
    trials: int = 20
    cv: int | None = None
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    storage: str | None = None
    study: str | None = None
    out: str | None = None
    val_fraction: float = 0.1
    refit: bool = True

    def validate(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.cv is not None and self.cv < 2:
            raise ConfigError(f"--cv must be at least 2, got {self.cv}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError("--timeout must be positive")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def default_out(cfg: SearchConfig, space_path: Path) -> Path:
    """Deterministic (no date), so rerunning the same command finds the same folder and study."""
    return Path("runs") / _slug(f"search-{Path(cfg.dataset).name}-{cfg.model}-{space_path.stem}")


def make_pruner(name: str):
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


class SurplusTrial(Exception):
    """A worker asked a trial beyond the budget (a race with another worker): dropped before it runs."""


FINISHED_NAMES = ("COMPLETE", "PRUNED")


def _finished(study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _check_study_attrs(study, expected: dict[str, Any]) -> None:
    """The first worker records what the study is (one attribute, so a concurrent worker never sees half of it);
    later workers and reruns must match it."""
    expected = json.loads(json.dumps(expected))
    have = study.user_attrs.get("glyphlab_search")
    if have is None:
        study.set_user_attr("glyphlab_search", expected)
        study.set_user_attr("score", expected.get("score"))
        return
    diff = [f"{k}: study has {have.get(k)!r}, this command {v!r}" for k, v in expected.items() if have.get(k) != v]
    if diff:
        raise ConfigError(
            f"study '{study.study_name}' was created by a different search ({'; '.join(diff)}): "
            "rerun with the same options, or pass --study NEW_NAME (or another --out)"
        )


@dataclass
class _Search:
    """A search being run: the settings resolved from the config, the data, and the Optuna study."""

    cfg: SearchConfig
    space_path: Path
    space: Any
    model: str
    is_net: bool
    k: int
    out: Path
    url: str
    study_name: str
    target: int
    ds: Any = None
    pool: Any = None
    study: Any = None

    @property
    def score_name(self) -> str:
        return "val acc" if self.is_net else f"{self.k}-fold CV"


def run_search(
    cfg: SearchConfig,
    track: str | None = None,
    tracking_uri: str | None = None,
    observers: Sequence[Observer] = (),
) -> Path:
    """Run (or resume) the study of ``cfg``; with ``track``, each finished trial is a nested run of one tracked
    search run, and the refit model joins it (see :mod:`glyphlab.tracking`). ``observers`` get its events."""
    with observing(*observers):
        search = _open_search(cfg)
        emit(
            SearchStarted(
                search.model,
                search.ds.name,
                len(search.pool),
                search.space_path.stem,
                tuple(search.space.params),
                search.score_name,
                cfg.sampler,
                cfg.pruner if search.is_net else "none (classical)",
                search.study_name,
                redact(search.url),
                search.out,
            )
        )
        tracker = open_tracker(
            track,
            search.out,
            name=f"search-{search.study_name}",
            uri=tracking_uri,
            params={**asdict(cfg), "storage": redact(search.url), "study": search.study_name},
            tags={"glyphlab.dataset": cfg.dataset, "glyphlab.kind": "search"},
        )
        with observing(TrackerObserver(tracker) if tracker else None):
            _run_trials(search)
            write_outputs(search.study, search.out)
            if tracker:
                emit(RunFinished(search.out))
        if tracker:
            emit(Tracked(tracker.backend, tracker.uri))
        best_params = _write_best(search)
        if best_params is not None and cfg.refit and len(_finished(search.study)) >= search.target:
            refit_best(
                cfg,
                search.model,
                best_params,
                search.out,
                track=tracker.backend if tracker else None,
                tracking_uri=tracker.uri if tracker else None,
            )
        elif best_params is not None and not cfg.refit:
            emit(Note("--no-refit: the best parameters are not refit on train+val"))
    return search.out


def _open_search(cfg: SearchConfig) -> _Search:
    """The space, the data, the run folder and the (new or resumed) Optuna study of ``cfg``, checked to be the
    same search as the one that created the study; search.json written."""
    cfg.validate()
    space_path = find_space(cfg.space)
    space = load_space(space_path, cfg.model)
    cfg.model = space.model
    model = str(space.model)
    is_net = bool(model_spec(model).cls.uses_validation)
    out = Path(cfg.out) if cfg.out else default_out(cfg, space_path)
    out.mkdir(parents=True, exist_ok=True)
    search = _Search(
        cfg,
        space_path,
        space,
        model,
        is_net,
        cfg.cv or DEFAULT_CV,
        out,
        cfg.storage or f"sqlite:///{out.resolve() / STUDY_DB}",
        cfg.study or _slug(f"{model}-{Path(cfg.dataset).name}"),
        cfg.trials,
    )
    if cfg.sampler == "grid":
        size = int(np.prod([len(v) for v in space.grid().values()]))
        if search.target > size:
            emit(Note(f"note: the grid has {size} points; running {size} trials, not {search.target}", "warning"))
            search.target = size
    if is_net and cfg.cv is not None:
        emit(Note("note: --cv applies to classical models; networks are scored on the validation split", "warning"))
    search.ds = load_run_dataset(RunConfig(**cfg.data_fields(), models=[model], val_fraction=cfg.val_fraction))
    search.pool = merge_splits(search.ds, ["train", "val"])
    search.study = _create_study(search)
    return search


def _create_study(search: _Search):
    """The study in its storage (created, or loaded and checked to be this search's), with search.json beside."""
    cfg, space = search.cfg, search.space
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(
        storage=make_storage(search.url),
        sampler=make_sampler(cfg.sampler, space, cfg.seed, cfg.trials),
        pruner=make_pruner(cfg.pruner),
        study_name=search.study_name,
        direction="maximize",
        load_if_exists=True,
    )
    _check_study_attrs(
        study,
        {
            "model": search.model,
            "dataset": cfg.dataset,
            "space": space.fingerprint(),
            "score": "validation accuracy" if search.is_net else f"{search.k}-fold CV accuracy",
            "seed": cfg.seed,
            "val_fraction": cfg.val_fraction,
            "variants": cfg.variants,
            "dataset_options": cfg.dataset_options,
        },
    )
    write_json(
        search.out / "search.json",
        {
            **asdict(cfg),
            "storage": redact(search.url),
            "study": search.study_name,
            "space_file": str(search.space_path),
            "space": {n: asdict(p) for n, p in space.params.items()},
            "fixed": space.fixed,
            "target_trials": search.target,
        },
    )
    return study


def _objective(search: _Search):
    """Optuna's objective: one trial's score (validation accuracy for a network, k-fold CV accuracy otherwise)."""
    cfg, study, ds, model = search.cfg, search.study, search.ds, search.model
    me = worker_id()

    def objective(trial) -> float:
        # first of all, so a process killed right after asking the trial is known dead on rerun (a RUNNING
        # trial without a worker is only failed by Optuna's heartbeat, a minute later)
        trial.set_user_attr("worker", me)
        live = sorted(
            t.number
            for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
            )
        )
        if trial.number in live and live.index(trial.number) >= search.target:
            trial.set_user_attr("note", "surplus: asked beyond the trial budget by a concurrent worker, not run")
            raise SurplusTrial()
        t0 = time.perf_counter()
        try:
            retry_of = study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
            if retry_of is not None:
                trial.set_user_attr("note", f"retry of trial {retry_of}")
            full = model_params(model, search.space.suggest(trial), search.space.fixed, cfg.seed)
            if search.is_net:
                reporter = EpochReporter(trial) if cfg.pruner != "none" else None
                mean, std, folds = validation_score(model, full, ds["train"], ds["val"], ds.classes, reporter), None, []
            else:
                pool = search.pool
                mean, std, folds = cv_score(
                    FoldJob(model, full, pool.images, pool.labels, search.k, cfg.seed, ds.classes)
                )
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            raise
        for key, value in (("mean", mean), ("std", std), ("folds", folds)):
            trial.set_user_attr(key, value)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        return mean

    return objective


def _run_trials(search: _Search) -> None:
    """Run trials until the study holds the target number of finished ones (other workers' included), the
    timeout passes, or too many fail in a row; each finished trial is an event."""
    cfg, study, target = search.cfg, search.study, search.target
    objective = _objective(search)
    t_start = time.monotonic()
    failures = 0
    emit(TaskStarted("trials", "trials", total=target))
    try:
        reaped = reap_dead_trials(study)
        if reaped:
            emit(
                Note(
                    f"trials {', '.join(map(str, reaped))} were left unfinished by a killed process: "
                    "marked FAIL, their parameters are asked again",
                    "warning",
                )
            )
        done = len(_finished(study))
        if done:
            emit(Note(f"resuming: the study already holds {done} finished trial(s)"))
        while True:
            finished = _finished(study)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            emit(TaskAdvanced("trials", min(len(finished), target), _best_text(study)))
            if len(finished) >= target:
                break
            if cfg.timeout is not None and time.monotonic() - t_start > cfg.timeout:
                emit(
                    Note(
                        f"--timeout {cfg.timeout:g} s reached: {len(finished)}/{target} trials finished; "
                        "rerun the same command to continue",
                        "warning",
                    )
                )
                break
            if len(finished) + len(running) >= target:  # other workers hold the last trials: wait for them
                time.sleep(WAIT_POLL_S)
                reap_dead_trials(study)
                continue
            failures = _one_trial(study, objective, failures)
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise GlyphlabError(
                    f"{failures} trials in a row failed (see trials.csv); last error: {_last_error(study)}"
                )
    finally:
        emit(TaskEnded("trials"))


def _one_trial(study, objective, failures: int) -> int:
    """Run one trial and emit what became of it (and of any trial another worker finished meanwhile); returns
    the count of trials failed in a row."""
    before = {t.number for t in study.get_trials(deepcopy=False)}
    study.optimize(objective, n_trials=1, catch=(Exception,))
    for t in study.get_trials(deepcopy=False):
        if t.number in before:
            continue
        if t.state == TrialState.FAIL and "surplus" not in str(t.user_attrs.get("note", "")):
            failures += 1
            params = decode_params(t.params)
            emit(TrialFinished(t.number, params, None, "FAIL", error=t.user_attrs.get("error", "unknown error")))
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            failures = 0
            emit(
                TrialFinished(
                    t.number,
                    decode_params(t.params),
                    t.value,
                    t.state.name,
                    std=t.user_attrs.get("std"),
                    seconds=t.user_attrs.get("seconds"),
                    best=t.state == TrialState.COMPLETE and study.best_trial.number == t.number,
                )
            )
    return failures


def _write_best(search: _Search) -> dict[str, Any] | None:
    """best_params.json for the study's best trial, and its parameters as the model takes them (None when no
    trial completed)."""
    study, cfg, model = search.study, search.cfg, search.model
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        emit(SearchFinished(search.out, search.score_name))
        return None
    best = study.best_trial
    best_params = model_params(model, decode_params(best.params), search.space.fixed, cfg.seed)
    if "progress" not in search.space.fixed:  # the refit shows the model's usual progress
        best_params.pop("progress", None)
    write_json(
        search.out / "best_params.json",
        {
            "model": model,
            "dataset": cfg.dataset,
            "study": search.study_name,
            "storage": redact(search.url),
            "best_trial": best.number,
            "score": search.score_name,
            "mean": best.user_attrs.get("mean", best.value),
            "std": best.user_attrs.get("std"),
            "params": best_params,
            "searched": decode_params(best.params),
            "n_finished": len(_finished(study)),
            "n_complete": len(complete),
        },
    )
    emit(
        SearchFinished(
            search.out,
            search.score_name,
            best.number,
            best.value,
            best.user_attrs.get("std"),
            decode_params(best.params),
        )
    )
    return best_params


def refit_best(
    cfg: SearchConfig,
    model: str,
    params: dict[str, Any],
    out: Path,
    track: str | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """Refit on train+val and evaluate once on test, as the run model folder ``out/models/MODEL-best``."""
    label = f"{model}-best"
    previous = RunFolder(out).model(label)
    resume = False
    if previous.finished:  # the same best parameters were already refit and evaluated: keep them
        kept = previous.read_metrics().get("params", {})
        resume = all(kept.get(k) == v for k, v in params.items())
    run_cfg = RunConfig(
        **cfg.data_fields(), models=[f"{label}={model}"], params={label: params}, val_fraction=cfg.val_fraction
    )
    emit(Note(f"refitting {label} on train+val, evaluating once on the test split"))
    return run(run_cfg, out, resume=resume, report=False, track=track, tracking_uri=tracking_uri)


def _best_text(study) -> str:
    try:
        b = study.best_trial
    except ValueError:
        return ""
    return f"best {b.value:.4f} (trial {b.number})"


def _last_error(study) -> str:
    fails = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "error" in t.user_attrs]
    return fails[-1].user_attrs["error"] if fails else "unknown"
