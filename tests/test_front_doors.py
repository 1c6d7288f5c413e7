"""One front door: each command and its API twin call the same use case, so on the same inputs they give the
same results; and the two drifts the CLI and the API once had (a TIFF explained, a resume with a changed
setting) are each pinned here, for both doors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import glyphlab as gl
from glyphlab.cli import app
from glyphlab.data.images import NoInkError
from glyphlab.errors import GlyphlabError

runner = CliRunner()
LIMIT = 200  # images per split: logreg on 8x8 digits fits in well under a second
SCORES = ["model", "accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"]


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same small run made by each door."""
    root = tmp_path_factory.mktemp("doors")
    cli_run, api_run = root / "cli", root / "api"
    _ok(["run", "--models", "logreg", "--dataset-option", f"limit={LIMIT}", "--out", str(cli_run), "--no-report"])
    gl.run("digits", ["logreg"], api_run, limit=LIMIT, progress=False)
    return cli_run, api_run


@pytest.fixture(scope="module")
def files(runs, tmp_path_factory, digits):
    """Two test digits as a PNG and as a TIFF, scanned-looking (dark ink on white, 64 px)."""
    folder = tmp_path_factory.mktemp("files")
    out = []
    for i, suffix in enumerate((".png", ".tif")):
        ink = digits.splits["test"].images[i]
        im = Image.fromarray((255 - ink * 255).astype(np.uint8)).resize((64, 64), Image.Resampling.NEAREST)
        im.save(folder / f"{i}{suffix}")
        out.append(folder / f"{i}{suffix}")
    return out


def test_run_gives_the_same_run_through_either_door(runs):
    cli_run, api_run = (gl.Run.open(p) for p in runs)
    pd.testing.assert_frame_equal(cli_run.leaderboard[SCORES], api_run.leaderboard[SCORES])
    settings = ("dataset", "models", "params", "seed", "val_fraction", "variants", "dataset_options")
    assert {k: cli_run.config[k] for k in settings} == {k: api_run.config[k] for k in settings}
    a, b = (np.load(r.path / "models" / "logreg" / "predictions.npz") for r in (cli_run, api_run))
    assert set(a.files) == set(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_evaluate_gives_the_same_scores_through_either_door(runs, tmp_path):
    cli_run, api_run = runs
    _ok(["evaluate", str(cli_run), "--out", str(tmp_path / "cli")])
    by_api = gl.evaluate(api_run, out=tmp_path / "api", progress=False)
    by_cli = gl.Run.open(tmp_path / "cli")
    pd.testing.assert_frame_equal(by_cli.leaderboard[SCORES], by_api.leaderboard[SCORES])
    assert by_api.leaderboard["accuracy"].iloc[0] == gl.Run.open(api_run).leaderboard["accuracy"].iloc[0]


def test_explain_reads_a_tiff_and_gives_the_same_pictures_through_either_door(runs, files, tmp_path):
    model = runs[0] / "models" / "logreg"
    out = tmp_path / "cli"
    _ok(["explain", str(model), *map(str, files), "--out", str(out), "--method", "occlusion"])
    expl = gl.explain(model, files, method="occlusion")
    assert expl.images.shape == (2, 8, 8)  # the TIFF too: read by prepare_file, as predict reads it
    for i, f in enumerate(files):
        written = out / f"{f.stem}-occlusion.png"
        assert written.read_bytes() == expl.to_png([i], [f.name])
    predictor = gl.Predictor(model)
    probs = predictor.predict(files)  # the predict path
    assert [predictor.classes[j] for j in probs.argmax(1)] == [expl.label(i, 0) for i in range(2)]


def test_explain_refuses_a_blank_page_through_either_door(runs, tmp_path):
    model = runs[0] / "models" / "logreg"
    blank = tmp_path / "blank.tif"
    Image.new("L", (64, 64), 255).save(blank)
    result = runner.invoke(app, ["explain", str(model), str(blank), "--out", str(tmp_path / "e")])
    assert result.exit_code == 1 and "no ink" in result.output
    with pytest.raises(NoInkError, match="no ink"):
        gl.explain(model, [blank])


def test_export_writes_the_same_checked_file_through_either_door(runs, tmp_path):
    pytest.importorskip("skl2onnx", reason="ONNX export needs pip install 'glyphlab[serve]'")
    model = runs[0] / "models" / "logreg"
    _ok(["export", str(model), "--onnx", str(tmp_path / "cli.onnx")])
    done = gl.export(model, tmp_path / "api.onnx")
    by_cli = json.loads((tmp_path / "cli.onnx.json").read_text())
    by_api = json.loads(done.sidecar.read_text())
    assert done.path == tmp_path / "api.onnx" and done.max_abs_diff <= by_api["tolerance"]
    assert {k: v for k, v in by_cli.items() if k != "sha256"} == {k: v for k, v in by_api.items() if k != "sha256"}


def test_compare_gives_the_same_table_through_either_door(runs, tmp_path):
    _ok(["compare", *map(str, runs), "--out", str(tmp_path)])
    by_cli = pd.read_csv(tmp_path / "comparison.csv")
    by_api = gl.compare(*runs).table
    cols = ["rank", "run", "model", "accuracy", "f1_macro"]
    pd.testing.assert_frame_equal(by_cli[cols], by_api[cols], check_dtype=False)
    assert len(by_api) == 2 and by_api["accuracy"].nunique() == 1  # the same run twice: one score


def test_a_resume_with_a_changed_setting_is_refused_through_either_door(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs[1], run)
    before = (run / "config.json").read_bytes()
    with pytest.raises(GlyphlabError, match="seed= cannot change them"):
        gl.run(out=run, resume=True, seed=3, progress=False)
    result = runner.invoke(app, ["run", "--resume", str(run), "--seed", "3", "--no-report"])
    assert result.exit_code == 2 and "--seed cannot change them" in " ".join(result.output.split())
    assert (run / "config.json").read_bytes() == before  # the run's record is untouched
    resumed = gl.run(out=run, resume=True, progress=False)  # the run's own settings: it goes on
    pd.testing.assert_frame_equal(resumed.leaderboard[SCORES], gl.Run.open(runs[1]).leaderboard[SCORES])
    assert resumed.config["seed"] == 0
