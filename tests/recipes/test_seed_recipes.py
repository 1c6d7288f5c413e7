"""The seed 001-004 recipes: they validate, carry the reports' figures, and run end to end in quick mode
(the MNIST-based ones skip without real MNIST; their generated files go to a temporary folder)."""

import csv
import json
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
    assert noisy.outputs["submission"] == "ensemble"
    assert noisy.models["ensemble"].params["members"] == ["model:transfer", "model:transfer-b"]
    for label in ("transfer", "transfer-b"):
        assert noisy.models[label].params["fit_on_val"] and noisy.models[label].params["ema"] == 0.995
    # the two averaged networks start from two sources that differ in their seed
    assert [noisy.models[m].params["init_from"] for m in ("transfer", "transfer-b")] == [
        "pretrain:source",
        "pretrain:source-b",
    ]
    assert noisy.pretrain is not None and noisy.pretrain.models["source-b"].params["seed"] == 1
    assert load_recipe("seed003-mnist").models["logreg"].cv == 5
    deep = noisy.models["cnn-deep"].params
    assert deep["augment"] and deep["rotation"] == 10.0 and deep["shift"] == 0.1
    search = noisy.models["pca-svm"].search
    assert search is not None and (search.space, search.sampler, search.cv) == ("seed002-pca-svm", "grid", 3)
    # the transfer source never sees a test digit: it trains on the clean digits outside the noisy test split
    for name in ("seed002-noisy", "seed002-transfer"):
        recipe = load_recipe(name)
        assert recipe.pretrain is not None and recipe.pretrain.dataset.name == "mnist-back-rand-source"
        source = recipe.models["transfer"].params["init_from"].removeprefix("pretrain:")
        assert source in recipe.pretrain.models


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
        for source in ("source", "source-b"):
            assert (out / "pretrain" / "models" / source / "model" / "manifest.json").is_file()
        assert len(list(csv.DictReader(open(out / "search" / "pca-svm" / "trials.csv")))) == 2
        rows = list(csv.reader(open(out / "submission-ensemble.csv")))
        assert rows[0] == ["Id", "Category"] and len(rows) == 1 + 300
        assert np.isin([r[1] for r in rows[1:]], [str(i) for i in range(10)]).all()
    if name == "seed003-mnist":
        for label in ("logreg", "random-forest"):
            cv = json.loads((out / "models" / label / "cv.json").read_text())
            assert cv["k"] == 5 and len(cv["folds"]) == 5 and 0.0 < cv["mean"] <= 1.0
        rows = {r["model"]: r for r in csv.DictReader(open(out / "reference_comparison.csv"))}
        assert float(rows["logreg"]["report_cv_accuracy"]) == 0.91 and rows["logreg"]["cv_accuracy"] != ""


def test_rotated_recipes_quick_run_and_robustness(mnist_data_dir, tmp_path):
    """seed000-rotated and mnist-rot end to end on a few hundred images, then `glyphlab robustness` on the run."""
    from typer.testing import CliRunner

    from glyphlab.cli import app

    out = run_recipe("seed000-rotated", tmp_path / "seed000", quick=True, data_dir=str(mnist_data_dir), report=False)
    _check_run(out, "seed000-rotated")
    result = CliRunner().invoke(app, ["robustness", str(out), "--angles", "0:360:90", "--limit", "100"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "robustness.csv")))
    assert {r["model"] for r in rows} == set(load_recipe("seed000-rotated").models)
    assert [r["angle"] for r in rows if r["model"] == "rot-cnn"] == ["0", "90", "180", "270"]
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"

    out = run_recipe("mnist-rot", tmp_path / "mnist-rot", quick=True, data_dir=str(mnist_data_dir), report=False)
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert [r["model"] for r in rows] == ["rot-cnn"] and 0 <= float(rows[0]["accuracy"]) <= 1
    params = json.loads((out / "models" / "rot-cnn" / "metrics.json").read_text())["params"]
    assert (
        params["fit_on_val"] is True
        and params["tta_rotations"] == 1
        and params["epochs"] == 1
        and params["ema"] == 0.998
    )


# ---------------------------------------------- seed 001's EfficientNet, against a stand-in for timm


@pytest.fixture
def fresh_efficientnet():
    """Imports glyphlab.models.efficientnet anew (against the 'timm' the test set up); afterwards the module and
    the registry entry are put back as they were (with the real timm installed, later tests still find it)."""
    import importlib
    import sys

    from glyphlab.models.registry import MODELS

    name = "glyphlab.models.efficientnet"
    saved, spec = sys.modules.get(name), MODELS.get("efficientnet-b0")

    def load():
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    sys.modules.pop(name, None)
    MODELS.pop("efficientnet-b0", None)
    if saved is not None:
        sys.modules[name] = saved
    if spec is not None:
        MODELS["efficientnet-b0"] = spec


@pytest.fixture
def fake_timm(monkeypatch, fresh_efficientnet):
    """A tiny stand-in for timm.create_model (timm is an extra, not installed in the core test environment)."""
    import sys
    import types

    import torch.nn as nn

    calls = []

    def create_model(name, pretrained=False, in_chans=3, num_classes=1000, drop_rate=0.0, **kw):
        calls.append({"name": name, "pretrained": pretrained, "in_chans": in_chans, **kw})
        if pretrained and "pretrained_cfg_overlay" not in kw:
            raise OSError("no network")
        net = nn.Sequential(nn.Conv2d(in_chans, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        net.num_features = 8
        return net

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    return fresh_efficientnet(), calls


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


def test_efficientnet_with_a_broken_timm_leaves_the_other_models_working(monkeypatch, tmp_path, fresh_efficientnet):
    """timm installed beside a torchvision built for another torch fails at import with a RuntimeError: the
    registry (imported by every command) must still load, and efficientnet-b0 must say what to install."""
    import sys

    from glyphlab.models import registry

    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.delitem(sys.modules, "glyphlab.models.efficientnet", raising=False)
    monkeypatch.delitem(registry.MODELS, "efficientnet-b0", raising=False)  # imported anew by the listing
    names = {spec.name for spec in registry.list_models()}
    assert {"logreg", "cnn-small", "efficientnet-b0"} <= names
    with pytest.raises(ConfigError, match=r"torchvision::nms.*torchvision"):
        registry.create_model("efficientnet-b0").build_module((28, 28), 10)


# ---------------------------------------------- seed 001's EfficientNet, against the real timm (where installed)


def test_efficientnet_with_the_real_timm(monkeypatch, tmp_path, digits, fresh_efficientnet):
    timm = pytest.importorskip("timm")  # the timm extra; skipped where it is not installed
    import torch
    from safetensors.torch import save_file

    from glyphlab.models.persistence import load_model

    eff = fresh_efficientnet()
    x, y = digits["train"].images[:40], digits["train"].labels[:40]
    model = eff.EfficientNetB0(epochs=1, progress=False)
    model.fit(x, y, x, y, classes=digits.classes)
    trunk = model.module_.features
    assert isinstance(trunk, timm.models.efficientnet.EfficientNet) and trunk.conv_stem.in_channels == 1
    assert (model.module_.head.in_features, model.module_.head.out_features) == (1280, 10)
    model.save(tmp_path / "m")
    assert np.allclose(load_model(tmp_path / "m").predict_proba(x), model.predict_proba(x), atol=1e-6)

    # offline (and nothing cached), pretrained=True without pretrained_path asks for a local file
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="pretrained_path"):
        eff.EfficientNetB0(pretrained=True, epochs=1, progress=False).fit(x, y, x, y, classes=digits.classes)

    # a local file of timm's own efficientnet_b0 (RGB stem, 1000-class classifier): its weights are the ones used
    torch.manual_seed(1)
    ref = {k: v.contiguous() for k, v in timm.create_model("efficientnet_b0").state_dict().items()}
    save_file(ref, str(tmp_path / "b0.safetensors"))
    pre = eff.EfficientNetB0(pretrained=True, pretrained_path=str(tmp_path / "b0.safetensors"), progress=False)
    got = pre.build_module((8, 8), 10).features.state_dict()
    assert torch.equal(got["blocks.6.0.conv_pw.weight"], ref["blocks.6.0.conv_pw.weight"])
    assert torch.allclose(got["conv_stem.weight"], ref["conv_stem.weight"].sum(1, keepdim=True))  # grey = R+G+B
    assert "classifier.weight" not in got
