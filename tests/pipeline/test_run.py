import json
import shutil

import numpy as np
import pytest
from PIL import Image

from glyphlab.errors import ConfigError
from glyphlab.pipeline.run import RunConfig, run
from glyphlab.runfolder import RunFolder


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = RunConfig(models=["logreg", "random-forest"], params={"random-forest": {"n_estimators": 40}}, seed=3)
    run(cfg, out, report=False)
    return out, cfg


def test_run_folder_stands_on_its_own(small_run):
    out, cfg = small_run
    config = json.loads((out / "config.json").read_text())
    assert config["models"] == ["logreg", "random-forest"] and config["seed"] == 3
    assert "scikit-learn" in config["versions"]
    rows = RunFolder.open(out).leaderboard_rows()
    assert [r["model"] for r in rows] == sorted(
        [r["model"] for r in rows], key=lambda m: -next(x["accuracy"] for x in rows if x["model"] == m)
    )
    assert {r["model"] for r in rows} == {"logreg", "random-forest"}
    for name in cfg.models:
        d = out / "models" / name
        metrics = json.loads((d / "metrics.json").read_text())
        assert 0.9 < metrics["accuracy"] <= 1.0 and metrics["n_test"] == 450
        assert metrics["train_seconds"] > 0 and metrics["train_cpu_seconds"] > 0  # wall and CPU time of fit
        pred = np.load(d / "predictions.npz")
        assert pred["proba"].shape == (450, 10)
        assert np.mean(pred["y_pred"] == pred["y_true"]) == pytest.approx(metrics["accuracy"])
        for png in ["confusion.png", "confusion_normalized.png", "most_confused.png"]:
            with Image.open(d / png) as im:
                assert im.size[0] > 300 and im.size[1] > 200
        assert (d / "model" / "manifest.json").is_file()
    with Image.open(out / "accuracy_vs_time.png") as im:
        assert im.size[0] > 400


def test_same_seed_same_metrics(small_run, tmp_path):
    out, cfg = small_run
    run(cfg, tmp_path / "again", report=False)
    for name in cfg.models:
        a = json.loads((out / "models" / name / "metrics.json").read_text())
        b = json.loads((tmp_path / "again" / "models" / name / "metrics.json").read_text())
        for key in ("accuracy", "f1_macro", "f1_weighted"):
            assert a[key] == b[key]


def test_resume_keeps_finished_models_and_trains_missing_ones(small_run, tmp_path):
    out, cfg = small_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "models" / "logreg")
    kept = (copy / "models" / "random-forest" / "metrics.json").stat().st_mtime_ns
    run(RunConfig.from_file(copy / "config.json"), copy, resume=True, report=False)
    assert (copy / "models" / "logreg" / "metrics.json").is_file()
    assert (copy / "models" / "random-forest" / "metrics.json").stat().st_mtime_ns == kept


def test_unknown_model_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="unknown model"):
        run(RunConfig(models=["logreg", "no-such-model"]), tmp_path / "r", report=False)
    assert not (tmp_path / "r").exists()
