"""A server without PyTorch: ``pip install 'glyphlab[serve]'`` serves an exported network (ONNX) and scikit-learn and
XGBoost models, and never imports torch.

Installing the serve extra into a fresh venv takes a minute or more on 2 cores, too long for the suite (README
records that install, its size and start-up time). The test builds, in a second, an environment in which torch
is really absent: a venv whose site-packages links every package of the test environment except torch and the
packages that need it, with the glyphlab under test on its path. What the serve extra pulls in is checked from
pyproject.toml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from net_helpers import free_port, serve_command
from serving_helpers import digit_png, stop_server, train_model

import glyphlab
from glyphlab.serving.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]
#: torch, its own pieces, the packages built on it, and the test environment's own (editable) glyphlab
LEFT_OUT = (
    "torch",
    "functorch",
    "torchgen",
    "nvidia",
    "triton",
    "captum",
    "e2cnn",
    "escnn",
    "timm",
    "torchvision",
    "__editable__",
    "glyphlab",
    "_glyphlab",
)


def test_serve_extra_does_not_name_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not [d for d in project["dependencies"] + extras["serve"] if d.lower().startswith("torch")]
    assert any(d.startswith("torch") for d in extras["torch"]) and "torch" in extras["all"][0]


@pytest.fixture(scope="module")
def torchless_python(tmp_path_factory) -> Path:
    """A venv whose site-packages are this environment's minus torch and what needs it."""
    site = Path(sysconfig.get_paths()["purelib"])
    root = tmp_path_factory.mktemp("torchless")
    base = getattr(sys, "_base_executable", sys.executable)
    made = subprocess.run([base, "-m", "venv", "--without-pip", str(root / "venv")], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a venv here ({made.stderr.strip()[:200]})")
    python = root / "venv" / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for entry in site.iterdir():
        if not entry.name.lower().startswith(LEFT_OUT):
            (target / entry.name).symlink_to(entry)
    return python


def _env() -> dict[str, str]:
    src = str(Path(glyphlab.__file__).resolve().parents[1])  # the glyphlab under test
    return {**os.environ, "PYTHONPATH": src, "PYTHONNOUSERSITE": "1"}


CHECK = r"""
import importlib.util, json, sys
import numpy as np
from fastapi.testclient import TestClient
from glyphlab.errors import ModelFileError
from glyphlab.serving.app import ServeSettings, create_app
from glyphlab.serving.predictor import Predictor
assert importlib.util.find_spec("torch") is None, "torch is installed here"
images, cnn, cnn_onnx, natives = np.load(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
try:  # a network without its ONNX export cannot be served here, and says what to install
    Predictor(cnn)
    raise AssertionError("a network was loaded without torch")
except ModelFileError as exc:
    assert "pip install 'glyphlab[torch]'" in str(exc), exc
with TestClient(create_app(cnn_onnx)) as client:  # explained by occlusion through the ONNX graph
    ok = client.post("/explanation", json={"pixels": images[0].tolist()})
    assert ok.status_code == 200 and ok.json()["method"] == "occlusion", ok.text
    ig = client.post("/explanation?method=ig", json={"pixels": images[0].tolist()})
    assert ig.status_code == 400 and "glyphlab[torch]" in ig.text, ig.text
out = {}
for path in natives:
    with TestClient(create_app(path, ServeSettings(backend="native"))) as client:
        res = client.post("/prediction", json={"images": images.tolist()})
        assert res.status_code == 200, res.text
        out[path] = [p["label"] for p in res.json()["predictions"]]
        assert client.post("/explanation", json={"pixels": images[0].tolist()}).status_code == 200
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_server_without_torch(torchless_python, cnn_dir, cnn_onnx_dir, logreg_dir, digits, tmp_path):
    """`glyphlab serve` of an exported CNN answers as ONNX Runtime does with torch installed; logreg (skops) and
    XGBoost (its JSON) answer natively; torch is never imported; the CNN without its export names the extra."""
    images = digits["test"].images[:6].astype(np.float32)
    xgb = train_model("xgboost", digits, n_estimators=5, max_depth=2, n_jobs=1).save(tmp_path / "xgb")
    np.save(tmp_path / "images.npy", images)
    run = subprocess.run(
        [
            str(torchless_python),
            "-c",
            CHECK,
            str(tmp_path / "images.npy"),
            str(cnn_dir),
            str(cnn_onnx_dir),
            str(logreg_dir),
            str(xgb),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got.pop("torch") is False
    for path, labels in got.items():
        assert labels == Predictor(path, backend="native").predict(images).argmax(1).tolist(), path

    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        serve_command(cnn_onnx_dir, port, "--no-access-log", python=str(torchless_python)),
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the torch-free server did not answer /health in 120 s"
            time.sleep(0.2)
        assert health["backend"] == "onnxruntime"
        expected = Predictor(cnn_onnx_dir)
        assert health["model_id"] == expected.model_id  # the same weights' digest with or without torch
        for im in images[:3]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/prediction", data=digit_png(im), headers={"Content-Type": "image/png"}
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                answer = json.loads(r.read())
            want = expected.predict(expected.prepare_bytes(digit_png(im))[None])[0]
            assert answer["label"] == int(want.argmax())
            assert answer["probabilities"][answer["class_name"]] == pytest.approx(float(want.max()), abs=1e-5)
    finally:
        stop_server(proc, timeout=20)
