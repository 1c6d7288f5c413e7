import json
import math

from typer.testing import CliRunner

from glyphlab.cli import app
from glyphlab.runfolder import RunFolder

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
    again = json.loads((tmp_path / "ev" / "models" / "logreg" / "metrics.json").read_text())
    assert again["accuracy"] == trained["accuracy"]
    # the evaluation folder is a run folder of its own: its leaderboard and test images read back
    ev = RunFolder.open(tmp_path / "ev")
    assert ev.leaderboard_rows()[0]["accuracy"] == trained["accuracy"]
    assert len(ev.read_test_images()[1]) == trained["n_test"]


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


def test_run_on_an_images_csv_with_its_labels_csv(tmp_path, digits):
    """Seed 004's format from the command line: the labels file comes in as a dataset option."""
    from glyphlab.data.formats import write_image_csv_pair

    write_image_csv_pair(tmp_path / "images.csv", tmp_path / "labels.csv", digits["train"])
    result = runner.invoke(
        app,
        [
            "run",
            "--dataset",
            str(tmp_path / "images.csv"),
            "--dataset-option",
            f"labels_path={tmp_path / 'labels.csv'}",
            "--models",
            "logreg",
            "--out",
            str(tmp_path / "run"),
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "models" / "logreg" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9 and metrics["n_test"] == math.ceil(0.2 * len(digits["train"]))
    bad = runner.invoke(app, ["run", "--dataset-option", "limit", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


def test_evaluate_refuses_a_dataset_with_other_classes(tmp_path, digits):
    from glyphlab.data.dataset import Split
    from glyphlab.data.formats import write_image_csv_pair

    runner.invoke(app, ["run", "--models", "logreg", "--out", str(tmp_path / "run"), "--no-report"])
    few = digits["test"].labels < 5  # a 5-class dataset of the same 8x8 images
    write_image_csv_pair(
        tmp_path / "i.csv", tmp_path / "l.csv", Split(digits["test"].images[few], digits["test"].labels[few])
    )
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "run"),
            "--dataset",
            str(tmp_path / "i.csv"),
            "--dataset-option",
            f"labels_path={tmp_path / 'l.csv'}",
        ],
    )
    assert result.exit_code == 2 and "meaningless" in result.output


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, capsys):
    import sys

    import pytest

    from glyphlab import cli

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ModuleNotFoundError
    monkeypatch.setattr(sys, "argv", ["glyphlab", "serve", "somewhere"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    assert "pip install 'glyphlab[serve]'" in capsys.readouterr().out


def test_resume_keeps_finished_models_and_refuses_new_settings(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--models", "logreg", "--out", str(out), "--no-report"]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "models" / "logreg" / "metrics.json").read_text()
    result = runner.invoke(app, ["run", "--resume", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "already finished" in result.output
    assert (out / "models" / "logreg" / "metrics.json").read_text() == before
    result = runner.invoke(app, ["run", "--resume", str(out), "--models", "svm", "--param", "C=2", "--no-report"])
    assert result.exit_code != 0
    message = " ".join(result.output.split())  # however the console wrapped it
    assert "--models, --param cannot change them" in message and "--out NEW_FOLDER" in message
    assert not (out / "models" / "svm").exists()


def test_evaluate_defaults_to_the_runs_own_dataset_and_variants(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "run",
            "--models",
            "logreg",
            "--out",
            str(out),
            "--no-report",
            "--seed",
            "2",
            "--dataset-option",
            "limit=150",
            "--variant",
            "rotate:-20:20",
        ],
    )
    assert r.exit_code == 0, r.output
    trained = json.loads((out / "models" / "logreg" / "metrics.json").read_text())
    for target in (out, out / "models" / "logreg", out / "models" / "logreg" / "model"):
        r = runner.invoke(app, ["evaluate", str(target), "--out", str(tmp_path / "ev")])
        assert r.exit_code == 0, r.output
        again = json.loads((tmp_path / "ev" / "models" / "logreg" / "metrics.json").read_text())
        assert (
            (again["accuracy"], again["n_test"])
            == (trained["accuracy"], trained["n_test"])
            == (trained["accuracy"], 150)
        )
        assert "the run's own dataset digits (rotate:-20:20)" in " ".join(r.output.split())
    # a model folder outside any run has no dataset of its own
    import shutil

    shutil.copytree(out / "models" / "logreg" / "model", tmp_path / "alone")
    r = runner.invoke(app, ["evaluate", str(tmp_path / "alone")])
    assert r.exit_code == 2 and "pass --dataset" in r.output


def test_help_shows_the_square_brackets_of_extras():
    """Typer renders help through Rich markup, where an unescaped ``glyphlab[mlflow]`` loses its ``[mlflow]``."""
    import re

    import typer.main

    group = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():
        tokens = {
            t for p in command.params for t in re.findall(r"glyphlab\\?\[[a-z-]+\]", getattr(p, "help", "") or "")
        }
        if not tokens:
            continue
        out = runner.invoke(app, [name, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"}).output
        for token in tokens:
            assert token.replace("\\", "") in out, f"{name} --help lost {token}"
            checked += 1
    assert checked >= 3  # --track (two extras) on several commands, --cluster on predict
