"""Serving a registered glyphlab model with MLflow's own ``mlflow models serve`` (no network: the current
environment, ``--env-manager local``) and comparing its answers with glyphlab's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
from net_helpers import free_port, url_answers, wait_until_up

from glyphlab.serving.predictor import Predictor
from glyphlab.tracking import read_tracking


def first_test_images(out: Path, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(out / "test_images.npz")
    return data["images"][:n].astype(np.float32) / 255.0, data["labels"][:n]


def expected(out: Path, images: np.ndarray) -> tuple[str, list[int]]:
    """The registered model's label and what glyphlab's own Predictor answers for ``images``."""
    info = read_tracking(out)["registered"]
    predictor = Predictor(out / "models" / info["model"] / "model")
    return info["model"], predictor.predict(images).argmax(axis=1).tolist()


def check_models_serve(uri: str, out: Path, name: str, tmp_path: Path) -> None:
    """``mlflow models serve -m models:/NAME@champion`` answers /invocations with glyphlab's predictions."""
    info = read_tracking(out)["registered"]
    assert info["uri"] == f"models:/{name}@champion" and info["version"] == "1"
    images, _ = first_test_images(out)
    _, want = expected(out, images)
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }  # the glyphlab under test, not an installed one
    log = open(tmp_path / "models-serve.log", "w")
    server = subprocess.Popen(
        [
            str(Path(bin_dir) / "mlflow"),
            "models",
            "serve",
            "-m",
            info["uri"],
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=log,
        stderr=log,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        wait_until_up(
            lambda: url_answers(f"http://127.0.0.1:{port}/ping"),
            server,
            tmp_path / "models-serve.log",
            120,
            "mlflow models serve's /ping",
        )
        body = json.dumps({"inputs": images.tolist()}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            answers = json.loads(resp.read())["predictions"]
        assert [a["label"] for a in answers] == want
        assert all(a["model_id"] == answers[0]["model_id"] and len(a["probabilities"]) == 10 for a in answers)
    finally:
        os.killpg(server.pid, 15)  # mlflow starts uvicorn in a child process: stop the whole group
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
