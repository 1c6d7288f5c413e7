import csv

import pytest

from glyphlab.errors import ConfigError
from glyphlab.recipes import load_recipe, run_recipe, shipped_recipes, to_run_config


def _write(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


GOOD = """
name = "mine"
description = "test"
[dataset]
name = "digits"
[models]
lr = { model = "logreg", params = { C = 0.5 } }
rf = { model = "random-forest", params = { n_estimators = 10 } }
[reference]
source = "a notebook"
lr = { accuracy = 0.5, f1_macro = 0.4 }
[quick]
params = { n_estimators = 5, epochs = 1 }
"""


def test_every_shipped_recipe_validates():
    recipes = shipped_recipes()
    assert "digits-classical" in recipes
    for path in recipes.values():
        load_recipe(path)


def test_quick_overrides_only_reach_models_that_take_them(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD))
    cfg = to_run_config(recipe, quick=True)
    assert cfg.models == ["lr=logreg", "rf=random-forest"]
    assert cfg.params["rf"] == {"n_estimators": 5}
    assert cfg.params["lr"] == {"C": 0.5}
    assert to_run_config(recipe).params["rf"] == {"n_estimators": 10}


def test_run_writes_comparison_with_the_report(tmp_path):
    out = run_recipe(_write(tmp_path, GOOD), tmp_path / "run", quick=True, report=False)
    rows = list(csv.DictReader(open(out / "reference_comparison.csv")))
    assert {r["model"] for r in rows} == {"lr", "rf"}
    lr = next(r for r in rows if r["model"] == "lr")
    assert float(lr["report_accuracy"]) == 0.5 and float(lr["accuracy"]) > 0.9
    assert (out / "models" / "lr" / "model" / "manifest.json").is_file()


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace('model = "logreg"', 'model = "logregg"'), "models: .*lr: unknown model 'logregg'"),
        (GOOD.replace("C = 0.5", "CC = 0.5"), "lr.params: 'logreg' has no parameter"),
        (GOOD.replace('name = "digits"', ""), "dataset.name: Field required"),
        (GOOD.replace('[dataset]', '[dataset]\nval_fraction = "lots"'), "dataset.val_fraction"),
        (GOOD + "\ncolour = 'blue'\n", "colour: Extra inputs"),
        ("name = [", "not valid TOML"),
    ],
)
def test_broken_recipes_name_the_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(_write(tmp_path, text))


def test_unknown_recipe_name():
    with pytest.raises(ConfigError, match="no recipe 'nope'"):
        load_recipe("nope")
