"""calibrate=temperature: fitted on the validation split, saved (hashed) with the model, used when loaded."""

import json

import numpy as np
import pytest

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.persistence import load_model
from glyphlab.models.registry import create_model

FAST = dict(hidden=[32], epochs=3, progress=False, patience=0)


@pytest.fixture(scope="module")
def calibrated(digits, tmp_path_factory):
    tr, te = digits["train"], digits["test"]
    m = create_model("mlp", calibrate="temperature", **FAST)
    m.fit(tr.images[:1000], tr.labels[:1000], tr.images[1000:], tr.labels[1000:], classes=digits.classes)
    out = m.save(tmp_path_factory.mktemp("m") / "model")
    return m, out, te


def test_temperature_is_fitted_saved_and_used(calibrated, digits):
    m, out, te = calibrated
    assert m.temperature_ != 1.0 and m.calibration_["nll_after"] <= m.calibration_["nll_before"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "calibration.json" in manifest["files"]
    loaded = load_model(out)
    assert loaded.temperature_ == pytest.approx(m.temperature_)
    np.testing.assert_allclose(loaded.predict_proba(te.images), m.predict_proba(te.images), atol=1e-6)
    # the same weights at T = 1 give the same classes but other probabilities
    plain = m.predict_proba(te.images)
    m.temperature_ = 1.0
    raw = m.predict_proba(te.images)
    m.temperature_ = loaded.temperature_
    np.testing.assert_array_equal(plain.argmax(1), raw.argmax(1))
    assert np.abs(plain - raw).max() > 1e-3


def test_a_changed_or_missing_calibration_file_is_refused(calibrated, tmp_path):
    import shutil

    _, out, _ = calibrated
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    (copy / "calibration.json").write_text(json.dumps({"temperature": 100.0}))
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_model(copy)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["files"]["calibration.json"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="lists no calibration.json"):
        load_model(copy)


def test_temperature_needs_a_validation_split(digits):
    tr = digits["train"]
    m = create_model("mlp", calibrate="temperature", **FAST)
    with pytest.raises(ConfigError, match="needs one"):
        m.fit(tr.images[:200], tr.labels[:200], classes=digits.classes)
    with pytest.raises(ConfigError, match="not known"):
        create_model("mlp", calibrate="platt", **FAST).fit(tr.images[:200], tr.labels[:200], classes=digits.classes)


def test_onnx_export_applies_the_temperature(calibrated):
    pytest.importorskip("onnxruntime")
    from glyphlab.serving.onnx_export import export_onnx
    from glyphlab.serving.predictor import Predictor

    m, out, te = calibrated
    export_onnx(out)
    onnx = Predictor(out, backend="onnx").predict(te.images[:64])
    np.testing.assert_allclose(onnx, m.predict_proba(te.images[:64]), atol=1e-4)
