"""Declared parameter types and ranges: a bad value is one ConfigError when the model is made, not a traceback
from scikit-learn or torch later; a saved manifest is held to the same rules when loaded."""

import json

import numpy as np
import pytest

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.params import MAX_TTA
from glyphlab.models.persistence import MANIFEST, load_model
from glyphlab.models.registry import create_model, list_models


@pytest.mark.parametrize(
    "name, params, says",
    [
        ("svm", {"C": "abc"}, "C must be a number > 0, got 'abc'"),
        ("svm", {"C": 0}, "C must be a number > 0"),
        ("mlp", {"lr": "fast"}, "lr must be a number > 0, got 'fast'"),
        ("random-forest", {"n_estimators": "abc"}, "n_estimators must be an integer >= 1, got 'abc'"),
        ("random-forest", {"n_estimators": 2.5}, "n_estimators must be an integer"),
        ("logreg", {"max_iter": True}, "max_iter must be an integer"),  # a bool is not a count
        ("mlp", {"tta": MAX_TTA + 1}, f"tta must be an integer >= 0 and <= {MAX_TTA}"),
        ("mlp", {"optimizer": "adamx"}, "optimizer must be 'adamw' | 'adam'"),
        ("mlp", {"augment": "yes"}, "augment must be true or false"),
        ("mlp", {"dropout": 1.0}, "dropout must be a number >= 0 and < 1"),
        ("svm", {"gamma": "wide"}, "gamma must be 'scale' | 'auto' or a number > 0"),
    ],
)
def test_a_bad_value_is_refused_when_the_model_is_made(name, params, says):
    with pytest.raises(ConfigError) as exc:
        create_model(name, **params)
    assert f"model '{name}'" in str(exc.value) and says in str(exc.value)


def test_set_params_is_checked_too():
    model = create_model("svm")
    with pytest.raises(ConfigError, match="C must be"):
        model.set_params(C="abc")
    assert model.params["C"] == 10.0


@pytest.mark.parametrize(
    "name, params",
    [
        ("svm", {"C": 3, "gamma": 0.01}),
        ("svm", {"gamma": "auto"}),
        ("pca-svm", {"n_components": 0.95}),
        ("random-forest", {"max_depth": None, "max_features": 0.5}),
        ("random-forest", {"max_depth": 8}),
        ("mlp", {"patience": None, "class_weight": "balanced", "scale": 0.1, "tta": MAX_TTA}),
        ("mlp", {"class_weight": [1.0, 2.0], "seed": np.int64(3)}),
        ("ensemble", {"members": ["some/model"], "weights": [1.0]}),
    ],
)
def test_values_of_the_wider_types_are_accepted(name, params):
    assert create_model(name, **params).params.items() >= params.items()


def test_every_model_accepts_its_own_defaults():
    for spec in list_models():
        spec.cls(**spec.cls.defaults)


def test_a_manifest_with_an_unbounded_tta_is_refused(tmp_path, digits):
    train = digits["train"]
    model = create_model("mlp", hidden=[8], epochs=1, progress=False).fit(train.images[:200], train.labels[:200])
    folder = model.save(tmp_path / "m")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["params"]["tta"] = 100000  # the manifest is not hashed: anyone can edit it
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError) as exc:
        load_model(folder)
    assert "manifest.json" in str(exc.value) and "tta must be an integer >= 0 and <= 64, got 100000" in str(exc.value)
