"""The predict use case at scale: lazy sources, ordered chunks, local processes and Dask, writers, resume."""

from __future__ import annotations

import csv
import json
from concurrent.futures import Future
from itertools import count, islice
from pathlib import Path

import pytest
from PIL import Image
from serving_helpers import digit_png
from typer.testing import CliRunner

from glyphlab.cli import app
from glyphlab.errors import ConfigError, DataError
from glyphlab.pipeline.batch.engine import ordered_results
from glyphlab.pipeline.batch.sources import FileSource
from glyphlab.pipeline.batch.writers import done_files
from glyphlab.pipeline.predict import PredictSettings, predict

runner = CliRunner()


@pytest.fixture(scope="module")
def images(digits, tmp_path_factory) -> Path:
    """24 digits in two sub-folders, a damaged PNG and a blank page: 26 files."""
    root = tmp_path_factory.mktemp("batch") / "imgs"
    test = digits.splits["test"]
    for i in range(24):
        folder = root / f"part{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"d{i:02d}.png").write_bytes(digit_png(test.images[i]))
    (root / "part0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    Image.new("L", (40, 40), 255).save(root / "part1" / "blank.png")
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- sources --------------------------------------------------------------------------------------------------
def test_a_folder_is_walked_in_sorted_path_order(images):
    walked = list(FileSource.of([images]))
    assert walked == [str(p) for p in sorted(images.rglob("*.png"))] and len(walked) == 26


def test_lists_and_csvs_of_paths_are_relative_to_their_own_folder(images, tmp_path):
    files = sorted(images.rglob("d0*.png"))[:3]
    (tmp_path / "list.txt").write_text("# three files\n" + "\n".join(str(f) for f in files) + "\n\nmissing.png\n")
    with open(tmp_path / "paths.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "Path"])
        w.writerows([[i, str(f.relative_to(images.parent))] for i, f in enumerate(files)])
    (images.parent / "paths.csv").write_text((tmp_path / "paths.csv").read_text())
    assert list(FileSource.of([tmp_path / "list.txt"])) == [*map(str, files), str(tmp_path / "missing.png")]
    assert list(FileSource.of([images.parent / "paths.csv"])) == [str(f) for f in files]
    (tmp_path / "bad.csv").write_text("name,label\na.png,1\n")
    with pytest.raises(DataError, match="no column named path"):
        list(FileSource.of([tmp_path / "bad.csv"]))
    with pytest.raises(DataError, match="no such image file or folder"):
        FileSource.of([tmp_path / "nope"])


# -- the engine -------------------------------------------------------------------------------------------------
class _Recorder:
    """An executor that runs nothing until asked for a result, and records how many chunks were pending."""

    workers, name = 1, "recorder"

    def __init__(self) -> None:
        self.pending = 0
        self.most = 0

    def submit(self, task, chunk):
        self.pending += 1
        self.most = max(self.most, self.pending)
        rec = self

        class Lazy(Future):
            def result(self, timeout=None):
                rec.pending -= 1
                return task(chunk)

        return Lazy()


def test_chunks_in_flight_are_bounded_and_the_source_read_lazily():
    rec = _Recorder()
    endless = ([i, i] for i in count())  # a source with no end: only what is consumed is ever made
    got = list(islice(ordered_results(rec, lambda c: [sum(c)], endless, in_flight=3), 50))
    assert got == [[2 * i] for i in range(50)]
    assert rec.most == 3


# -- the use case ---------------------------------------------------------------------------------------------
def test_rows_stream_to_jsonl_csv_and_parquet_alike(logreg_dir, images, tmp_path):
    kept = predict(PredictSettings(logreg_dir, [images]))
    assert kept.rows is not None and [r["file"] for r in kept.rows] == list(FileSource.of([images]))
    assert kept.failed == 2 and kept.written == 26
    bad = {Path(r["file"]).name: r for r in kept.rows if "error" in r}
    assert set(bad) == {"broken.png", "blank.png"} and bad["blank.png"]["no_ink"] is True
    jsonl = predict(PredictSettings(logreg_dir, [images], out=tmp_path / "p.jsonl"))
    assert jsonl.rows is None and _lines(tmp_path / "p.jsonl") == kept.rows
    predict(PredictSettings(logreg_dir, [images], out=tmp_path / "p.csv"))
    with open(tmp_path / "p.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["file"] for r in table] == [r["file"] for r in kept.rows]
    assert [r["label"] for r in table] == [str(r.get("label", "")) for r in kept.rows]
    pytest.importorskip("pyarrow")
    frame = predict(PredictSettings(logreg_dir, [images], out=tmp_path / "p.parquet")).frame()
    assert frame["file"].tolist() == [r["file"] for r in kept.rows]
    best = [r["top"][0]["probability"] if "top" in r else None for r in kept.rows]
    assert [None if p != p else p for p in frame["probability"].tolist()] == best  # NaN (p != p) for no class


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_resume_skips_what_is_written_and_ends_with_the_whole_result(logreg_dir, images, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    whole = tmp_path / f"whole{suffix}"
    predict(PredictSettings(logreg_dir, [images], out=whole))
    part = tmp_path / f"part{suffix}"
    first = predict(PredictSettings(logreg_dir, [sorted(images.rglob("*.png"))[0]], out=part))
    assert first.written == 1
    if suffix != ".parquet":  # a writer killed mid-line: the half row is cut off and written again
        with open(part, "a") as fh:
            fh.write('{"file": "half' if suffix == ".jsonl" else "half,")
    with pytest.raises(ConfigError, match="already exists"):
        predict(PredictSettings(logreg_dir, [images], out=part))
    resumed = predict(PredictSettings(logreg_dir, [images], out=part, resume=True))
    assert (resumed.skipped, resumed.written) == (1, 25)
    assert done_files(part) == done_files(whole) and len(done_files(part)) == 26
    if suffix == ".jsonl":
        assert part.read_text() == whole.read_text()
    again = predict(PredictSettings(logreg_dir, [images], out=part, resume=True))
    assert (again.skipped, again.written) == (26, 0)


def test_local_processes_give_the_one_process_result(logreg_dir, images, tmp_path):
    one = predict(PredictSettings(logreg_dir, [images], out=tmp_path / "one.jsonl", chunk_size=4, workers=1))
    two = predict(PredictSettings(logreg_dir, [images], out=tmp_path / "two.jsonl", chunk_size=4, workers=2))
    assert one.executor == "1 process" and two.executor == "2 local processes"
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "two.jsonl").read_text()


def test_a_dask_cluster_of_two_workers_gives_the_one_process_result(logreg_dir, images, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.chdir(images.parent)  # relative paths: the workers get absolute ones, the rows keep these
    one = predict(PredictSettings(logreg_dir, [images.name], out=tmp_path / "one.jsonl", chunk_size=4, workers=1))
    dask = predict(
        PredictSettings(
            logreg_dir, [images.name], out=tmp_path / "dask.jsonl", chunk_size=4, workers=2, cluster="local"
        )
    )
    assert dask.executor.startswith("Dask, 2 workers") and one.written == dask.written == 26
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "dask.jsonl").read_text()
    broken = next(r for r in _lines(tmp_path / "dask.jsonl") if r["file"].endswith("broken.png"))
    assert broken["error"].startswith(f"{images.name}/part0/broken.png: ")  # named as given, not as the worker saw


# -- progress ------------------------------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    def on_event(self, event) -> None:
        self.events.append(event)


def test_progress_is_the_engine_s_events_after_each_chunk(logreg_dir, images, tmp_path):
    from glyphlab import events as ev

    recorder = Recorder()
    with ev.observing(recorder):
        predict(PredictSettings(logreg_dir, [images], out=tmp_path / "rows.jsonl", chunk_size=4, workers=1))
    first, *progress, last = recorder.events
    assert first == ev.TaskStarted("predict", "predict", 26) and last == ev.TaskEnded("predict")
    assert [p.done for p in progress] == [4, 8, 12, 16, 20, 24, 26] and {p.total for p in progress} == {26}
    assert progress[-1].failed == 2 and progress[-1].eta == 0 and progress[-1].rate > 0
    with ev.observing(recorder := Recorder()):  # a resume with nothing left to do
        predict(PredictSettings(logreg_dir, [images], out=tmp_path / "rows.jsonl", resume=True))
    assert recorder.events == []  # nothing left to do: no bar at all


# -- the command and the API ----------------------------------------------------------------------------------
def test_cli_out_resume_and_errors(logreg_dir, images, tmp_path):
    out = tmp_path / "rows.csv"
    r = runner.invoke(app, ["predict", str(logreg_dir), str(images), "--out", str(out), "--json"])
    assert r.exit_code == 1, r.output  # two files could not be classified, and the batch went on
    summary = json.loads(r.stdout)
    assert (summary["written"], summary["failed"], summary["skipped"]) == (26, 2, 0)
    r = runner.invoke(app, ["predict", str(logreg_dir), str(images), "--out", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output and "--resume" in r.output
    r = runner.invoke(app, ["predict", str(logreg_dir), str(images), "--out", str(out), "--resume"])
    assert r.exit_code == 0 and "0 rows written" in r.output and "26 already there" in r.output
    r = runner.invoke(app, ["predict", str(logreg_dir), str(images), "--out", str(tmp_path / "rows.xlsx")])
    assert r.exit_code == 2 and ".jsonl, .csv or .parquet" in r.output


def test_gl_predict_is_the_use_case(logreg_dir, images):
    import glyphlab as gl

    result = gl.predict(logreg_dir, [images], top_k=2, progress=True)  # its bar: NotebookProgress, from the events
    cli = runner.invoke(app, ["predict", str(logreg_dir), str(images), "--json", "--top-k", "2"])
    assert json.loads(cli.stdout)["predictions"] == result.rows
    frame = result.frame()
    assert len(frame) == 26 and int(frame["no_ink"].sum()) == 1 and frame["error"].notna().sum() == 2


def test_a_worker_that_died_ends_the_job_with_one_line():
    from glyphlab.errors import GlyphlabError
    from glyphlab.pipeline.predict import _guarded

    class Lost:
        lost = (EOFError,)  # what a dead worker's future raises (BrokenProcessPool, KilledWorker)

    def rows():
        yield [{"file": "a.png"}]
        raise EOFError("the worker was killed")

    got = _guarded(rows(), Lost(), "rows.jsonl")
    assert next(got) == [{"file": "a.png"}]
    with pytest.raises(GlyphlabError, match=r"rows so far are in rows.jsonl: run it again with --resume"):
        next(got)


# -- a worker's start --------------------------------------------------------------------------------------------
def test_a_worker_serves_a_checked_onnx_export_without_importing_the_model(logreg_dir, digits):
    """What a batch worker loads (``onnx_alone``): the same probabilities and id, and, in a fresh process, no
    scikit-learn, skops or PyTorch import (skops' type scan alone imports torch where it is installed)."""
    import subprocess
    import sys

    import numpy as np

    from glyphlab.serving.predictor import OnnxOnlyModel, Predictor

    x = digits.splits["test"].images[:16]
    alone, full = Predictor(logreg_dir, onnx_alone=True), Predictor(logreg_dir)
    assert isinstance(alone.model, OnnxOnlyModel) and alone.backend == full.backend == "onnxruntime"
    assert alone.model_id == full.model_id and alone.classes == full.classes
    np.testing.assert_array_equal(alone.predict(x), full.predict(x))
    code = (
        "import sys\nfrom glyphlab.serving.predictor import Predictor\n"
        f"Predictor({str(logreg_dir)!r}, onnx_alone=True)\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'skops', 'glyphlab.models.classical') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_a_usable_export_the_worker_loads_the_model(logreg_dir, tmp_path):
    import shutil

    from glyphlab.serving.predictor import Predictor

    folder = shutil.copytree(logreg_dir, tmp_path / "m")
    (folder / "model.onnx").write_bytes(b"changed after export")
    stale = Predictor(folder, onnx_alone=True)
    assert stale.backend == "native" and "does not match" in stale.onnx_note
    assert stale.model_id == Predictor(logreg_dir).model_id
    (folder / "model.onnx").unlink()
    assert Predictor(folder, onnx_alone=True).backend == "native"
    assert Predictor(logreg_dir, onnx_alone=True, backend="native").backend == "native"
