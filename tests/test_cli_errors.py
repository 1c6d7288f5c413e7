"""Every user error is one line and exit code 2, from the one handler every command runs in (cli._Commands)."""

import hashlib
import json
import pickle

import pytest
from typer.testing import CliRunner

from glyphlab import cli
from glyphlab.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(cli.console, "_width", 250)  # tables unwrapped, so a cell reads as one string


def _one_line_error(result, *says: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # exited, no exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for text in says:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "model, param, says",
    [
        ("svm", "svm.C=abc", "model 'svm': C must be a number > 0, got 'abc'"),
        ("mlp", "mlp.lr=fast", "model 'mlp': lr must be a number > 0, got 'fast'"),
        ("random-forest", "random-forest.n_estimators=abc", "n_estimators must be an integer >= 1, got 'abc'"),
        ("mlp", "mlp.tta=100000", "tta must be an integer >= 0 and <= 64"),
    ],
)
def test_a_bad_param_is_refused_before_any_folder_or_training(tmp_path, model, param, says):
    result = runner.invoke(app, ["run", "--models", model, "--param", param, "--out", str(tmp_path / "r")])
    _one_line_error(result, says)
    assert not (tmp_path / "r").exists()


def test_missing_extras_are_named_on_a_core_install(tmp_path, core_install):
    _one_line_error(
        runner.invoke(app, ["run", "--models", "efficientnet-b0", "--out", str(tmp_path / "r")]),
        "needs glyphlab[timm]",
        "pip install 'glyphlab[timm]'",
    )
    listing = runner.invoke(app, ["models"])
    assert listing.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in listing.output.splitlines() if line.count("│") > 3}
    assert "needs glyphlab[timm]" in rows["efficientnet-b0"] and "needs glyphlab[rot]" in rows["rot-cnn"]
    recipes = runner.invoke(app, ["recipe", "--list"])
    assert recipes.exit_code == 0, recipes.output
    rows = {
        line.split("│")[1].strip(): line.split("│")[-2].strip()
        for line in recipes.output.splitlines()
        if line.count("│") > 3 and line.split("│")[1].strip()
    }
    assert rows["mnist-rot"] == "glyphlab[rot]" and rows["digits-classical"] == ""
    _one_line_error(
        runner.invoke(app, ["recipe", "mnist-rot", "--quick", "--out", str(tmp_path / "rr")]),
        "recipe mnist-rot needs glyphlab[rot] (for rot-cnn)",
        "pip install 'glyphlab[rot]'",
    )
    assert not (tmp_path / "rr").exists()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(
        app, ["run", "--models", "logreg", "--param", "max_iter=50", "--out", str(out), "--no-report"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_a_planted_pickle_and_bad_model_folders_are_one_line(tmp_path, run_folder):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_folder / "models" / "logreg" / "model", bad)
    payload = pickle.dumps({"not": "a skops file"})
    (bad / "model.skops").write_bytes(payload)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["files"]["model.skops"] = hashlib.sha256(payload).hexdigest()
    (bad / "manifest.json").write_text(json.dumps(manifest))
    for command in ("evaluate", "serve", "predict", "export"):
        args = [command, str(bad)] + ([str(tmp_path)] if command == "predict" else [])
        _one_line_error(runner.invoke(app, args), f"{bad / 'model.skops'} cannot be read", "BadZipFile")
    (tmp_path / "empty").mkdir()
    _one_line_error(runner.invoke(app, ["serve", str(tmp_path / "empty")]), "holds no manifest.json")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{not json")
    _one_line_error(runner.invoke(app, ["serve", str(tmp_path / "junk")]), "is not valid JSON")


def test_readers_name_an_empty_test_images_file(tmp_path, run_folder):
    """A run killed at the very start once left an empty test_images.npz, and readers said only "Aborted."."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    (run / "test_images.npz").write_bytes(b"")
    for args in (["report", str(run)], ["robustness", str(run), "--angles", "0,90"]):
        _one_line_error(runner.invoke(app, args), str(run / "test_images.npz"), "unreadable", "--resume")
    (run / "test_images.npz").unlink()
    _one_line_error(runner.invoke(app, ["robustness", str(run), "--angles", "0"]), "test_images.npz is missing")


def test_unfinished_models_are_not_read_as_finished(tmp_path, run_folder):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    (run / "models" / "logreg" / "done.json").unlink()  # as if killed before the model's last write
    _one_line_error(
        runner.invoke(app, ["robustness", str(run), "--angles", "0"]),
        "holds no finished model (logreg unfinished",
        f"glyphlab run --resume {run}",
    )


def test_a_failed_run_removes_the_folder_it_made(tmp_path, monkeypatch):
    from glyphlab.pipeline import run as run_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(run_module, "train_and_evaluate", broken)
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", "--models", "logreg", "--out", str(out), "--no-report"])
    assert result.exit_code != 0 and not out.exists()


def test_a_run_that_fails_after_a_model_finished_says_so_and_resumes(tmp_path, monkeypatch):
    from glyphlab.pipeline import run as run_module

    real = run_module.train_and_evaluate
    calls = []

    def second_fails(entry, *args, **kwargs):
        calls.append(entry)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(run_module, "train_and_evaluate", second_fails)
    out = tmp_path / "r"
    args = ["run", "--models", "logreg,more=logreg", "--param", "max_iter=30", "--out", str(out), "--no-report"]
    assert runner.invoke(app, args).exit_code != 0
    failed = json.loads((out / "failed.json").read_text())
    assert failed["finished_models"] == ["logreg"] and "disk on fire" in failed["error"]
    assert (out / "models" / "logreg" / "done.json").is_file() and not (out / "models" / "more" / "done.json").exists()
    monkeypatch.setattr(run_module, "train_and_evaluate", real)
    result = runner.invoke(app, ["run", "--resume", str(out), "--no-report"])
    assert result.exit_code == 0 and "logreg: already finished, kept" in result.output
    assert not (out / "failed.json").exists() and (out / "models" / "more" / "done.json").is_file()


# -- issue 29: nonsense that exited 0 or with a traceback -------------------------------------------------------
def _one_class_folder(root):
    import numpy as np
    from PIL import Image

    for i in range(12):
        (root / "seven").mkdir(parents=True, exist_ok=True)
        arr = np.full((16, 16), 255, np.uint8)
        arr[2:14, 6 + i % 3] = 0
        Image.fromarray(arr).save(root / "seven" / f"{i}.png")
    return root


@pytest.mark.parametrize("model", ["logreg", "svm", "random-forest", "cnn-small"])
def test_a_one_class_dataset_is_refused_before_training(tmp_path, model):
    data = _one_class_folder(tmp_path / "one")
    result = runner.invoke(app, ["run", "--dataset", str(data), "--models", model, "--out", str(tmp_path / "r")])
    _one_line_error(result, "1 class ('seven')", "at least 2")
    assert not (tmp_path / "r").exists()


def test_out_naming_a_file_and_no_models_are_one_line(tmp_path):
    (tmp_path / "taken").write_text("mine")
    _one_line_error(
        runner.invoke(app, ["run", "--models", "logreg", "--out", str(tmp_path / "taken")]), "is a file, not a folder"
    )
    assert (tmp_path / "taken").read_text() == "mine"
    _one_line_error(runner.invoke(app, ["run", "--models", "", "--out", str(tmp_path / "r")]), "no models to run")
    _one_line_error(runner.invoke(app, ["run", "--models", " , ", "--out", str(tmp_path / "r")]), "no models to run")
    assert not (tmp_path / "r").exists()


def test_resume_of_a_missing_folder_says_it_does_not_exist(tmp_path):
    _one_line_error(runner.invoke(app, ["run", "--resume", str(tmp_path / "nowhere")]), "does not exist")


def test_a_full_disk_is_a_write_error_not_a_read_error():
    import errno as errno_

    from safetensors import SafetensorError

    from glyphlab.cli import user_error_message

    full = OSError(errno_.ENOSPC, "No space left on device", "/runs/r/models/x/model.safetensors")
    assert user_error_message(full) == (
        "a file could not be written (/runs/r/models/x/model.safetensors): "
        "no space left on device; free some space and run it again"
    )
    said = user_error_message(
        SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )
    )
    assert said is not None and said.startswith("a file could not be written") and "read" not in said


def test_every_foreign_file_error_is_one_line_from_the_cli_and_a_named_file_from_load_model(tmp_path):
    """One list of the errors that mean "not the file it should be" (glyphlab.errors.FOREIGN_FILE_ERRORS) serves
    both nets: the CLI's and load_model's."""
    import zipfile

    from glyphlab.cli import user_error_message
    from glyphlab.errors import FOREIGN_FILE_ERRORS, ModelFileError
    from glyphlab.models.persistence import load_model
    from glyphlab.models.registry import create_model

    for error in (zipfile.BadZipFile("File is not a zip file"), EOFError("Ran out of input")):
        assert isinstance(error, FOREIGN_FILE_ERRORS)
        said = user_error_message(error)
        assert said is not None and said.startswith("a file could not be read")
    import numpy as np

    x = np.random.default_rng(0).random((40, 8, 8), dtype=np.float32)
    folder = create_model("logreg").fit(x, np.arange(40) % 2).save(tmp_path / "m")
    (folder / "model.skops").write_bytes(b"")  # EOF or not a zip: the loader names the file, never a traceback
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.skops"] = hashlib.sha256(b"").hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="model.skops cannot be read as a 'logreg' model"):
        load_model(folder)
