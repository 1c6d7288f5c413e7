"""Tracked runs, read back with each tool's own reader: MLflow's ``MlflowClient`` (an SQLite store, the file
store, and a real ``mlflow server`` on loopback) and TensorBoard's ``EventAccumulator``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from net_helpers import free_port, url_answers, wait_until_up
from registry_helpers import check_models_serve

from glyphlab.errors import ConfigError
from glyphlab.pipeline.run import RunConfig, run
from glyphlab.tracking import TRACKING_FILE, resolve_backend

mlflow = pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'glyphlab[mlflow]'")
from mlflow import MlflowClient  # noqa: E402


@pytest.fixture(autouse=True)
def _no_tracking_variables(monkeypatch):
    """The machine's own MLflow settings must not leak into the tests (each sets what it checks)."""
    for name in ("GLYPHLAB_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


CFG = dict(dataset="digits", models=["logreg", "mlp"], params={"mlp": {"epochs": 2, "progress": False, "hidden": [32]}})


def _check_mlflow_run(uri: str, out: Path) -> None:
    info = json.loads((out / TRACKING_FILE).read_text())
    assert info["backend"] == "mlflow" and info["uri"] == uri
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(info["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["dataset"] == "digits" and json.loads(parent.data.params["models"]) == ["logreg", "mlp"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"leaderboard.csv", "config.json"}
    metrics = {label: json.loads((out / "models" / label / "metrics.json").read_text()) for label in ("logreg", "mlp")}
    best = max(metrics, key=lambda k: metrics[k]["accuracy"])
    assert parent.data.tags["glyphlab.best_model"] == best
    assert parent.data.metrics["best_accuracy"] == pytest.approx(metrics[best]["accuracy"])
    for label in ("logreg", "mlp"):
        child = client.get_run(info["children"][label])
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.metrics["accuracy"] == pytest.approx(metrics[label]["accuracy"])
        assert child.data.params["model"] == label
        model_files = {a.path for a in client.list_artifacts(child.info.run_id, "model")}
        assert "model/manifest.json" in model_files  # glyphlab's own safe format, not a pickle flavour
        assert not any(p.endswith((".pkl", ".pickle")) for p in model_files)
        results = {a.path for a in client.list_artifacts(child.info.run_id, "results")}
        assert {"results/metrics.json", "results/predictions.npz", "results/confusion.png"} <= results
    mlp = client.get_run(info["children"]["mlp"])
    assert mlp.data.params["epochs"] == "2"
    history = client.get_metric_history(mlp.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2]  # one point per epoch


def test_mlflow_sqlite_store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run(RunConfig(**CFG), tmp_path / "run", report=False, track="mlflow", tracking_uri=uri)
    _check_mlflow_run(uri, out)


def test_mlflow_file_store(tmp_path: Path, monkeypatch):
    """MLflow 3 keeps its old ./mlruns file store behind MLFLOW_ALLOW_FILE_STORE; it receives the same run."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    out = run(RunConfig(**CFG), tmp_path / "run", report=False, track="mlflow", tracking_uri=uri)
    _check_mlflow_run(uri, out)


def test_mlflow_tracking_server_on_loopback(tmp_path: Path):
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
        cwd=tmp_path,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(
            lambda: url_answers(f"{uri}/health"),
            server,
            tmp_path / "server.log",
            180,
            "mlflow server's /health",
            poll=0.5,
        )
        out = run(RunConfig(**CFG), tmp_path / "run", report=False, tracking_uri=uri, register="glyphs")
        _check_mlflow_run(uri, out)  # a URI alone means mlflow
        assert any((tmp_path / "server-artifacts").rglob("manifest.json"))  # the server stored the artifacts
        check_models_serve(uri, out, "glyphs", tmp_path)  # the registered model, served by MLflow itself
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_resumed_run_continues_its_mlflow_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = RunConfig(dataset="digits", models=["logreg"])
    out = run(cfg, tmp_path / "run", report=False, track="mlflow", tracking_uri=uri)
    first = json.loads((out / TRACKING_FILE).read_text())["run_id"]
    run(cfg, out, report=False, resume=True)  # no --track: the run's own tracking goes on
    assert json.loads((out / TRACKING_FILE).read_text())["run_id"] == first
    assert MlflowClient(tracking_uri=uri).get_run(first).info.status == "FINISHED"


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="mlflow, tensorboard"):
        resolve_backend("wandb")
    assert resolve_backend(None, None) is None or os.environ.get("GLYPHLAB_TRACKING_URI")


def test_tensorboard_event_files(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GLYPHLAB_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # MLflow's, not a log folder
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install 'glyphlab[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = run(RunConfig(**CFG), tmp_path / "run", report=False, track="tensorboard")
    info = json.loads((out / TRACKING_FILE).read_text())
    assert info["backend"] == "tensorboard" and Path(info["uri"]) == (out / "tensorboard").resolve()
    acc = EventAccumulator(str(out / "tensorboard" / "mlp"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert [e.step for e in acc.Scalars("epoch/val_loss")] == [1, 2]
    metrics = json.loads((out / "models" / "mlp" / "metrics.json").read_text())
    assert acc.Scalars("test/accuracy")[0].value == pytest.approx(metrics["accuracy"], rel=1e-6)
    assert {"confusion_matrix", "sample_predictions"} <= set(tags["images"])
    assert acc.Images("confusion_matrix")[0].width > 100
    hp = EventAccumulator(str(out / "tensorboard" / "mlp" / "hparams"))
    hp.Reload()
    content = hp.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert session.session_start_info.hparams["epochs"].number_value == 2
    assert session.session_start_info.hparams["model"].string_value == "mlp"


def test_search_trials_are_nested_runs_and_the_refit_joins_them(tmp_path: Path):
    pytest.importorskip("optuna", reason="needs the search extra")
    from glyphlab.pipeline.search import SearchConfig, run_search

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "search"
    run_search(
        SearchConfig(dataset="digits", space="svm-default", trials=3, cv=2, sampler="random", out=str(out)),
        track="mlflow",
        tracking_uri=uri,
    )
    info = json.loads((out / TRACKING_FILE).read_text())
    assert set(info["children"]) == {"trial-0", "trial-1", "trial-2", "svm-best"}
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(info["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["sampler"] == "random"
    assert "trials.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    trials = {t: client.get_run(info["children"][t]) for t in ("trial-0", "trial-1", "trial-2")}
    for t in trials.values():
        assert t.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert 0 < t.data.metrics["cv_score"] <= 1 and "C" in t.data.params
    refit = client.get_run(info["children"]["svm-best"])
    assert refit.data.tags["mlflow.parentRunId"] == parent.info.run_id and "accuracy" in refit.data.metrics
