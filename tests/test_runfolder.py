import numpy as np
import pytest

from glyphlab.errors import RunFolderError
from glyphlab.runfolder import DONE, LAYOUT, LEADERBOARD, LEADERBOARD_KEYS, METRICS, PREDICTIONS, RunFolder


def _fake_run(tmp_path):
    run = RunFolder.create(tmp_path / "run")
    run.write_config({"dataset": "digits", "models": ["a", "b"], "layout": LAYOUT})
    run.write_dataset({"name": "digits", "classes": ["x", "y", "z"], "split_sizes": {"train": 9, "test": 4}})
    run.write_test_images(np.array([[[0.0, 1.0]]] * 4), np.array([0, 1, 2, 2]))
    for name, acc in (("a", 0.5), ("b", 0.75)):
        m = run.model(name)
        m.write_predictions(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 0 if name == "b" else 1]])
        m.write_metrics({"accuracy": acc, "f1_macro": acc, "train_seconds": 1.0, "n_test": 4})
    return run


def test_layout_round_trips(tmp_path):
    run = _fake_run(tmp_path)
    images, labels = run.read_test_images()
    assert images.dtype == np.float32 and images.max() == 1.0 and labels.tolist() == [0, 1, 2, 2]
    assert run.read_test_images_raw()[0].dtype == np.uint8
    pred = run.model("b").read_predictions()
    assert pred["y_pred"].tolist() == [0, 1, 2, 0] and pred["index"].tolist() == [0, 1, 2, 3]
    assert run.classes == ["x", "y", "z"] and run.config["models"] == ["a", "b"]


def test_leaderboard_is_rebuilt_from_finished_models_then_read_from_its_file(tmp_path):
    run = _fake_run(tmp_path)
    assert not run.file(LEADERBOARD).exists()
    assert run.leaderboard_rows() == []  # no model committed (done.json) yet
    for name in ("a", "b"):
        run.model(name).commit()
    rows = run.leaderboard_rows()  # an interrupted run: from each finished model's metrics.json
    assert [r["model"] for r in rows] == ["b", "a"] and rows[0]["accuracy"] == 0.75
    run.write_leaderboard(rows)
    header = run.file(LEADERBOARD).read_text().splitlines()[0]
    assert header.split(",") == list(LEADERBOARD_KEYS)
    board = RunFolder.open(run.path).leaderboard
    assert list(board.columns) == list(LEADERBOARD_KEYS)
    assert board["model"].tolist() == ["b", "a"] and board["accuracy"].tolist() == [0.75, 0.5]
    html = run._repr_html_()
    assert "<table" in html and "0.7500" in html and "digits" in html


def test_models_lists_only_finished_ones(tmp_path):
    run = _fake_run(tmp_path)
    assert run.models == [] and run.unfinished_models() == ["a", "b"]  # metrics, but no done.json
    run.model("a").commit()
    assert run.models == ["a"] and run.unfinished_models() == ["b"]
    assert set(__import__("json").loads(run.model("a").file(DONE).read_text())["files"]) == {METRICS, PREDICTIONS}


def test_only_done_json_makes_a_model_finished(tmp_path):
    """No pre-release layout is read as finished: a model with metrics and a saved model but no done.json (a
    run killed before its commit) is unfinished whatever its config.json says."""
    run = _fake_run(tmp_path)
    run.write_config({"dataset": "digits", "models": ["a", "b"]})
    (run.model("a").model_path).mkdir()
    (run.model("a").model_path / "manifest.json").write_text("{}")
    assert run.models == [] and run.unfinished_models() == ["a", "b"]


def test_clear_errors(tmp_path):
    with pytest.raises(RunFolderError, match="not a folder"):
        RunFolder.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="not a glyphlab run folder"):
        RunFolder.open(tmp_path / "empty")
    run = _fake_run(tmp_path)
    with pytest.raises(RunFolderError, match="has: a, b"):
        run.require_model("c")
    with pytest.raises(RunFolderError, match="bad model label"):
        run.model("../etc")
    (run.model("a").file(PREDICTIONS)).unlink()
    with pytest.raises(RunFolderError, match=f"no readable {PREDICTIONS}"):
        run.model("a").read_predictions()
    assert isinstance(RunFolderError("x"), FileNotFoundError)  # a notebook's `except FileNotFoundError` catches it
    assert run.model("a").file(METRICS).is_file()
