"""The ensemble model: averaging/vote, saved without pickle, members pinned by SHA-256, usable in a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.persistence import load_model
from glyphlab.models.registry import create_model


@pytest.fixture(scope="module")
def saved_logreg(digits, tmp_path_factory):
    tr = digits["train"]
    model = create_model("logreg", max_iter=100).fit(tr.images, tr.labels, classes=digits.classes)
    return model, model.save(tmp_path_factory.mktemp("m") / "logreg")


@pytest.mark.parametrize("method", ["average", "vote"])
def test_ensemble_of_a_model_with_itself_equals_the_model(digits, saved_logreg, method, tmp_path):
    model, path = saved_logreg
    tr, te = digits["train"], digits["test"]
    ens = create_model("ensemble", members=[str(path), str(path)], method=method)
    ens.fit(tr.images, tr.labels, classes=digits.classes)
    if method == "average":
        np.testing.assert_allclose(ens.predict_proba(te.images), model.predict_proba(te.images), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ens.predict(te.images), model.predict(te.images))
    saved = ens.save(tmp_path / "ens")
    assert sorted(p.name for p in saved.iterdir()) == ["MODEL_CARD.md", "manifest.json", "members.json"]
    again = load_model(saved)
    np.testing.assert_allclose(again.predict_proba(te.images), ens.predict_proba(te.images), rtol=0, atol=1e-12)


def test_changed_member_is_refused(digits, tmp_path):
    tr = digits["train"]
    member = create_model("logreg", max_iter=50).fit(tr.images, tr.labels, classes=digits.classes).save(tmp_path / "m")
    ens = create_model("ensemble", members=[str(member)]).fit(tr.images, tr.labels, classes=digits.classes)
    saved = ens.save(tmp_path / "ens")
    create_model("logreg", C=1.0, max_iter=50).fit(tr.images, tr.labels, classes=digits.classes).save(member)
    with pytest.raises(ModelFileError, match="does not match the ensemble's record"):
        load_model(saved)


def test_member_models_are_trained_and_saved_inside(digits, tmp_path):
    tr, te = digits["train"], digits["test"]
    ens = create_model(
        "ensemble",
        member_models=["logreg", "random-forest"],
        method="vote",
        weights=[2, 1],
        member_params={"random-forest": {"n_estimators": 20, "n_jobs": 1}, "logreg": {"max_iter": 100}},
    )
    ens.fit(tr.images, tr.labels, classes=digits.classes)
    assert ens.score(te.images, te.labels) > 0.9
    saved = ens.save(tmp_path / "ens")
    entries = json.loads((saved / "members.json").read_text())["members"]
    assert [e["path"] for e in entries] == ["members/0-logreg", "members/1-random-forest"]
    np.testing.assert_allclose(load_model(saved).predict_proba(te.images), ens.predict_proba(te.images))


def test_bad_params():
    with pytest.raises(ConfigError, match="method"):
        create_model("ensemble", method="median")
    with pytest.raises(ConfigError, match="2 weights for 1 members"):
        create_model("ensemble", member_models=["logreg"], weights=[1, 2])
    with pytest.raises(ConfigError, match="member_params names svm"):
        create_model("ensemble", member_models=["logreg"], member_params={"svm": {}})


def test_ensemble_in_a_run(tmp_path):
    from typer.testing import CliRunner

    from glyphlab.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            "digits",
            "--models",
            "logreg,ensemble",
            "--out",
            str(out),
            "--param",
            'ensemble.member_models=["logreg","logreg"]',
            "--no-report",
        ],
        env={"COLUMNS": "120"},
    )
    assert res.exit_code == 0, res.output
    board = (out / "leaderboard.csv").read_text()
    assert "ensemble" in board and "logreg" in board
    rows = {line.split(",")[0]: float(line.split(",")[1]) for line in board.splitlines()[1:]}
    assert rows["ensemble"] == rows["logreg"]  # two identical members: the same predictions


def test_a_name_given_twice_trains_two_seeds(digits):
    """member_models=["mlp", "mlp"] is two networks from seeds 5 and 6 (the ensemble's seed, then the next),
    not one network twice; an explicit member seed is moved on the same way."""
    tr, te = digits["train"], digits["test"]
    ens = create_model(
        "ensemble", member_models=["mlp", "mlp"], seed=5, member_params={"mlp": {"epochs": 1, "progress": False}}
    )
    ens.fit(tr.images, tr.labels, classes=digits.classes)
    assert [m.params["seed"] for m in ens.members_] == [5, 6]
    a, b = (m.predict_proba(te.images) for m in ens.members_)
    assert np.abs(a - b).max() > 1e-3  # different initialisations, different networks
    from glyphlab.models.ensemble import member_params

    assert [member_params("mlp", {"seed": 3}, 0, repeat=k)["seed"] for k in range(3)] == [3, 4, 5]
