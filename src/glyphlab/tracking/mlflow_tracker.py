"""MLflow tracking through ``MlflowClient`` (explicit run ids, no global active run): safe to call from a
notebook that has its own MLflow runs open, and from several glyphlab runs in one process."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from glyphlab.errors import TrackingError
from glyphlab.runfolder import ACCURACY_VS_TIME, CONFIG, DATASET, LEADERBOARD, MODEL, MODELS, REPORT, ModelFolder
from glyphlab.tracking import (
    final_metrics,
    flat_params,
    write_tracking,
)

EXPERIMENT = "glyphlab"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
_BATCH = 100  # MLflow takes at most 100 params / 1,000 metrics per log_batch call
_RESULT_FILES = (".json", ".csv", ".png", ".npz", ".md")
#: the alias ``--register`` points at the new version (``models:/NAME@champion``)
CHAMPION = "champion"
#: where in a model's nested run the pyfunc model is logged
PYFUNC_ARTIFACT = "pyfunc"


@contextlib.contextmanager
def _no_progress_bar():
    """No "Downloading artifacts" bar while MLflow copies the local model folder into the pyfunc model."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def default_uri() -> str:
    """An SQLite store in the current folder (the project's), absolute so a later ``cd`` does not move it."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"


class MlflowTracker:
    backend = "mlflow"

    def __init__(
        self,
        out: Path,
        name: str,
        params: dict[str, Any],
        uri: str | None = None,
        tags: dict[str, str] | None = None,
        experiment: str = EXPERIMENT,
        resume_run_id: str | None = None,
        children: dict[str, str] | None = None,
        register: str | None = None,
    ) -> None:
        self.out = Path(out)
        #: the registry name the best model goes to when the run finishes (``--register``), if any
        self.register = register
        #: the registered model version, once registered
        self.registered: dict[str, Any] | None = None
        self.uri = uri or default_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if self.uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in the cwd of the moment
                location = (Path(self.uri[len("sqlite:///") :]).parent / DEFAULT_ARTIFACTS).resolve().as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = exp.experiment_id
        self.children: dict[str, str] = dict(children or {})
        if resume_run_id and self._exists(resume_run_id):
            self.run_id = resume_run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=name, tags={"glyphlab.run_dir": str(self.out.resolve()), **(tags or {})}
            )
            self.run_id = run.info.run_id
            self._log(self.run_id, params=flat_params(params))
        self._save()

    def _exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except Exception:  # deleted, or another store: start a new run
            return False

    def _save(self) -> None:
        write_tracking(
            self.out,
            {
                "backend": self.backend,
                "uri": self.uri,
                "experiment_id": self.experiment_id,
                "run_id": self.run_id,
                "children": self.children,
                **({"registered": self.registered} if self.registered else {}),
                "see": f"mlflow ui --backend-store-uri {self.uri}" if not self.uri.startswith("http") else self.uri,
            },
        )

    def _log(self, run_id: str, params: dict[str, str] | None = None, metrics: list[Metric] | None = None) -> None:
        params_list = [Param(k, v) for k, v in (params or {}).items()]
        for i in range(0, len(params_list), _BATCH):
            self.client.log_batch(run_id, params=params_list[i : i + _BATCH])
        metrics = metrics or []
        for i in range(0, len(metrics), 10 * _BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + 10 * _BATCH])

    def _child(self, name: str, params: dict[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={MLFLOW_PARENT_RUN_ID: self.run_id, MLFLOW_RUN_NAME: name}
        )
        self._log(run.info.run_id, params=flat_params(params))
        return run.info.run_id

    def model_finished(self, label: str, model_dir: Path, metrics: dict[str, Any]) -> None:
        """A nested run for the model: its params, per-epoch history, final metrics and files."""
        try:
            model_dir = Path(model_dir)
            params = {"model": metrics.get("registry_model", label), **(metrics.get("params") or {})}
            run_id = self._child(label, params)
            now = int(time.time() * 1000)
            series = [
                Metric(k, v, now, int(row.get("epoch", i + 1)))
                for i, row in enumerate(ModelFolder(model_dir).read_history())
                for k, v in row.items()
                if k != "epoch"
            ]
            finals = [Metric(k, v, now, 0) for k, v in final_metrics(metrics).items()]
            self._log(run_id, metrics=series + finals)
            if (model_dir / "model").is_dir():
                self.client.log_artifacts(run_id, str(model_dir / "model"), "model")
            for f in sorted(model_dir.iterdir()):
                if f.is_file() and f.suffix in _RESULT_FILES:
                    self.client.log_artifact(run_id, str(f), "results")
            self.client.set_terminated(run_id, "FINISHED")
            self.children[label] = run_id
            self._save()
        except Exception as exc:  # tracking is a copy of the run folder: never the reason a run fails
            warnings.warn(
                f"MLflow logging of {label} failed ({exc}); the run folder still has everything", stacklevel=2
            )

    def trial_finished(self, number: int, params: dict[str, Any], value: float | None, state: str) -> None:
        try:
            run_id = self._child(f"trial-{number}", params)
            if value is not None:
                self._log(run_id, metrics=[Metric("cv_score", float(value), int(time.time() * 1000), number)])
            self.client.set_tag(run_id, "optuna.state", state)
            self.client.set_terminated(run_id, "FINISHED" if state == "COMPLETE" else "KILLED")
            self.children[f"trial-{number}"] = run_id
            self._save()
        except Exception as exc:
            warnings.warn(f"MLflow logging of trial {number} failed ({exc})", stacklevel=2)

    def run_finished(self, out: Path, failed: bool = False) -> None:
        """The run's own files (leaderboard, report, figures, config) on the parent run, and its status."""
        out = Path(out)
        try:
            best = None
            for f in (
                LEADERBOARD,
                REPORT,
                ACCURACY_VS_TIME,
                CONFIG,
                DATASET,
                "search.json",
                "trials.csv",
                "best_params.json",
                "optimization_history.png",
                "param_importance.png",
            ):
                if (out / f).is_file():
                    self.client.log_artifact(self.run_id, str(out / f))
            for label, run_id in self.children.items():
                acc = self.client.get_run(run_id).data.metrics.get("accuracy")
                if acc is not None and (best is None or acc > best[1]):
                    best = (label, acc)
            if best:
                self.client.log_metric(self.run_id, "best_accuracy", best[1])
                self.client.set_tag(self.run_id, "glyphlab.best_model", best[0])
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
        except Exception as exc:
            warnings.warn(f"MLflow logging of the run failed ({exc})", stacklevel=2)
            best = None
        if self.register and not failed:  # asked for by name: a failure here is an error, not a warning
            if best is None:
                raise TrackingError(
                    f"cannot register {self.register!r}: no model of the run was logged to MLflow "
                    f"with an accuracy (see the warnings above); the run folder {out} is complete"
                )
            self.registered = self.register_model(best[0], self.register)

    def register_model(self, label: str, name: str, alias: str = CHAMPION) -> dict[str, Any]:
        """Log model ``label`` of the run as a pyfunc ("models from code": this package's ``mlflow_pyfunc.py``,
        with glyphlab's hashed model folder as its artifact, no pickle) under its nested run, register it as a
        new version of ``name`` and point ``alias`` at it. Returns name, version, alias and the model URI."""
        import tempfile

        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException
        from mlflow.models import ModelSignature
        from mlflow.types.schema import Schema, TensorSpec

        from glyphlab._version import __version__
        from glyphlab.models.persistence import read_manifest
        from glyphlab.tracking import mlflow_pyfunc

        run_id = self.children.get(label)
        model_dir = self.out / MODELS / label / MODEL
        try:
            if run_id is None:
                raise TrackingError(f"model {label!r} has no MLflow run")
            manifest = read_manifest(model_dir)
            h, w = (int(s) for s in manifest["input_shape"])
            signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, h, w))]))
            with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
                path = Path(tmp) / PYFUNC_ARTIFACT
                mlflow.pyfunc.save_model(
                    str(path),
                    python_model=mlflow_pyfunc.__file__,
                    artifacts={mlflow_pyfunc.ARTIFACT: str(model_dir)},
                    signature=signature,
                    pip_requirements=[f"glyphlab[serve]=={__version__}"],
                    metadata={"glyphlab_model": label, "glyphlab_run_dir": str(self.out.resolve())},
                )
                self.client.log_artifacts(run_id, str(path), PYFUNC_ARTIFACT)
            try:
                self.client.create_registered_model(
                    name, description="glyphlab models (pyfunc from code: glyphlab's own model folder, no pickle)"
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            source = f"{self.client.get_run(run_id).info.artifact_uri}/{PYFUNC_ARTIFACT}"
            metrics = self.client.get_run(run_id).data.metrics
            version = self.client.create_model_version(
                name,
                source=source,
                run_id=run_id,
                tags={
                    "glyphlab.model": label,
                    "glyphlab.run_dir": str(self.out.resolve()),
                    "accuracy": f"{metrics.get('accuracy', float('nan')):.4f}",
                },
                description=f"{label} from glyphlab run {self.out.name}",
            )
            self.client.set_registered_model_alias(name, alias, version.version)
        except TrackingError:
            raise
        except Exception as exc:
            raise TrackingError(f"registering {label!r} as {name!r} in {self.uri} failed: {exc}") from exc
        self.registered = {
            "name": name,
            "version": str(version.version),
            "alias": alias,
            "model": label,
            "uri": f"models:/{name}@{alias}",
            "source": source,
        }
        self._save()
        return self.registered
