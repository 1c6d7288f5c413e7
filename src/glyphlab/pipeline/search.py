"""Hyper-parameter search with Optuna: ``glyphlab search``.

A *space file* (TOML) declares the parameters to search::

    [search]                      # optional
    model = "svm"                 # the model this space is for (``--model`` may then be omitted)
    description = "..."

    [space.C]
    type = "float"                # choice | int | float
    low = 0.1
    high = 1000.0
    log = true

    [space.optimizer]
    type = "choice"
    values = ["adam", "rmsprop"]

    [fixed]                       # optional: parameters set in every trial
    epochs = 5

Scores: classical models get a stratified k-fold cross-validation accuracy (mean and std) on train+val;
networks are scored on the validation split (their best epoch's accuracy), and their per-epoch validation
accuracies are reported to the pruner.

Every trial is recorded in an Optuna storage: by default ``sqlite:///RUN/study.db`` in the run folder, so
rerunning the same command resumes the study: finished trials are kept, trials left RUNNING by a killed
process are marked FAIL and their parameters asked again, and only the missing trials are run. With a
shared ``--storage postgresql://...`` and ``--study NAME`` several workers on several machines fill one
study; each stops when the study holds ``--trials`` finished trials (COMPLETE or PRUNED), and the total is
exact: a trial numbered beyond the budget by a race between workers is dropped before it runs (marked FAIL,
``surplus``). Dead workers on other machines are detected by Optuna's heartbeat (``HEARTBEAT_GRACE_S``).

At the end: ``trials.csv``, ``best_params.json``, ``optimization_history.png``, ``param_importance.png``
(when at least two parameters and enough trials), then the best parameters are refit on train+val and
evaluated once on the test split as a normal run model folder ``RUN/models/MODEL-best`` with the leaderboard.

Test-only: ``GLYPHLAB_TEST_TRIAL_DELAY=SECONDS`` makes each trial sleep that long first (so a test can
kill a search in the middle of a trial).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import socket
import time
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.console import Console

from glyphlab.errors import ConfigError, GlyphlabError
from glyphlab.models.torch import usable_cores

SPACE_TYPES = ("choice", "int", "float")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_CV = 5
HEARTBEAT_INTERVAL_S = 10
HEARTBEAT_GRACE_S = 60
MAX_RETRY = 2
MAX_CONSECUTIVE_FAILURES = 3
IMPORTANCE_MIN_TRIALS = 5
WAIT_POLL_S = 2.0
DELAY_ENV = "GLYPHLAB_TEST_TRIAL_DELAY"
JSON_PREFIX = "json:"
STUDY_DB = "study.db"
BUILTIN_SPACES = "glyphlab.search_spaces"


# -- search spaces ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    values: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False

    def distribution(self):
        import optuna.distributions as D

        if self.type == "choice":
            return D.CategoricalDistribution([_encode(v) for v in self.values])
        if self.type == "int":
            return D.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return D.FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def suggest(self, trial) -> Any:
        if self.type == "choice":
            return _decode(trial.suggest_categorical(self.name, [_encode(v) for v in self.values]))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """The finite set of values the grid sampler walks (encoded for Optuna)."""
        if self.type == "choice":
            return [_encode(v) for v in self.values]
        if self.step is None or self.log:
            raise ConfigError(f"space.{self.name}: the grid sampler needs a finite set of values: "
                              "use type = \"choice\", or give 'step' (without log)")
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step)))
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return _encode(value) in [_encode(v) for v in self.values]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True


@dataclass
class SearchSpace:
    params: dict[str, ParamSpec]
    fixed: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    description: str = ""
    source: str = ""

    def suggest(self, trial) -> dict[str, Any]:
        return {name: spec.suggest(trial) for name, spec in self.params.items()}

    def grid(self) -> dict[str, list[Any]]:
        return {name: spec.grid() for name, spec in self.params.items()}

    def fingerprint(self) -> str:
        raw = {"params": {k: asdict(v) for k, v in sorted(self.params.items())}, "fixed": self.fixed}
        return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encode(value: Any) -> Any:
    """Optuna's categorical values are None/bool/int/float/str: lists and tables travel as JSON strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return JSON_PREFIX + json.dumps(value, sort_keys=True)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(JSON_PREFIX):
        return json.loads(value[len(JSON_PREFIX):])
    return value


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode(v) for k, v in params.items()}


_ALLOWED_KEYS = {"choice": {"type", "values"}, "int": {"type", "low", "high", "step", "log"},
                 "float": {"type", "low", "high", "step", "log"}}


def _number(name: str, key: str, value: Any, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"space.{name}: '{key}' must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"space.{name}: '{key}' must be finite, got {value!r}")
    return value


def parse_param(name: str, raw: Any) -> ParamSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"space.{name}: must be a table like {{type = \"float\", low = 0.1, high = 10}}, got {raw!r}")
    kind = raw.get("type")
    if kind is None:
        raise ConfigError(f"space.{name}: missing 'type' (one of {', '.join(SPACE_TYPES)})")
    if kind not in SPACE_TYPES:
        raise ConfigError(f"space.{name}: unknown type {kind!r} (expected one of {', '.join(SPACE_TYPES)})")
    unknown = set(raw) - _ALLOWED_KEYS[kind]
    if unknown:
        raise ConfigError(f"space.{name}: unknown key(s) {', '.join(sorted(map(repr, unknown)))} for type {kind!r} "
                          f"(allowed: {', '.join(sorted(_ALLOWED_KEYS[kind]))})")
    if kind == "choice":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"space.{name}: 'values' must be a non-empty list")
        encoded = [_encode(v) for v in values]
        if len(set(map(repr, encoded))) != len(encoded):
            raise ConfigError(f"space.{name}: 'values' has duplicates")
        return ParamSpec(name, kind, values=tuple(values))
    integer = kind == "int"
    for key in ("low", "high"):
        if key not in raw:
            raise ConfigError(f"space.{name}: missing '{key}'")
    low = _number(name, "low", raw["low"], integer)
    high = _number(name, "high", raw["high"], integer)
    if not low < high:
        raise ConfigError(f"space.{name}: 'low' must be < 'high' (got low={low!r}, high={high!r})")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"space.{name}: 'log' must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"space.{name}: log = true needs 'low' > 0 (got {low!r})")
    step = raw.get("step")
    if step is not None:
        step = _number(name, "step", step, integer)
        if step <= 0:
            raise ConfigError(f"space.{name}: 'step' must be > 0, got {step!r}")
        if log and not (integer and step == 1):
            raise ConfigError(f"space.{name}: 'step' and log = true cannot be combined")
        if step > high - low:
            raise ConfigError(f"space.{name}: 'step' ({step!r}) is larger than high - low")
    if integer and step is None:
        step = 1
    return ParamSpec(name, kind, low=low, high=high, step=step, log=log)


def model_defaults(model: str) -> dict[str, Any]:
    from glyphlab.models.registry import MODELS, create_model

    create_model(model)  # a clear error for an unknown model name
    return dict(MODELS[model].cls.defaults)


def parse_space(raw: dict[str, Any], model: str | None = None, source: str = "") -> SearchSpace:
    """Validate a parsed space file; every error names the field (``space.C: ...``)."""
    unknown = set(raw) - {"search", "space", "fixed"}
    if unknown:
        raise ConfigError(f"{source or 'space file'}: unknown top-level table(s) {', '.join(sorted(unknown))} "
                          "(expected [search], [space.NAME] and [fixed])")
    meta = raw.get("search", {})
    if not isinstance(meta, dict):
        raise ConfigError("search: must be a table")
    bad_meta = set(meta) - {"model", "description"}
    if bad_meta:
        raise ConfigError(f"search: unknown key(s) {', '.join(sorted(bad_meta))} (allowed: model, description)")
    declared = meta.get("model")
    if model and declared and model != declared:
        raise ConfigError(f"search.model: this space is for model '{declared}', not '{model}'")
    model = model or declared
    if not model:
        raise ConfigError("no model: pass --model NAME or set model in the space file's [search] table")
    table = raw.get("space")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{source or 'space file'}: declares no parameters: add tables like [space.C]")
    defaults = model_defaults(model)
    params: dict[str, ParamSpec] = {}
    for name, spec in table.items():
        if name not in defaults:
            raise ConfigError(f"space.{name}: model '{model}' has no parameter '{name}'; "
                              f"it takes: {', '.join(sorted(defaults))}")
        params[name] = parse_param(name, spec)
    fixed = raw.get("fixed", {})
    if not isinstance(fixed, dict):
        raise ConfigError("fixed: must be a table of parameter = value")
    for name in fixed:
        if name not in defaults:
            raise ConfigError(f"fixed.{name}: model '{model}' has no parameter '{name}'; "
                              f"it takes: {', '.join(sorted(defaults))}")
        if name in params:
            raise ConfigError(f"fixed.{name}: is also searched in space.{name}; keep one")
    return SearchSpace(params=params, fixed=dict(fixed), model=model, description=str(meta.get("description", "")),
                       source=source)


def builtin_spaces() -> dict[str, Path]:
    folder = resources.files(BUILTIN_SPACES)
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def find_space(name_or_path: str | Path) -> Path:
    """A path to a TOML file, or the name of a space shipped in ``glyphlab/search_spaces`` (without .toml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = builtin_spaces()
    stem = p.name[:-5] if p.name.endswith(".toml") else p.name
    if str(p) == p.name and stem in shipped:
        return shipped[stem]
    raise ConfigError(f"no space file {str(name_or_path)!r}: pass a TOML file or one of the shipped spaces: "
                      f"{', '.join(sorted(shipped))}")


def load_space(name_or_path: str | Path, model: str | None = None) -> SearchSpace:
    path = find_space(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_space(raw, model, source=str(path))


# -- scoring ------------------------------------------------------------------------------------------------
class EpochReporter:
    """Reports per-epoch validation accuracy to an Optuna trial and prunes.

    Attached as ``model.on_epoch``, which the training loop calls after every epoch, so a pruned trial stops
    training there; epochs already reported are skipped when ``model.history_`` is replayed after fit.
    """

    def __init__(self, trial) -> None:
        self.trial = trial
        self.reported: set[int] = set()

    def __call__(self, row: dict[str, Any]) -> None:
        import optuna

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
    defaults = model_defaults(model)
    out = {**fixed, **params}
    if "seed" in defaults and "seed" not in out:
        out["seed"] = seed
    if "progress" in defaults and "progress" not in out:
        out["progress"] = False
    return out


def _fold_score(model: str, params: dict[str, Any], images: np.ndarray, labels: np.ndarray, train: np.ndarray,
                val: np.ndarray, classes: list[str] | None) -> float:
    from threadpoolctl import threadpool_limits

    from glyphlab.models.registry import create_model

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


def cv_score(model: str, params: dict[str, Any], images: np.ndarray, labels: np.ndarray, k: int, seed: int,
             classes: list[str] | None = None, on_fold: Callable[[int, float], None] | None = None,
             n_jobs: int | None = None) -> tuple[float, float, list[float]]:
    """Stratified k-fold accuracy (mean, std, per fold) of ``model`` with ``params`` on (images, labels).

    Folds are independent fits, so they run in parallel worker processes (:func:`fold_workers`; libsvm and
    most scikit-learn fits use one core each); the scores do not depend on how many run at once.
    """
    from glyphlab.data.splits import kfold_indices

    folds = list(kfold_indices(labels, k, seed))
    workers = fold_workers(model, len(folds), n_jobs)
    if workers == 1:
        scores_iter = (_fold_score(model, params, images, labels, tr, va, classes) for tr, va in folds)
    else:
        from joblib import Parallel, delayed

        scores_iter = Parallel(n_jobs=workers, return_as="generator")(
            delayed(_fold_score)(model, params, images, labels, tr, va, classes) for tr, va in folds)
    scores: list[float] = []
    for i, score in enumerate(scores_iter):
        scores.append(score)
        if on_fold is not None:
            on_fold(i, score)
    return float(np.mean(scores)), float(np.std(scores)), scores


def validation_score(model: str, params: dict[str, Any], train, val, classes: list[str],
                     reporter: EpochReporter | None = None) -> float:
    """A network's accuracy on the validation split after training (its best epoch restored)."""
    from glyphlab.models.registry import create_model

    m = create_model(model, **params)
    if reporter is not None:
        m.on_epoch = reporter  # type: ignore[attr-defined]
    m.fit(train.images, train.labels, val.images, val.labels, classes=classes)
    if reporter is not None:
        for row in m.history_:
            reporter(row)
    return m.score(val.images, val.labels)


# -- workers and stale trials ----------------------------------------------------------------------------------
def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def worker_id() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _proc_start(pid)}


def _worker_dead(worker: dict[str, Any]) -> bool:
    """True when ``worker`` ran on this machine and that process is gone (False when unsure)."""
    if worker.get("host") != socket.gethostname() or worker.get("boot", "") != _boot_id():
        return False
    pid = int(worker.get("pid", -1))
    if pid == os.getpid():
        return False
    if Path("/proc").is_dir():
        start = _proc_start(pid)
        return start is None or (worker.get("start") is not None and start != worker.get("start"))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap_dead_trials(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose process died (same machine: at once; elsewhere: heartbeat grace),
    and ask their parameters again. Returns the numbers of the trials this call failed."""
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fail_stale_trials(study)  # other machines: no heartbeat for HEARTBEAT_GRACE_S
    retry = _retry_callback()
    storage = study._storage
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        dead = _worker_dead(worker) if worker else (
            t.datetime_start is not None and now - t.datetime_start.timestamp() > 3 * HEARTBEAT_GRACE_S)
        if not dead:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "note", "killed: its worker process died")
            changed = storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        if changed:
            failed.append(t.number)
            retry(study, storage.get_trial(t._trial_id))
    return failed


def _retry_callback():
    """Re-enqueue a dead trial's parameters (RetryHeartbeatStaleTrialCallback since Optuna 4.9)."""
    import optuna.storages as S

    cls = getattr(S, "RetryHeartbeatStaleTrialCallback", None) or S.RetryFailedTrialCallback
    return cls(max_retry=MAX_RETRY)


def make_storage(url: str):
    from optuna.storages import RDBStorage

    url = _with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    import random

    for attempt in range(5):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                              grace_period=HEARTBEAT_GRACE_S,
                              heartbeat_stale_trial_callback=_retry_callback())
        except ImportError as exc:
            raise ConfigError(f"storage {redact(url)} needs a database driver that is not installed ({exc}); "
                              "for PostgreSQL: pip install psycopg2-binary") from None
        except Exception as exc:  # sqlalchemy's errors
            # workers starting together race to create the tables: the loser retries and finds them
            if attempt == 4 or "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                raise ConfigError(f"cannot open the study storage {redact(url)}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy 2.1 and psycopg2 to older ones: use whichever is installed."""
    import importlib.util

    if url.startswith(("postgresql://", "postgres://")):
        rest = url.split("://", 1)[1]
        for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{driver}://{rest}"
        raise ConfigError(f"storage {redact(url)} needs a PostgreSQL driver: pip install psycopg2-binary "
                          "(or 'psycopg[binary]')")
    return url


def redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


# -- the search ---------------------------------------------------------------------------------------------
@dataclass
class SearchConfig:
    dataset: str = "digits"
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
    seed: int = 0
    data_dir: str | None = None
    val_fraction: float = 0.1
    refit: bool = True
    dataset_options: dict[str, Any] = field(default_factory=dict)
    variants: str = ""

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


def make_sampler(cfg: SearchConfig, space: SearchSpace, shared: bool):
    import optuna

    # workers sharing a study must not draw the same random points: mix the worker into the seed
    seed = cfg.seed if not shared else int(hashlib.sha256(json.dumps(worker_id()).encode()).hexdigest()[:8], 16)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    n_startup = max(3, min(10, cfg.trials // 2))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup)


def make_pruner(name: str):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


class SurplusTrial(Exception):
    """A worker asked a trial beyond the budget (a race with another worker): dropped before it runs."""


FINISHED_NAMES = ("COMPLETE", "PRUNED")


def _finished(study) -> list:
    from optuna.trial import TrialState

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
        raise ConfigError(f"study '{study.study_name}' was created by a different search ({'; '.join(diff)}): "
                          "rerun with the same options, or pass --study NEW_NAME (or another --out)")


def run_search(cfg: SearchConfig, console: Console | None = None) -> Path:
    import optuna
    from optuna.trial import TrialState

    from glyphlab.data.splits import merge_splits
    from glyphlab.models.registry import MODELS
    from glyphlab.fileio import write_json as _write_json
    from glyphlab.pipeline.run import RunConfig, load_run_dataset

    console = console or Console()
    cfg.validate()
    space_path = find_space(cfg.space)
    space = load_space(space_path, cfg.model)
    cfg.model = space.model
    model = str(space.model)
    is_net = bool(MODELS[model].cls.uses_validation)
    k = cfg.cv or DEFAULT_CV
    out = Path(cfg.out) if cfg.out else default_out(cfg, space_path)
    out.mkdir(parents=True, exist_ok=True)
    shared = cfg.storage is not None
    url = cfg.storage or f"sqlite:///{out.resolve() / STUDY_DB}"
    study_name = cfg.study or _slug(f"{model}-{Path(cfg.dataset).name}")
    target = cfg.trials
    if cfg.sampler == "grid":
        size = int(np.prod([len(v) for v in space.grid().values()]))
        if target > size:
            console.print(f"[yellow]note:[/] the grid has {size} points; running {size} trials, not {target}")
            target = size
    if is_net and cfg.cv is not None:
        console.print("[yellow]note:[/] --cv applies to classical models; networks are scored on the validation split")

    run_cfg = RunConfig(dataset=cfg.dataset, models=[model], seed=cfg.seed, val_fraction=cfg.val_fraction,
                        data_dir=cfg.data_dir, dataset_options=dict(cfg.dataset_options), variants=cfg.variants)
    ds = load_run_dataset(run_cfg)
    pool = merge_splits(ds, ["train", "val"])

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = make_storage(url)
    study = optuna.create_study(storage=storage, sampler=make_sampler(cfg, space, shared), pruner=make_pruner(cfg.pruner),
                                study_name=study_name, direction="maximize", load_if_exists=True)
    _check_study_attrs(study, {"model": model, "dataset": cfg.dataset, "space": space.fingerprint(),
                               "score": "validation accuracy" if is_net else f"{k}-fold CV accuracy",
                               "seed": cfg.seed, "val_fraction": cfg.val_fraction, "variants": cfg.variants,
                               "dataset_options": cfg.dataset_options})
    _write_json(out / "search.json", {**asdict(cfg), "storage": redact(url), "study": study_name,
                                      "space_file": str(space_path), "space": {n: asdict(p) for n, p in space.params.items()},
                                      "fixed": space.fixed, "target_trials": target})
    score_name = "val acc" if is_net else f"{k}-fold CV"
    console.print(f"[bold]glyphlab search[/] [cyan]{model}[/] on [cyan]{ds.name}[/] ({len(pool):,} train+val images), "
                  f"space [cyan]{space_path.stem}[/] ({', '.join(space.params)}), score {score_name}, "
                  f"sampler {cfg.sampler}, pruner {cfg.pruner if is_net else 'none (classical)'}\n"
                  f"  study [cyan]{study_name}[/] in {redact(url)} → [green]{out}[/]")

    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    me = worker_id()

    def objective(trial) -> float:
        live = sorted(t.number for t in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))
        if trial.number in live and live.index(trial.number) >= target:
            trial.set_user_attr("note", "surplus: asked beyond the trial budget by a concurrent worker, not run")
            raise SurplusTrial()
        trial.set_user_attr("worker", me)
        t0 = time.perf_counter()
        try:
            retry_of = study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
            if retry_of is not None:
                trial.set_user_attr("note", f"retry of trial {retry_of}")
            params = space.suggest(trial)
            full = model_params(model, params, space.fixed, cfg.seed)
            if delay:
                time.sleep(delay)
            if is_net:
                mean, std, folds = validation_score(model, full, ds["train"], ds["val"], ds.classes,
                                                    EpochReporter(trial) if cfg.pruner != "none" else None), None, []
            else:
                mean, std, folds = cv_score(model, full, pool.images, pool.labels, k, cfg.seed, ds.classes)
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            raise
        trial.set_user_attr("mean", mean)
        trial.set_user_attr("std", std)
        trial.set_user_attr("folds", folds)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        return mean

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t_start = time.monotonic()
    failures = 0
    progress = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[best]}"),
                        TimeElapsedColumn(), console=console, transient=True)
    with progress:
        task = progress.add_task("search", total=target, best="")
        reaped = reap_dead_trials(study)
        if reaped:
            progress.console.print(f"[yellow]trials {', '.join(map(str, reaped))} were left unfinished by a killed "
                                   "process: marked FAIL, their parameters are asked again[/]")
        done = len(_finished(study))
        if done:
            progress.console.print(f"resuming: the study already holds {done} finished trial(s)")
        while True:
            finished = _finished(study)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            progress.update(task, completed=min(len(finished), target), best=_best_text(study))
            if len(finished) >= target:
                break
            if cfg.timeout is not None and time.monotonic() - t_start > cfg.timeout:
                progress.console.print(f"[yellow]--timeout {cfg.timeout:g} s reached: {len(finished)}/{target} trials "
                                       "finished; rerun the same command to continue[/]")
                break
            if len(finished) + len(running) >= target:  # other workers hold the last trials: wait for them
                time.sleep(WAIT_POLL_S)
                reap_dead_trials(study)
                continue
            before = {t.number for t in study.get_trials(deepcopy=False)}
            study.optimize(objective, n_trials=1, catch=(Exception,))
            for t in study.get_trials(deepcopy=False):
                if t.number in before:
                    continue
                if t.state == TrialState.FAIL and "surplus" not in str(t.user_attrs.get("note", "")):
                    failures += 1
                    progress.console.print(f"[red]trial {t.number} failed:[/] {t.user_attrs.get('error', 'unknown error')}")
                elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                    failures = 0
                    progress.console.print(_trial_line(t, study))
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise GlyphlabError(f"{failures} trials in a row failed (see trials.csv); last error: "
                                    f"{_last_error(study)}")

    finished = _finished(study)
    write_outputs(study, out, console)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        console.print("[yellow]no trial completed: nothing to refit[/]")
        return out
    best = study.best_trial
    best_params = model_params(model, decode_params(best.params), space.fixed, cfg.seed)
    if "progress" not in space.fixed:  # the refit shows the model's usual progress
        best_params.pop("progress", None)
    _write_json(out / "best_params.json", {
        "model": model, "dataset": cfg.dataset, "study": study_name, "storage": redact(url),
        "best_trial": best.number, "score": score_name, "mean": best.user_attrs.get("mean", best.value),
        "std": best.user_attrs.get("std"), "params": best_params, "searched": decode_params(best.params),
        "n_finished": len(finished), "n_complete": len(complete),
    })
    console.print(f"[bold green]best trial {best.number}[/]: {score_name} {best.value:.4f}"
                  + (f" ± {best.user_attrs['std']:.4f}" if best.user_attrs.get("std") is not None else "")
                  + f"  {_fmt_params(decode_params(best.params))}")
    if len(finished) < target or not cfg.refit:
        if not cfg.refit:
            console.print("--no-refit: the best parameters are not refit on train+val")
        return out
    refit_best(cfg, model, best_params, out, console)
    return out


def refit_best(cfg: SearchConfig, model: str, params: dict[str, Any], out: Path, console: Console) -> Path:
    """Refit on train+val and evaluate once on test, as the run model folder ``out/models/MODEL-best``."""
    from glyphlab.pipeline.run import RunConfig, run
    from glyphlab.runfolder import RunFolder

    label = f"{model}-best"
    previous = RunFolder(out).model(label)
    resume = False
    if previous.finished:  # the same best parameters were already refit and evaluated: keep them
        kept = previous.read_metrics().get("params", {})
        resume = all(kept.get(k) == v for k, v in params.items())
    run_cfg = RunConfig(dataset=cfg.dataset, models=[f"{label}={model}"], params={label: params}, seed=cfg.seed,
                        val_fraction=cfg.val_fraction, data_dir=cfg.data_dir, dataset_options=dict(cfg.dataset_options),
                        variants=cfg.variants)
    console.print(f"refitting [bold]{label}[/] on train+val, evaluating once on the test split")
    return run(run_cfg, out, console=console, resume=resume, report=False)


def _best_text(study) -> str:
    try:
        b = study.best_trial
    except ValueError:
        return ""
    return f"best {b.value:.4f} (trial {b.number})"


def _last_error(study) -> str:
    from optuna.trial import TrialState

    fails = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "error" in t.user_attrs]
    return fails[-1].user_attrs["error"] if fails else "unknown"


def _fmt_params(params: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={f(v)}" for k, v in params.items())


def _trial_line(t, study) -> str:
    from optuna.trial import TrialState

    secs = t.user_attrs.get("seconds")
    tail = f"  ({secs:.1f} s)" if secs is not None else ""
    if t.state == TrialState.PRUNED:
        return f"  trial {t.number:>3} [yellow]pruned[/]{tail}  {_fmt_params(decode_params(t.params))}"
    std = t.user_attrs.get("std")
    pm = f" ± {std:.4f}" if std is not None else ""
    star = " [green]*[/]" if study.best_trial.number == t.number else ""
    return f"  trial {t.number:>3} {t.value:.4f}{pm}{tail}  {_fmt_params(decode_params(t.params))}{star}"


# -- outputs -------------------------------------------------------------------------------------------------
def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    names = sorted({n for t in study.get_trials(deepcopy=False) for n in t.params})
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        params = decode_params(t.params)
        worker = t.user_attrs.get("worker") or {}
        row = {
            "number": t.number,
            "params": json.dumps(params, sort_keys=True),
            "mean": t.user_attrs.get("mean", t.value),
            "std": t.user_attrs.get("std"),
            "seconds": t.user_attrs.get("seconds"),
            "state": t.state.name,
        }
        row.update({f"param_{n}": json.dumps(params[n]) if isinstance(params.get(n), (list, dict)) else params.get(n)
                    for n in names})
        row["worker"] = f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker else ""
        row["note"] = t.user_attrs.get("error") or t.user_attrs.get("note") or ""
        rows.append({k: ("" if v is None else v) for k, v in row.items()})
    return rows


def write_outputs(study, out: Path, console: Console) -> dict[str, Path]:
    rows = trial_rows(study)
    paths = {"trials": out / "trials.csv"}
    with open(paths["trials"], "w", newline="") as fh:
        if rows:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    paths["history"] = plot_history(study, out / "optimization_history.png")
    imp = plot_importance(study, out / "param_importance.png")
    if isinstance(imp, str):
        console.print(f"[dim]parameter importance skipped: {imp}[/]")
        (out / "param_importance.txt").write_text(f"skipped: {imp}\n")
    else:
        paths["importance"] = imp
    console.print(f"wrote [green]{paths['trials']}[/], {paths['history'].name}"
                  + (f", {paths['importance'].name}" if "importance" in paths else ""))
    return paths


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_history(study, path: Path) -> Path:
    from optuna.trial import TrialState

    plt = _plt()
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    fig, ax = plt.subplots(figsize=(7, 4))
    if done:
        x = [t.number for t in done]
        y = [t.value for t in done]
        ax.plot(x, y, "o", ms=4, alpha=0.7, label="trial")
        ax.plot(x, np.maximum.accumulate(y), "-", color="tab:red", label="best so far")
        ax.legend(loc="lower right")
    ax.set_xlabel("trial")
    ax.set_ylabel(study.user_attrs.get("score", "score"))
    ax.set_title(f"optimisation history — {study.study_name}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_importance(study, path: Path) -> Path | str:
    """fANOVA importance via ``optuna.importance``; a reason string when it cannot be computed."""
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = {n for t in done for n in t.params}
    varying = [n for n in names if len({repr(t.params.get(n)) for t in done}) > 1]
    if len(varying) < 2:
        return f"needs at least 2 searched parameters that vary (have {len(varying)})"
    if len(done) < IMPORTANCE_MIN_TRIALS:
        return f"needs at least {IMPORTANCE_MIN_TRIALS} complete trials (have {len(done)})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, params=sorted(varying))
    except Exception as exc:  # e.g. a degenerate study where every value is equal
        return f"optuna.importance failed: {exc}"
    (path.with_suffix(".json")).write_text(json.dumps(imp, indent=2))
    plt = _plt()
    items = sorted(imp.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(items) + 1.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, normalised)")
    ax.set_title("hyper-parameter importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
