"""The public namespace: every name of the API exists and says what it does, and gl.run(...) then
gl.Run.open(...).interpret(...) gives the same confusion counts as the files the CLI writes."""

import inspect

import numpy as np
import pytest
from typer.testing import CliRunner

import glyphlab as gl
from glyphlab.cli import app

PUBLIC = [
    "list_datasets",
    "list_models",
    "load_dataset",
    "create_model",
    "load_model",
    "run",
    "Run",
    "Predictor",
    "search",
    "recipe",
    "robustness",
    "Interpretation",
    "evaluate",
    "explain",
    "export",
    "Explanation",
    "compare",
    "runs",
    "Comparison",
    "read",
    "predict",
]
METHODS = {
    "Run": ["open", "leaderboard", "interpret", "report", "models", "model", "read_test_images"],
    "Interpretation": [
        "confusion_matrix",
        "most_confused",
        "top_losses",
        "plot_confusion_matrix",
        "plot_top_losses",
        "plot_most_confused",
    ],
    "Predictor": ["predict"],
    "Explanation": ["plot", "to_png", "overlays", "contrast"],
    "Comparison": ["table", "mcnemar", "write"],
}


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_exists_with_a_docstring(name):
    obj = getattr(gl, name)
    assert name in gl.__all__ and name in dir(gl)
    assert (inspect.getdoc(obj) or "").strip(), f"gl.{name} has no docstring"
    for attr in METHODS.get(name, []):
        member = inspect.getattr_static(obj, attr)
        doc = inspect.getdoc(member.fget if isinstance(member, property) else getattr(obj, attr))
        assert (doc or "").strip(), f"gl.{name}.{attr} has no docstring"


def test_unknown_name_and_errors_are_the_builtin_kinds(tmp_path):
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gl.nope  # noqa: B018
    with pytest.raises(FileNotFoundError, match="not a folder"):
        gl.Run.open(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        gl.create_model("nope")
    with pytest.raises(ValueError):
        gl.load_dataset(tmp_path / "no-such-folder")
    assert issubclass(gl.ConfigError, ValueError) and issubclass(gl.RunFolderError, FileNotFoundError)


def test_registries_are_tables():
    models = gl.list_models("cnn*")
    assert set(models["name"]) >= {"cnn-small"} and all(n.startswith("cnn") for n in models["name"])
    assert "<table" in models._repr_html_()
    assert "digits" in set(gl.list_datasets()["name"])
    ds = gl.load_dataset("digits", limit=50)
    assert len(ds.splits["train"]) == 50 and "<table" in ds._repr_html_()


def test_api_run_gives_the_cli_files_counts(tmp_path, capsys):
    runner = CliRunner()
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    result = runner.invoke(
        app,
        [
            "run",
            "--models",
            "logreg,svm",
            "--dataset-option",
            "limit=150",
            "--out",
            str(cli_out),
            "--no-report",
            "--seed",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    capsys.readouterr()
    run = gl.run("digits", models=["logreg", "svm"], out=api_out, limit=150, seed=2, progress=False)
    assert capsys.readouterr().out == ""  # progress=False prints nothing, no table either
    assert isinstance(run, gl.Run) and sorted(run.models) == ["logreg", "svm"]
    reopened = gl.Run.open(api_out)
    for name in ("logreg", "svm"):
        counts = reopened.interpret(name).confusion_matrix().to_numpy()
        from_cli = np.loadtxt(cli_out / "models" / name / "confusion_counts.csv", delimiter=",", skiprows=1)
        assert counts.dtype.kind == "i" and counts.sum() == 150
        np.testing.assert_array_equal(counts, from_cli)
    board = reopened.leaderboard
    assert board["accuracy"].tolist() == gl.Run.open(cli_out).leaderboard["accuracy"].tolist()
    assert board["n_test"].tolist() == [150, 150] and "<table" in reopened._repr_html_()
    assert reopened.interpret().name == board["model"][0]  # the best model by default
