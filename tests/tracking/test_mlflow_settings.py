"""MLflow's own settings (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``) and the model registry: the
best model registered as a "models from code" pyfunc, loaded by ``mlflow.pyfunc.load_model`` with no pickle.
(``mlflow models serve`` of a registered model is checked against a tracking server in test_tracking.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from registry_helpers import expected, first_test_images

from glyphlab.errors import ConfigError
from glyphlab.pipeline.run import RunConfig, run
from glyphlab.tracking import TRACKING_FILE, mlflow_experiment, mlflow_uri, resolve_backend

mlflow = pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'glyphlab[mlflow]'")
from mlflow import MlflowClient  # noqa: E402

VARIABLES = ("GLYPHLAB_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_uri_precedence(monkeypatch):
    assert mlflow_uri() is None and mlflow_experiment() == "glyphlab"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow-team:5000")
    assert mlflow_uri() == "http://mlflow-team:5000"
    assert resolve_backend(None) is None  # MLflow's variable says where, not whether: it is often set machine-wide
    monkeypatch.setenv("GLYPHLAB_TRACKING_URI", "sqlite:///g.db")
    assert mlflow_uri() == "sqlite:///g.db" and resolve_backend(None) == "mlflow"
    assert mlflow_uri("sqlite:///option.db") == "sqlite:///option.db"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-digits")
    assert mlflow_experiment() == "team-digits"
    assert resolve_backend(None, register="m") == "mlflow"
    with pytest.raises(ConfigError, match="--register needs MLflow"):
        resolve_backend("tensorboard", register="m")


def test_mlflow_variables_and_registry(tmp_path: Path, monkeypatch):
    """The issue's case: MLFLOW_TRACKING_URI (a file store) and MLFLOW_EXPERIMENT_NAME are where the run goes,
    not ./mlflow.db; --register puts the best model in the registry, alias champion, loadable as a pyfunc."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "team" / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-digits")
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(dataset="digits", models=["logreg"], dataset_options={"limit": 300})
    out = run(
        cfg,
        tmp_path / "run",
        report=False,
        track="mlflow",
        register="digits-clf",
    )
    assert not (tmp_path / "mlflow.db").exists()
    info = json.loads((out / TRACKING_FILE).read_text())
    assert info["uri"] == store
    client = MlflowClient(tracking_uri=store)
    assert client.get_experiment(info["experiment_id"]).name == "team-digits"
    assert info["registered"]["uri"] == "models:/digits-clf@champion"
    version = client.get_model_version_by_alias("digits-clf", "champion")
    assert version.run_id == info["children"]["logreg"] and version.tags["glyphlab.model"] == "logreg"
    files = [p.name for p in (tmp_path / "team").rglob("*") if p.is_file()]
    assert "mlflow_pyfunc.py" in files and "manifest.json" in files  # code and glyphlab's folder, no pickle
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]

    mlflow.set_tracking_uri(store)
    try:
        model = mlflow.pyfunc.load_model("models:/digits-clf@champion")
    finally:
        mlflow.set_tracking_uri(None)
    images, _ = first_test_images(out)
    _, want = expected(out, images)
    answers = model.predict(images)
    assert answers["label"].tolist() == want
    assert np.allclose([sum(p.values()) for p in answers["probabilities"]], 1.0, atol=1e-4)
