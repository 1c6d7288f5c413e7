"""The search itself: a study in an Optuna storage, the sampler and pruner, the loop that runs trials until the
study holds ``--trials`` finished ones, and the refit of the best parameters (see the package docstring)."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from glyphlab.data.spec import DataSpec
from glyphlab.data.splits import merge_splits
from glyphlab.errors import ConfigError, GlyphlabError
from glyphlab.fileio import write_json
from glyphlab.models.registry import MODELS
from glyphlab.pipeline.folds import FoldJob
from glyphlab.pipeline.run import RunConfig, load_run_dataset, run
from glyphlab.pipeline.search.outputs import write_outputs
from glyphlab.pipeline.search.samplers import make_sampler
from glyphlab.pipeline.search.scoring import EpochReporter, cv_score, model_params, validation_score
from glyphlab.pipeline.search.space import decode_params, find_space, load_space
from glyphlab.pipeline.search.workers import make_storage, reap_dead_trials, redact, worker_id
from glyphlab.runfolder import RunFolder
from glyphlab.tracking import open_tracker

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


def run_search(
    cfg: SearchConfig, console: Console | None = None, track: str | None = None, tracking_uri: str | None = None
) -> Path:
    """Run (or resume) the study of ``cfg``; with ``track``, each finished trial is a nested run of one tracked
    search run, and the refit model joins it (see :mod:`glyphlab.tracking`)."""
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

    ds = load_run_dataset(RunConfig(**cfg.data_fields(), models=[model], val_fraction=cfg.val_fraction))
    pool = merge_splits(ds, ["train", "val"])

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = make_storage(url)
    study = optuna.create_study(
        storage=storage,
        sampler=make_sampler(cfg.sampler, space, cfg.seed, cfg.trials),
        pruner=make_pruner(cfg.pruner),
        study_name=study_name,
        direction="maximize",
        load_if_exists=True,
    )
    _check_study_attrs(
        study,
        {
            "model": model,
            "dataset": cfg.dataset,
            "space": space.fingerprint(),
            "score": "validation accuracy" if is_net else f"{k}-fold CV accuracy",
            "seed": cfg.seed,
            "val_fraction": cfg.val_fraction,
            "variants": cfg.variants,
            "dataset_options": cfg.dataset_options,
        },
    )
    write_json(
        out / "search.json",
        {
            **asdict(cfg),
            "storage": redact(url),
            "study": study_name,
            "space_file": str(space_path),
            "space": {n: asdict(p) for n, p in space.params.items()},
            "fixed": space.fixed,
            "target_trials": target,
        },
    )
    score_name = "val acc" if is_net else f"{k}-fold CV"
    console.print(
        f"[bold]glyphlab search[/] [cyan]{model}[/] on [cyan]{ds.name}[/] ({len(pool):,} train+val images), "
        f"space [cyan]{space_path.stem}[/] ({', '.join(space.params)}), score {score_name}, "
        f"sampler {cfg.sampler}, pruner {cfg.pruner if is_net else 'none (classical)'}\n"
        f"  study [cyan]{study_name}[/] in {redact(url)} → [green]{out}[/]"
    )

    tracker = open_tracker(
        track,
        out,
        name=f"search-{study_name}",
        uri=tracking_uri,
        params={**asdict(cfg), "storage": redact(url), "study": study_name},
        tags={"glyphlab.dataset": cfg.dataset, "glyphlab.kind": "search"},
    )
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
        if trial.number in live and live.index(trial.number) >= target:
            trial.set_user_attr("note", "surplus: asked beyond the trial budget by a concurrent worker, not run")
            raise SurplusTrial()
        t0 = time.perf_counter()
        try:
            retry_of = study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
            if retry_of is not None:
                trial.set_user_attr("note", f"retry of trial {retry_of}")
            params = space.suggest(trial)
            full = model_params(model, params, space.fixed, cfg.seed)
            if is_net:
                mean, std, folds = (
                    validation_score(
                        model,
                        full,
                        ds["train"],
                        ds["val"],
                        ds.classes,
                        EpochReporter(trial) if cfg.pruner != "none" else None,
                    ),
                    None,
                    [],
                )
            else:
                mean, std, folds = cv_score(FoldJob(model, full, pool.images, pool.labels, k, cfg.seed, ds.classes))
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

    t_start = time.monotonic()
    failures = 0
    progress = Progress(
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("search", total=target, best="")
        reaped = reap_dead_trials(study)
        if reaped:
            progress.console.print(
                f"[yellow]trials {', '.join(map(str, reaped))} were left unfinished by a killed "
                "process: marked FAIL, their parameters are asked again[/]"
            )
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
                progress.console.print(
                    f"[yellow]--timeout {cfg.timeout:g} s reached: {len(finished)}/{target} trials "
                    "finished; rerun the same command to continue[/]"
                )
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
                    progress.console.print(
                        f"[red]trial {t.number} failed:[/] {t.user_attrs.get('error', 'unknown error')}"
                    )
                elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                    failures = 0
                    progress.console.print(_trial_line(t, study))
                    if tracker:
                        tracker.trial_finished(t.number, decode_params(t.params), t.value, t.state.name)
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise GlyphlabError(
                    f"{failures} trials in a row failed (see trials.csv); last error: {_last_error(study)}"
                )

    finished = _finished(study)
    write_outputs(study, out, console)
    if tracker:
        tracker.run_finished(out)
        console.print(f"tracked: [green]{tracker.backend}[/] {tracker.uri}")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        console.print("[yellow]no trial completed: nothing to refit[/]")
        return out
    best = study.best_trial
    best_params = model_params(model, decode_params(best.params), space.fixed, cfg.seed)
    if "progress" not in space.fixed:  # the refit shows the model's usual progress
        best_params.pop("progress", None)
    write_json(
        out / "best_params.json",
        {
            "model": model,
            "dataset": cfg.dataset,
            "study": study_name,
            "storage": redact(url),
            "best_trial": best.number,
            "score": score_name,
            "mean": best.user_attrs.get("mean", best.value),
            "std": best.user_attrs.get("std"),
            "params": best_params,
            "searched": decode_params(best.params),
            "n_finished": len(finished),
            "n_complete": len(complete),
        },
    )
    console.print(
        f"[bold green]best trial {best.number}[/]: {score_name} {best.value:.4f}"
        + (f" ± {best.user_attrs['std']:.4f}" if best.user_attrs.get("std") is not None else "")
        + f"  {_fmt_params(decode_params(best.params))}"
    )
    if len(finished) < target or not cfg.refit:
        if not cfg.refit:
            console.print("--no-refit: the best parameters are not refit on train+val")
        return out
    refit_best(
        cfg,
        model,
        best_params,
        out,
        console,
        track=tracker.backend if tracker else None,
        tracking_uri=tracker.uri if tracker else None,
    )
    return out


def refit_best(
    cfg: SearchConfig,
    model: str,
    params: dict[str, Any],
    out: Path,
    console: Console,
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
    console.print(f"refitting [bold]{label}[/] on train+val, evaluating once on the test split")
    return run(run_cfg, out, console=console, resume=resume, report=False, track=track, tracking_uri=tracking_uri)


def _best_text(study) -> str:
    try:
        b = study.best_trial
    except ValueError:
        return ""
    return f"best {b.value:.4f} (trial {b.number})"


def _last_error(study) -> str:
    fails = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "error" in t.user_attrs]
    return fails[-1].user_attrs["error"] if fails else "unknown"


def _fmt_params(params: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={f(v)}" for k, v in params.items())


def _trial_line(t, study) -> str:
    secs = t.user_attrs.get("seconds")
    tail = f"  ({secs:.1f} s)" if secs is not None else ""
    if t.state == TrialState.PRUNED:
        return f"  trial {t.number:>3} [yellow]pruned[/]{tail}  {_fmt_params(decode_params(t.params))}"
    std = t.user_attrs.get("std")
    pm = f" ± {std:.4f}" if std is not None else ""
    star = " [green]*[/]" if study.best_trial.number == t.number else ""
    return f"  trial {t.number:>3} {t.value:.4f}{pm}{tail}  {_fmt_params(decode_params(t.params))}{star}"
