import json

from typer.testing import CliRunner

from glyphlab.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("run", "evaluate", "datasets", "models", "eda"):
        assert cmd in result.output


def test_models_and_datasets_tables():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "logreg" in result.output and "xgboost" in result.output
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0 and "digits" in result.output and "mnist" in result.output


def test_run_then_evaluate(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--models", "logreg", "--out", str(out), "--no-report", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "leaderboard" in result.output and "logreg" in result.output
    trained = json.loads((out / "models" / "logreg" / "metrics.json").read_text())
    result = runner.invoke(app, ["evaluate", str(out), "--dataset", "digits", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "ev" / "logreg" / "metrics.json").read_text())
    assert again["accuracy"] == trained["accuracy"]


def test_errors_are_one_clear_line(tmp_path):
    result = runner.invoke(app, ["run", "--models", "logreg,nope", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "unknown model 'nope'" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["run", "--dataset", "no/such/path", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "neither a dataset name" in result.output
    result = runner.invoke(app, ["run", "--param", "svm.gama=1", "--models", "svm", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "gama" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such model" in result.output
