import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.persistence import load_model
from glyphlab.models.registry import create_model

NETS = ["mlp", "cnn-small", "cnn-deep", "resnet-small", "cnn-fast"]
#: small and quick settings per net for the tests
FAST = {
    "mlp": dict(epochs=3, hidden=[64]),
    "cnn-small": dict(epochs=10),
    "cnn-deep": dict(epochs=1, batch_size=128),
    "resnet-small": dict(epochs=2, width=[16, 32, 32]),
    "cnn-fast": dict(epochs=3),
}


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    return x[:500], d.target[:500], x[500:600], d.target[500:600], x[1500:], d.target[1500:]


@pytest.fixture(scope="module")
def fitted(digits):
    xtr, ytr, xva, yva, _, _ = digits
    out = {}
    for name in NETS:
        m = create_model(name, progress=False, **FAST[name])
        m.fit(xtr, ytr, xva, yva)
        out[name] = m
    return out


@pytest.mark.parametrize("name", NETS)
def test_fit_predict_shapes(name, fitted, digits):
    m = fitted[name]
    xte = digits[4]
    p = m.predict_proba(xte)
    assert p.shape == (len(xte), 10)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert m.predict(xte).shape == (len(xte),)
    f = m.features(xte[:7])
    assert f.ndim == 2 and f.shape[0] == 7
    assert m.history_ and {"epoch", "train_loss", "val_acc", "lr", "seconds"} <= set(m.history_[0])


def test_cnn_small_learns_digits(fitted, digits):
    assert fitted["cnn-small"].score(digits[4], digits[5]) > 0.8


def test_cnn_fast_learns_digits_and_checks_its_stages(fitted, digits):
    assert fitted["cnn-fast"].score(digits[4], digits[5]) > 0.8
    with pytest.raises(ConfigError, match="one value per stage"):
        create_model("cnn-fast", width=[16, 32], progress=False).fit(digits[0], digits[1])
    with pytest.raises(ConfigError, match="down must be one of"):
        create_model("cnn-fast", down=["stride", "avg", "stride"], progress=False).fit(digits[0], digits[1])


@pytest.mark.parametrize("name", NETS)
def test_save_load_round_trip(name, fitted, digits, tmp_path):
    m = fitted[name]
    m.save(tmp_path / name)
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["extra"]["mean"] == pytest.approx(m.mean_)
    loaded = load_model(tmp_path / name)
    np.testing.assert_array_equal(loaded.predict_proba(digits[4]), m.predict_proba(digits[4]))
    np.testing.assert_array_equal(loaded.features(digits[4][:5]), m.features(digits[4][:5]))


def test_tampered_weights_are_refused(fitted, tmp_path):
    fitted["mlp"].save(tmp_path / "m")
    w = tmp_path / "m" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m")


def test_unknown_param_and_bad_freeze(digits):
    with pytest.raises(ConfigError):
        create_model("cnn-small", dropuot=0.1)
    with pytest.raises(ConfigError):
        create_model("cnn-small", freeze_features=True, progress=False, epochs=1).fit(digits[0], digits[1])


def test_tta_predictions(fitted, digits):
    m = fitted["cnn-small"]
    m.set_params(tta=2)
    try:
        p = m.predict_proba(digits[4][:20])
        assert p.shape == (20, 10)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(p, m.predict_proba(digits[4][:20]))
    finally:
        m.set_params(tta=0)


def test_tta_copies_get_no_background_noise(fitted, digits):
    """With every geometric transform off, a TTA copy is the image itself: the average equals the plain
    prediction even when the model trained with background_noise (test images are not noised again)."""
    m = fitted["cnn-small"]
    x = digits[4][:20]
    plain = m.predict_proba(x)
    m.set_params(tta=3, background_noise=1.0, rotation=0.0, shift=0.0, scale=[1.0, 1.0], elastic=0.0)
    try:
        np.testing.assert_allclose(m.predict_proba(x), plain, atol=1e-5)
    finally:
        m.set_params(tta=0, background_noise=0.0, rotation=10.0, shift=0.1, scale=[0.9, 1.1])


def test_transfer_learning_init_and_freeze(fitted, digits, tmp_path):
    src = fitted["cnn-small"]
    src.save(tmp_path / "src")
    xtr, ytr, xva, yva, _, _ = digits
    noisy = np.clip(xtr + np.random.default_rng(0).normal(0, 0.1, xtr.shape), 0, 1).astype(np.float32)

    # init_from copies the weights before training: with epochs=1 and lr tiny the copy is what we see;
    # check the copy itself on a model whose _init_from we call directly
    m = create_model("cnn-small", init_from=str(tmp_path / "src"), progress=False, epochs=1)
    m.classes_, m.input_shape_ = [str(i) for i in range(10)], (8, 8)
    module = m.build_module((8, 8), 10)
    copied = m._init_from(module, tmp_path / "src")
    assert "head.weight" in copied and "features.0.weight" in copied
    for k, v in src.module_.state_dict().items():
        assert torch.equal(module.state_dict()[k], v)

    frozen = create_model(
        "cnn-small", init_from=str(tmp_path / "src"), freeze_features=True, progress=False, epochs=2, lr=1e-2
    )
    frozen.fit(noisy, ytr, xva, yva)
    before = src.module_.state_dict()
    after = frozen.module_.state_dict()
    for k in before:
        if k.startswith("head."):
            assert not torch.equal(before[k], after[k]), k
        else:
            assert torch.equal(before[k], after[k]), k

    # a 5-class target keeps the features but not the 10-class head
    five = create_model("cnn-small", init_from=str(tmp_path / "src"), progress=False, epochs=1)
    five.fit(xtr[ytr < 5], ytr[ytr < 5])
    assert five.predict_proba(xtr[:3]).shape == (3, 5)
    assert "head.weight" not in five.init_copied_


def test_28x28_and_56x56_inputs():
    rng = np.random.default_rng(0)
    for side in (28, 56):
        x = rng.random((40, side, side), dtype=np.float32)
        y = rng.integers(0, 4, 40)
        for name in ("cnn-small", "resnet-small", "cnn-deep"):
            m = create_model(name, epochs=1, progress=False, **({"width": [8, 8, 8]} if name == "resnet-small" else {}))
            m.fit(x, y)
            assert m.predict_proba(x[:3]).shape == (3, 4)


def test_fit_on_val_trains_on_train_and_val_for_every_epoch(digits):
    xtr, ytr, xva, yva, _, _ = digits
    model = create_model("mlp", epochs=3, hidden=[32], patience=1, fit_on_val=True, progress=False)
    model.fit(xtr, ytr, xva, yva)
    both = np.concatenate([xtr, xva])
    # the input normalisation is computed on the 600 images it trained on, not on the 500 of train alone
    assert model.mean_ == pytest.approx(float(both.mean()), rel=1e-6)
    assert model.mean_ != pytest.approx(float(xtr.mean()), rel=1e-6)
    # no validation: no early stopping (patience=1 could otherwise stop it), no val columns
    assert len(model.history_) == 3
    assert all(row["val_loss"] is None for row in model.history_)
