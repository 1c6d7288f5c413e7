import json

import numpy as np
import pytest

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.persistence import load_model
from glyphlab.models.registry import create_model, list_models, parse_params

CLASSICAL = ["logreg", "svm", "pca-svm", "random-forest", "xgboost"]


def test_registry_lists_classical_models():
    names = {m.name for m in list_models()}
    assert set(CLASSICAL) <= names


@pytest.mark.parametrize("name", CLASSICAL)
def test_fit_predict_save_load_round_trip(name, digits, tmp_path):
    tr, te = digits["train"], digits["test"]
    params = {"n_estimators": 30} if name in {"random-forest", "xgboost"} else {}
    model = create_model(name, **params).fit(tr.images, tr.labels, classes=digits.classes)
    proba = model.predict_proba(te.images)
    assert proba.shape == (len(te), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert model.score(te.images, te.labels) > 0.85
    model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["model"] == name and manifest["classes"] == digits.classes
    assert manifest["input_shape"] == [8, 8] and len(manifest["files"]) == 2  # the weights and MODEL_CARD.md
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(te.images), proba)


def test_missing_class_in_fold_keeps_all_columns(digits):
    tr = digits["train"]
    keep = tr.labels != 7
    for name in ["logreg", "xgboost"]:
        model = create_model(name, **({"n_estimators": 10} if name == "xgboost" else {}))
        model.fit(tr.images[keep], tr.labels[keep], classes=digits.classes)
        proba = model.predict_proba(tr.images[:5])
        assert proba.shape == (5, 10)
        assert np.all(proba[:, 7] == 0)


def test_tampered_weights_are_refused(digits, tmp_path):
    tr = digits["train"]
    create_model("logreg").fit(tr.images, tr.labels).save(tmp_path / "m")
    weights = tmp_path / "m" / "model.skops"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_model(tmp_path / "m")


def test_foreign_files_are_refused(tmp_path):
    pickle_file = tmp_path / "model.pkl"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelFileError, match="never unpickles"):
        load_model(pickle_file)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelFileError, match="no manifest.json"):
        load_model(tmp_path / "folder")
    (tmp_path / "folder" / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a glyphlab model"):
        load_model(tmp_path / "folder")
    with pytest.raises(ModelFileError, match="no such model"):
        load_model(tmp_path / "nowhere")


def test_manifest_cannot_point_outside_its_folder(digits, tmp_path):
    tr = digits["train"]
    create_model("logreg").fit(tr.images, tr.labels).save(tmp_path / "m")
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = {"../evil.skops": "0" * 64}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="outside the model folder"):
        load_model(tmp_path / "m")


def test_untrusted_types_in_skops_file_are_refused(tmp_path, digits):
    import skops.io as sio

    tr = digits["train"]
    model = create_model("logreg").fit(tr.images, tr.labels)
    model.save(tmp_path / "m")
    # a skops file holding a type outside our allow-list, re-hashed so only the type check can catch it
    from glyphlab.fileio import sha256_file

    sio.dump({"payload": np.random.default_rng(0).random}, tmp_path / "m" / "model.skops")
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.skops"] = sha256_file(tmp_path / "m" / "model.skops")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="does not trust"):
        load_model(tmp_path / "m")


def test_unknown_parameters_and_models_are_clear_errors():
    with pytest.raises(ConfigError, match="has no parameter.*gama"):
        create_model("svm", gama=3)
    with pytest.raises(ConfigError, match="unknown model 'svn'"):
        create_model("svn")


def test_parse_params_routes_keys_to_models():
    params = parse_params(["svm.C=3", "seed=5", "n_estimators=40"], ["svm", "random-forest"])
    assert params["svm"] == {"C": 3, "seed": 5}
    assert params["random-forest"] == {"seed": 5, "n_estimators": 40}
    with pytest.raises(ConfigError, match="not a parameter"):
        parse_params(["nope=1"], ["svm"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_params(["C"], ["svm"])


@pytest.mark.parametrize("name", ["svm", "pca-svm"])
def test_svm_trains_when_a_class_has_one_or_two_images(name, digits):
    """Seed 001 has a class with a single image: calibration folds must not crash on it."""
    tr = digits["train"]
    for keep_of_class_3 in (1, 2):
        idx3 = np.flatnonzero(tr.labels == 3)[:keep_of_class_3]
        keep = np.concatenate([np.flatnonzero(tr.labels != 3), idx3])
        model = create_model(name).fit(tr.images[keep], tr.labels[keep], classes=digits.classes)
        proba = model.predict_proba(digits["test"].images)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        assert model.score(digits["test"].images, digits["test"].labels) > 0.85


def test_a_manifest_that_omits_the_weights_file_is_refused(digits, tmp_path):
    tr = digits["train"]
    create_model("logreg").fit(tr.images, tr.labels).save(tmp_path / "m")
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    (tmp_path / "m" / "other.bin").write_bytes(b"x")
    from glyphlab.fileio import sha256_file

    manifest["files"] = {"other.bin": sha256_file(tmp_path / "m" / "other.bin")}  # model.skops left unchecked
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="does not list"):
        load_model(tmp_path / "m")
