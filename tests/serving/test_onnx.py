"""ONNX export: ONNX Runtime gives the model's own probabilities (to 1e-4); the predictor only trusts an ONNX
file exported from the very weights it loaded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from serving_helpers import train_model

from glyphlab.errors import GlyphlabError
from glyphlab.models.base import GlyphModel
from glyphlab.models.persistence import load_model
from glyphlab.serving.onnx_export import OnnxExportError, export_onnx, sidecar_path
from glyphlab.serving.predictor import Predictor

ort = pytest.importorskip("onnxruntime")


def _onnx_probs(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = x.reshape(len(x), -1) if len(inp.shape) == 2 else x
    return sess.run(["probabilities"], {inp.name: feed})[0]


def test_torch_onnx_equals_pytorch(cnn_onnx_dir, digits):
    out = cnn_onnx_dir / "model.onnx"
    x = digits.splits["test"].images[:200]
    want = load_model(cnn_onnx_dir).predict_proba(x)
    for batch in (x[:1], x[:7], x):  # the batch axis is dynamic
        got = _onnx_probs(out, batch)
        np.testing.assert_allclose(got, want[: len(batch)], atol=1e-4)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["kind"] == "torch" and meta["input"]["shape"] == [None, 8, 8] and meta["classes"] == digits.classes
    assert meta["max_abs_diff"] <= 1e-4 and len(meta["sha256"]) == 64


@pytest.mark.parametrize("name, params", [("logreg", {}), ("random-forest", {"n_estimators": 15, "n_jobs": 1})])
def test_sklearn_onnx_equals_sklearn(name, params, digits, tmp_path):
    pytest.importorskip("skl2onnx")
    d = train_model(name, digits, **params).save(tmp_path / name)
    out = export_onnx(d)
    assert out == d / "model.onnx"
    x = digits.splits["test"].images
    np.testing.assert_allclose(_onnx_probs(out, x), load_model(d).predict_proba(x), atol=1e-4)
    p = Predictor(d)
    assert p.backend == "onnxruntime"
    np.testing.assert_allclose(p.predict(x), Predictor(d, backend="native").predict(x), atol=1e-4)


def test_predictor_refuses_stale_or_changed_onnx(cnn_onnx_dir, tmp_path, digits):
    d = tmp_path / "m"
    shutil.copytree(cnn_onnx_dir, d)
    exported = (d / "model.onnx").read_bytes()
    assert Predictor(d).backend == "onnxruntime"
    x = digits.splits["test"].images[:50]
    np.testing.assert_allclose(Predictor(d).predict(x), Predictor(d, backend="native").predict(x), atol=1e-4)
    # the ONNX file changed after export: not used, and backend="onnx" says why
    (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + b"\0")
    p = Predictor(d)
    assert p.backend == "native" and "SHA-256" in p.onnx_note
    with pytest.raises(GlyphlabError, match="SHA-256"):
        Predictor(d, backend="onnx")
    # an ONNX exported from other weights
    (d / "model.onnx").write_bytes(exported)
    assert Predictor(d).backend == "onnxruntime"
    side = sidecar_path(d / "model.onnx")
    meta = json.loads(side.read_text())
    meta["source_files"] = {"weights.safetensors": "0" * 64}
    side.write_text(json.dumps(meta))
    assert Predictor(d).backend == "native" and "other weights" in Predictor(d).onnx_note


def test_unsupported_models_get_a_clear_error(tmp_path):
    class Constant(GlyphModel):
        name = "constant"

        def _fit(self, *a, **k):
            pass

        def predict_proba(self, images):
            return np.full((len(images), 2), 0.5)

        def _save_weights(self, directory):
            return []

        def _load_weights(self, directory, manifest):
            pass

    m = Constant()
    m.classes_, m.input_shape_ = ["a", "b"], (8, 8)
    with pytest.raises(OnnxExportError, match=r"cannot export 'constant' \(Constant\) to ONNX"):
        export_onnx(m, tmp_path / "c.onnx")
    assert not list(tmp_path.iterdir())  # nothing half-written is left
