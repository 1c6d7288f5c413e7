"""The seed 001-004 recipes: they validate, carry the reports' figures, and run end to end in quick mode
(the MNIST-based ones skip without real MNIST; their generated files go to a temporary folder)."""

import csv
from pathlib import Path

import numpy as np
import pytest

from glyphlab.data.dataset import Dataset, Split
from glyphlab.errors import ConfigError, DataError
from glyphlab.recipes import load_recipe, run_recipe, shipped_recipes, to_run_config
from glyphlab.recipes.submission import submission_label, write_submission

SEED_RECIPES = ["seed001-alnum36", "seed002-noisy", "seed002-transfer", "seed003-mnist", "seed004-mnist-csv"]
@pytest.mark.parametrize("name", SEED_RECIPES)
def test_seed_recipes_validate_and_have_reference_figures(name):
    recipe = load_recipe(shipped_recipes()[name])
    refs = {k: v for k, v in recipe.reference.items() if isinstance(v, dict)}
    assert refs and all(0 < v["accuracy"] <= 1 for v in refs.values())
    assert recipe.quick.dataset_options.get("limit", 10_000) <= 300
    cfg = to_run_config(recipe, quick=True)
    for label, params in cfg.params.items():
        if "epochs" in load_recipe(shipped_recipes()[name]).models[label].params or recipe.quick.params:
            assert params.get("epochs", 1) == 1


def test_reference_figures_match_the_reports():
    r1 = load_recipe("seed001-alnum36").reference
    assert (r1["logreg"]["accuracy"], r1["svm"]["f1_macro"], r1["efficientnet"]["accuracy"]) == (0.784, 0.744, 0.95)
    assert load_recipe("seed003-mnist").reference["random-forest"]["accuracy"] == 0.97
    r4 = load_recipe("seed004-mnist-csv").reference
    assert r4["cnn-small"]["train_seconds"] == pytest.approx(279.14) and r4["random-forest"]["accuracy"] == 0.8958
    noisy = load_recipe("seed002-noisy")
    assert noisy.outputs["submission"] == "cnn-deep"
    deep = noisy.models["cnn-deep"].params
    assert deep["augment"] and deep["rotation"] == 10.0 and deep["shift"] == 0.1
    assert noisy.models["pca-svm"].params == {"n_components": 50, "C": 100.0, "gamma": 0.05}


def test_submission_label_is_checked():
    assert submission_label({}, ["a"]) is None
    assert submission_label({"submission": "a"}, ["a", "b"]) == "a"
    with pytest.raises(ConfigError, match="model labels"):
        submission_label({"submission": "c"}, ["a", "b"])


def test_write_submission_for_the_hidden_split(tmp_path, digits):
    out = run_recipe(_digits_recipe(tmp_path), tmp_path / "run", quick=True, report=False)
    hidden = digits["test"].images[:25]
    ds = Dataset("d", digits.classes, {"train": digits["train"], "hidden": Split(hidden, None)})
    path = write_submission(out, "lr", ds)
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["Id", "Category"] and len(rows) == 26 and rows[1][0] == "0"
    assert {r[1] for r in rows[1:]} <= set(digits.classes)
    with pytest.raises(DataError, match="hidden"):
        write_submission(out, "lr", digits)
    with pytest.raises(ConfigError, match="no saved model"):
        write_submission(out, "nope", ds)


def _digits_recipe(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "d"\n[dataset]\nname = "digits"\n[models]\nlr = { model = "logreg" }\n')
    return path


def _check_run(out: Path, recipe: str) -> None:
    for f in ("leaderboard.csv", "reference_comparison.csv", "accuracy_vs_time.png"):
        assert (out / f).is_file(), f
    rows = list(csv.DictReader(open(out / "reference_comparison.csv")))
    assert {r["model"] for r in rows} == set(load_recipe(recipe).models)
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)


def test_seed001_quick_runs_end_to_end(tmp_path):
    out = run_recipe("seed001-alnum36", tmp_path / "run", quick=True, report=False)
    _check_run(out, "seed001-alnum36")


@pytest.mark.parametrize("name", ["seed002-noisy", "seed003-mnist", "seed004-mnist-csv"])
def test_mnist_seed_recipes_quick_run_end_to_end(name, mnist_data_dir, tmp_path):
    out = run_recipe(name, tmp_path / "run", quick=True, data_dir=str(mnist_data_dir), report=False)
    _check_run(out, name)
    if name == "seed002-noisy":
        rows = list(csv.reader(open(out / "submission-cnn-deep.csv")))
        assert rows[0] == ["Id", "Category"] and len(rows) == 1 + 300
        assert np.isin([r[1] for r in rows[1:]], [str(i) for i in range(10)]).all()


# ---------------------------------------------- seed 001's EfficientNet, against a stand-in for timm


@pytest.fixture
def fake_timm(monkeypatch):
    """A tiny stand-in for timm.create_model (timm is an extra, not installed in the test environment)."""
    import sys
    import types

    import torch.nn as nn

    from glyphlab.models.registry import MODELS

    calls = []

    def create_model(name, pretrained=False, in_chans=3, num_classes=1000, drop_rate=0.0, **kw):
        calls.append({"name": name, "pretrained": pretrained, "in_chans": in_chans, **kw})
        if pretrained and "pretrained_cfg_overlay" not in kw:
            raise OSError("no network")
        net = nn.Sequential(nn.Conv2d(in_chans, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        net.num_features = 8
        return net

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    sys.modules.pop("glyphlab.models.efficientnet", None)
    import glyphlab.models.efficientnet as eff

    yield eff, calls
    sys.modules.pop("glyphlab.models.efficientnet", None)
    MODELS.pop("efficientnet-b0", None)


def test_efficientnet_offline_pretrained_asks_for_a_local_file(fake_timm, tmp_path, digits):
    eff, calls = fake_timm
    x, y = digits["train"].images[:40], digits["train"].labels[:40]
    with pytest.raises(ConfigError, match="pretrained_path"):
        eff.EfficientNetB0(pretrained=True, epochs=1, progress=False).fit(x, y, x, y, classes=digits.classes)
    weights = tmp_path / "b0.safetensors"
    weights.write_bytes(b"stand-in")
    model = eff.EfficientNetB0(pretrained=True, pretrained_path=str(weights), epochs=1, progress=False)
    model.fit(x, y, x, y, classes=digits.classes)
    assert calls[-1]["in_chans"] == 1 and calls[-1]["pretrained_cfg_overlay"] == {"file": str(weights)}
    assert model.predict_proba(x).shape == (40, 10)
    model.save(tmp_path / "m")
    loaded = eff.EfficientNetB0.load(tmp_path / "m")
    assert calls[-1]["pretrained"] is False  # rebuilding a saved model never fetches ImageNet weights
    assert np.allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-5)
