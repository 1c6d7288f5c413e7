"""Experiment tracking: a run's params, metrics and files, sent to the tools people already compare runs in.

- ``mlflow`` (extra ``glyphlab[mlflow]``): one MLflow run per glyphlab run, one nested run per model (per search
  trial for ``glyphlab search``), with params, per-epoch metrics (from history.csv), final metrics, the figures,
  the report and the model folder as artifacts — the model in glyphlab's own safe format (manifest + hashes,
  no pickle), never an MLflow pickle flavour. The store is, first found: ``--tracking-uri``,
  ``GLYPHLAB_TRACKING_URI``, MLflow's own ``MLFLOW_TRACKING_URI``, else an SQLite file ``./mlflow.db`` with
  artifacts in ``./mlartifacts`` (MLflow 3 refuses its old ``./mlruns`` file store unless
  ``MLFLOW_ALLOW_FILE_STORE=true``). An ``http://`` URI is a tracking server and works the same way. The
  experiment is ``MLFLOW_EXPERIMENT_NAME``, else ``glyphlab``. ``register=NAME`` (``--register``) puts the best
  model in MLflow's model registry as a "models from code" pyfunc (:mod:`glyphlab.tracking.mlflow_pyfunc`).
- ``tensorboard`` (extra ``glyphlab[tensorboard]``): event files under ``RUN/tensorboard/MODEL`` (or the folder
  given as the URI): scalars per epoch, the confusion matrix and sample predictions as images, and
  hyper-parameters through the hparams plugin.

Whatever the backend, the run folder gets ``tracking.json`` saying where its runs live; ``glyphlab report``
shows it. A tracker never decides whether a run succeeds: a tracking failure is a warning, the run goes on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from glyphlab.errors import ConfigError
from glyphlab.events import Event, ModelFinished, RunFinished, TrialFinished
from glyphlab.fileio import write_json

TRACKING_FILE = "tracking.json"
URI_ENV = "GLYPHLAB_TRACKING_URI"
#: MLflow's own variables, honoured after glyphlab's (what every other MLflow integration reads)
MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
BACKENDS = ("mlflow", "tensorboard")


class Tracker(Protocol):
    """What the pipeline tells a tracker; each call may be the last (a run can be killed between them)."""

    backend: str
    uri: str

    def model_finished(self, label: str, model_dir: Path, metrics: dict[str, Any]) -> None: ...

    def trial_finished(self, number: int, params: dict[str, Any], value: float | None, state: str) -> None: ...

    def run_finished(self, out: Path, failed: bool = False) -> None: ...


class TrackerObserver:
    """A tracker as an observer of the engine (:mod:`glyphlab.events`): a finished model, a finished trial and the
    run's end reach it as events, like they reach the console."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_event(self, event: Event) -> None:
        if isinstance(event, ModelFinished):
            self.tracker.model_finished(event.label, event.model_dir, dict(event.metrics))
        elif isinstance(event, TrialFinished) and event.state != "FAIL":
            self.tracker.trial_finished(event.number, dict(event.params), event.value, event.state)
        elif isinstance(event, RunFinished):
            self.tracker.run_finished(event.out, failed=event.failed)


def resolve_backend(track: str | None, uri: str | None = None, register: str | None = None) -> str | None:
    """``--track`` as given, or ``mlflow`` when only a tracking URI (option or ``GLYPHLAB_TRACKING_URI``) is set
    or a model is to be registered. ``MLFLOW_TRACKING_URI`` alone does not turn tracking on: it is often set
    once for a whole machine, and says only where MLflow runs go."""
    if register is not None:
        if track and track.strip().lower() not in ("mlflow",):
            raise ConfigError(
                f"--register needs MLflow tracking, not --track {track!r}: the model registry is "
                "MLflow's (drop --track or use --track mlflow)"
            )
        return "mlflow"
    if track:
        track = track.strip().lower()
        if track in ("", "none", "off"):
            return None
        if track not in BACKENDS:
            raise ConfigError(f"--track {track!r} is not a tracking backend: use one of {', '.join(BACKENDS)}")
        return track
    return "mlflow" if (uri or os.environ.get(URI_ENV)) else None


def mlflow_uri(uri: str | None = None) -> str | None:
    """Where MLflow runs go: ``uri`` (``--tracking-uri``), ``GLYPHLAB_TRACKING_URI``, ``MLFLOW_TRACKING_URI``, in
    that order; ``None`` means the local default (:func:`glyphlab.tracking.mlflow_tracker.default_uri`)."""
    return uri or os.environ.get(URI_ENV) or os.environ.get(MLFLOW_URI_ENV) or None


def mlflow_experiment() -> str:
    """The MLflow experiment: ``MLFLOW_EXPERIMENT_NAME``, else ``glyphlab``."""
    return os.environ.get(MLFLOW_EXPERIMENT_ENV) or "glyphlab"


def open_tracker(
    track: str | None,
    out: Path,
    name: str,
    params: dict[str, Any],
    uri: str | None = None,
    tags: dict[str, str] | None = None,
    register: str | None = None,
) -> Tracker | None:
    """The tracker for a run folder ``out`` (``None`` when tracking is off). A resumed run folder that was
    tracked before continues its own MLflow run instead of starting a new one. ``register``: the name under
    which the run's best model goes into MLflow's model registry when the run finishes."""
    backend = resolve_backend(track, uri, register)
    if backend is None:
        return None
    previous = read_tracking(out)
    if backend == "mlflow":
        uri = mlflow_uri(uri)  # the variables name an MLflow store, never a TensorBoard folder
        from glyphlab.tracking.mlflow_tracker import MlflowTracker  # optional extra: glyphlab[mlflow]

        resume_id = (
            previous.get("run_id")
            if previous.get("backend") == "mlflow" and (uri is None or previous.get("uri") == uri)
            else None
        )
        return MlflowTracker(
            out,
            name,
            params,
            uri=uri,
            tags=tags,
            experiment=mlflow_experiment(),
            resume_run_id=resume_id,
            children=previous.get("children") if resume_id else None,
            register=register,
        )
    from glyphlab.tracking.tensorboard_tracker import TensorBoardTracker  # optional extra: glyphlab[tensorboard]

    return TensorBoardTracker(out, name, params, log_dir=uri)


def read_tracking(out: Path) -> dict[str, Any]:
    """What ``tracking.json`` in a run folder says (empty when the run was not tracked or the file is damaged)."""
    try:
        return json.loads((Path(out) / TRACKING_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_tracking(out: Path, info: dict[str, Any]) -> None:
    write_json(Path(out) / TRACKING_FILE, info)


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite top-level values of a model's metrics.json (accuracy, F1s, seconds, ECE ...)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if v != v or v in (float("inf"), float("-inf")):
            continue
        out[k] = float(v)
    return out


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested parameters as ``a.b=value`` strings, each within MLflow's 6,000-character limit."""
    out: dict[str, str] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat_params(v, key + "."))
        else:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            out[key] = text[:6000]
    return out
