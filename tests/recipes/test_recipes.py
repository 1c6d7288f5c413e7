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


def test_cv_entries_get_cross_validation_scores_beside_the_report(tmp_path):
    """``cv = 3`` on lr: its 3-fold CV accuracy on train+val with the parameters it was trained with (C = 0.5),
    in models/lr/cv.json and in the comparison beside the report's cv_accuracy; rf asked for none."""
    import json

    from glyphlab.data.splits import merge_splits
    from glyphlab.pipeline.folds import FoldJob
    from glyphlab.pipeline.run import load_run_dataset
    from glyphlab.pipeline.search import cv_score, model_params

    text = GOOD.replace("C = 0.5 } }", "C = 0.5 }, cv = 3 }").replace(
        "f1_macro = 0.4 }", "f1_macro = 0.4, cv_accuracy = 0.91 }"
    )
    recipe_path = _write(tmp_path, text)
    out = run_recipe(recipe_path, tmp_path / "run", quick=True, report=False)
    cv = json.loads((out / "models" / "lr" / "cv.json").read_text())
    assert cv["k"] == 3 and len(cv["folds"]) == 3 and not (out / "models" / "rf" / "cv.json").exists()
    cfg = to_run_config(load_recipe(recipe_path), quick=True)
    pool = merge_splits(load_run_dataset(cfg), ["train", "val"])
    assert cv["n_images"] == len(pool)
    mean, std, folds = cv_score(
        FoldJob("logreg", model_params("logreg", {"C": 0.5}, {}, 0), pool.images, pool.labels, 3, 0)
    )
    assert (cv["mean"], cv["std"], cv["folds"]) == (mean, std, folds) and 0.85 < mean < 1.0
    rows = {r["model"]: r for r in csv.DictReader(open(out / "reference_comparison.csv"))}
    assert float(rows["lr"]["cv_accuracy"]) == round(mean, 4) and float(rows["lr"]["report_cv_accuracy"]) == 0.91
    assert rows["rf"]["cv_accuracy"] == ""


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace('model = "logreg"', 'model = "logregg"'), "models: .*lr: unknown model 'logregg'"),
        (GOOD.replace("C = 0.5", "CC = 0.5"), "lr.params: 'logreg' has no parameter"),
        (GOOD.replace('name = "digits"', ""), "dataset.name: Field required"),
        (GOOD.replace("[dataset]", '[dataset]\nval_fraction = "lots"'), "dataset.val_fraction"),
        (GOOD + "\ncolour = 'blue'\n", "colour: Extra inputs"),
        (
            GOOD.replace("C = 0.5 }", 'C = 0.5 }, search = { space = "nope" }'),
            "lr.search.space: .*no space file .nope.",
        ),
        (
            GOOD.replace("C = 0.5 }", 'C = 0.5 }, search = { space = "svm-default", sampler = "bayes" }'),
            "lr.search.sampler",
        ),
        (
            GOOD.replace("C = 0.5", 'init_from = "pretrain:src"').replace('model = "logreg"', 'model = "mlp"'),
            "models.lr.params.init_from: 'pretrain:src' names no model of \\[pretrain.models\\]",
        ),
        (
            GOOD.replace(
                'rf = { model = "random-forest", params = { n_estimators = 10 } }',
                'both = { model = "ensemble", params = { members = ["model:lr", "model:rf"] } }\n'
                'rf = { model = "random-forest" }',
            ),
            "models.both.params.members: 'model:rf' names no model listed before 'both'",
        ),
        (GOOD.replace("C = 0.5 } }", "C = 0.5 }, cv = 1 }"), "models.lr.cv: .*greater than or equal to 2"),
        (
            GOOD.replace('model = "logreg", params = { C = 0.5 } }', 'model = "mlp", cv = 5 }'),
            "lr.cv: cross-validation scores are for classical models; 'mlp' is a torch model",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_broken_recipes_name_the_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(_write(tmp_path, text))


def test_unknown_recipe_name():
    with pytest.raises(ConfigError, match="no recipe 'nope'"):
        load_recipe("nope")


PRETRAIN_AND_SEARCH = """
name = "two-steps"
[dataset]
name = "digits"
[pretrain.dataset]
name = "digits"
variants = "transpose"
[pretrain.models]
src = { model = "mlp", params = { hidden = [32], epochs = 2, progress = false } }
[models]
tuned = { model = "mlp", params = { init_from = "pretrain:src", hidden = [32], epochs = 1, progress = false } }
svm = { model = "svm", params = { C = 1.0 }, search = { space = "svm-default", trials = 5, sampler = "random", cv = 2 } }
[quick]
search_trials = 3
"""


def test_pretrain_and_search_steps_feed_the_models(tmp_path):
    import json

    import numpy as np

    from glyphlab.models.persistence import load_model

    out = run_recipe(_write(tmp_path, PRETRAIN_AND_SEARCH), tmp_path / "run", quick=True, report=False)
    # the source network was trained first, in its own run folder, on its own (transposed) data
    source = load_model(out / "pretrain" / "models" / "src" / "model")
    assert json.loads((out / "pretrain" / "config.json").read_text())["variants"] == "transpose"
    # the fine-tuned model started from it: its manifest names the source's folder
    tuned = json.loads((out / "models" / "tuned" / "metrics.json").read_text())["params"]
    assert tuned["init_from"] == str(out / "pretrain" / "models" / "src" / "model")
    assert source.module_ is not None
    # the search ran 3 trials (quick), and the svm was trained with its best C and gamma, not the entry's C=1
    trials = list(csv.DictReader(open(out / "search" / "svm" / "trials.csv")))
    assert len(trials) == 3
    best = json.loads((out / "search" / "svm" / "best_params.json").read_text())["searched"]
    svm = json.loads((out / "models" / "svm" / "metrics.json").read_text())["params"]
    assert svm["C"] == best["C"] != 1.0 and svm["gamma"] == best["gamma"]
    assert np.isfinite(
        float(next(r for r in csv.DictReader(open(out / "leaderboard.csv")) if r["model"] == "svm")["accuracy"])
    )


ENSEMBLE_OF_RECIPE_MODELS = """
name = "avg"
[dataset]
name = "digits"
[models]
lr = { model = "logreg", params = { C = 0.5 } }
rf = { model = "random-forest", params = { n_estimators = 20 } }
both = { model = "ensemble", params = { members = ["model:lr", "model:rf"] } }
"""


def test_an_ensemble_averages_models_trained_earlier_in_the_recipe(tmp_path):
    """``members = ["model:LABEL"]`` loads the run's own saved models: the ensemble's test probabilities are
    exactly the mean of lr's and rf's saved ones, and nothing was trained twice."""
    import json

    import numpy as np

    out = run_recipe(_write(tmp_path, ENSEMBLE_OF_RECIPE_MODELS), tmp_path / "run", report=False)
    members = json.loads((out / "models" / "both" / "model" / "members.json").read_text())
    paths = [m["path"] for m in (members["members"] if isinstance(members, dict) else members)]
    assert paths == [str((out / "models" / m / "model").resolve()) for m in ("lr", "rf")]
    proba = {m: np.load(out / "models" / m / "predictions.npz")["proba"] for m in ("lr", "rf", "both")}
    np.testing.assert_allclose(proba["both"], (proba["lr"] + proba["rf"]) / 2, atol=1e-6)
