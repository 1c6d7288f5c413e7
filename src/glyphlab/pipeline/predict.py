"""The predict use case: image files of any number -> one prediction row per file, streamed to a file or kept.

``glyphlab predict`` and ``gl.predict`` are this module's :func:`predict`; they differ only in how they show
the :class:`Predictions` it returns. Each file goes through the one image path (the model's own
:meth:`~glyphlab.serving.predictor.Predictor.prepare_file`, exactly what the server does with an upload), and a
file that cannot be read, is blank or holds several characters becomes a row with an ``error`` (and
``no_ink``/``several_glyphs``), never the end of the batch.

Scale: the source is read lazily (:mod:`glyphlab.pipeline.batch.sources`), files go in chunks of
``chunk_size`` to an executor (this process, spawned local processes, or a Dask cluster), each worker loads the
model once, and rows are written in the source's order as chunks finish (JSON lines, CSV or Parquet), so memory
holds a few chunks whatever the number of files. ``resume`` skips the files an earlier run wrote. Progress is an
event (:class:`glyphlab.events.BatchProgress` after each chunk, between TaskStarted and TaskEnded), drawn by the
CLI's console observer or ``gl.predict(progress=True)``'s notebook one, as every other step's; the engine prints
nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glyphlab.errors import ConfigError, DataError, GlyphlabError, ModelFileError
from glyphlab.events import TaskEnded, TaskStarted, emit
from glyphlab.pipeline.batch.engine import (
    Executor,
    InProcess,
    LocalPool,
    ProgressCounter,
    chunked,
    ordered_results,
)
from glyphlab.pipeline.batch.sources import FileSource
from glyphlab.pipeline.batch.writers import Row, Schema, done_files, open_writer, output_format

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from glyphlab.data.images import Preprocessing
    from glyphlab.serving.predictor import Predictor

#: the columns of a CSV or Parquet output (JSON lines hold the rows as ``glyphlab predict --json`` prints them)
SCHEMA: Schema = {
    "file": "str",
    "label": "int",
    "class_name": "str",
    "probability": "float",
    "top": "json",
    "error": "str",
    "no_ink": "bool",
    "several_glyphs": "bool",
}
#: the key under which a row carries its prepared input (``keep_inputs``); never written to a file
INPUT_KEY = "_input"
#: files from which ``workers=0`` starts local processes: a worker's start (a Python, glyphlab's imports, the
#: model) took 5-25 s on the 2-core test machine, about what one process prepares 5,000 small files in
AUTO_PARALLEL = 5_000
#: chunks in flight per worker: one running, one queued, so a worker never waits for the client
IN_FLIGHT_PER_WORKER = 2
#: the key of a predict job's TaskStarted/BatchProgress/TaskEnded events
TASK = "predict"


@dataclass(frozen=True)
class PredictSettings:
    """What to predict and how; the CLI's options and ``gl.predict``'s arguments, once."""

    model: str | Path
    sources: Sequence[str | Path]
    top_k: int = 3
    backend: str = "auto"
    max_pixels: int = 50_000_000
    out: str | Path | None = None  #: .jsonl, .csv or .parquet; None keeps the rows in the result
    resume: bool = False  #: add to ``out``, skipping the files it holds
    workers: int = 0  #: local processes; 0: every usable core from AUTO_PARALLEL files on, else this process
    cluster: str | None = None  #: a Dask scheduler address, or "local" for a LocalCluster of ``workers``
    chunk_size: int = 256  #: files per task (one batch through the model)
    keep_inputs: bool = False  #: keep each prepared input (for ``--show-inputs``; holds them all in memory)


@dataclass
class Predictions:
    """What a predict job did: the model, where the rows went, the counts; the rows themselves when kept."""

    model_id: str
    backend: str
    preprocessing: Preprocessing
    executor: str
    out: Path | None
    total: int = 0  #: files this run had to do
    written: int = 0  #: rows written (or kept) by this run
    failed: int = 0  #: of which with an ``error``
    skipped: int = 0  #: files an earlier run had written (``resume``)
    seconds: float = 0.0
    rows: list[Row] | None = None  #: the rows, in the source's order, when ``out`` is None (or ``keep_inputs``)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  #: file -> prepared input (``keep_inputs``)

    @property
    def rate(self) -> float:
        """Files per second of this run."""
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (the output file's columns), read back from ``out`` when they were not kept."""
        import pandas as pd

        if self.rows is not None:
            return pd.DataFrame([flat_row(r) for r in self.rows], columns=list(SCHEMA))
        assert self.out is not None
        fmt = output_format(self.out)
        if fmt == "parquet":
            return pd.read_parquet(self.out)
        if fmt == "csv":
            return pd.read_csv(self.out, keep_default_na=False, na_values=[""])
        with open(self.out, encoding="utf-8") as fh:
            return pd.DataFrame([flat_row(json.loads(line)) for line in fh if line.strip()], columns=list(SCHEMA))


def flat_row(row: Row) -> Row:
    """A row in :data:`SCHEMA`'s columns: the best class's probability beside ``top``, flags always there."""
    top = row.get("top")
    return {
        **{c: row.get(c) for c in ("file", "label", "class_name", "top", "error")},
        "probability": top[0]["probability"] if top else None,
        "no_ink": bool(row.get("no_ink")),
        "several_glyphs": bool(row.get("several_glyphs")),
    }


# -- the task: what a worker does with a chunk of files ----------------------------------------------------------
#: predictors loaded in this process, by (model folder, backend, threads): each worker loads its model once
_LOADED: dict[tuple[str, str, int | None], Predictor] = {}


def _predictor(model: str, backend: str, threads: int | None, model_id: str) -> Predictor:
    key = (model, backend, threads)
    if key not in _LOADED:
        from glyphlab.serving.predictor import Predictor

        # the ONNX export alone when it checks out: a worker then imports no model family (nor torch, nor skops)
        _LOADED[key] = Predictor(model, backend=backend, threads=threads, onnx_alone=True)  # type: ignore[arg-type]
    predictor = _LOADED[key]
    if predictor.model_id != model_id:  # a cluster worker that sees other weights at the same path
        raise ModelFileError(f"{model} on this worker is {predictor.model_id}, not {model_id}: one model for all")
    return predictor


@dataclass(frozen=True)
class PredictTask:
    """Picklable: a chunk of paths -> one row per path, in order (sent to local processes and Dask workers)."""

    model: str
    backend: str
    model_id: str
    top_k: int
    max_pixels: int
    threads: int | None = None
    keep_inputs: bool = False

    def __call__(self, paths: list[str]) -> list[Row]:
        from glyphlab.data.images import DecodeLimits

        predictor = _predictor(self.model, self.backend, self.threads, self.model_id)
        limits = DecodeLimits(max_bytes=max(50_000_000, self.max_pixels), max_pixels=self.max_pixels)
        return predict_rows(predictor, paths, self.top_k, limits, keep_inputs=self.keep_inputs)


def _refusal(path: str, exc: Exception) -> Row:
    from glyphlab.data.images import NoInkError, SeveralGlyphsError

    if isinstance(exc, NoInkError):
        return {"file": path, "error": str(exc), "no_ink": True}
    if isinstance(exc, SeveralGlyphsError):
        return {"file": path, "error": str(exc), "several_glyphs": True}
    if isinstance(exc, (GlyphlabError, OSError)):
        return {"file": path, "error": str(exc)}
    # a decoder's own surprise on one odd file must not end a batch of a million: the row says what it was
    return {"file": path, "error": f"{path}: unexpected {type(exc).__name__}: {exc}"}


def predict_rows(predictor: Predictor, paths: list[str], top_k: int, limits: Any, keep_inputs: bool = False) -> list:
    """Prepare each file (a bad one becomes an error row), classify the good ones in one batch, rows in order."""
    import numpy as np

    rows: list[Row | None] = [None] * len(paths)
    arrays, good = [], []
    for i, path in enumerate(paths):
        try:
            arrays.append(predictor.prepare_file(path, limits))
            good.append(i)
        except Exception as exc:  # see _refusal: every failure of one file is that file's row
            rows[i] = _refusal(path, exc)
    if arrays:
        tops = predictor.top_k(predictor.predict(np.stack(arrays)), top_k)
        for i, top, pixels in zip(good, tops, arrays):
            rows[i] = {"file": paths[i], "label": top[0]["label"], "class_name": top[0]["class_name"], "top": top}
            if keep_inputs:
                rows[i][INPUT_KEY] = pixels  # type: ignore[index]
    return rows  # type: ignore[return-value]


# -- the job: the model, the source, an executor, rows in order --------------------------------------------------
def _check(settings: PredictSettings) -> None:
    if settings.top_k < 1 or settings.chunk_size < 1 or settings.workers < 0:
        raise ConfigError("top_k and chunk_size must be at least 1, and workers 0 (every core) or more")
    if settings.resume and settings.out is None:
        raise ConfigError("resume needs an output file (--out FILE) to read the files already done from")
    if settings.out is not None:
        output_format(settings.out)


def _executor(settings: PredictSettings, total: int) -> Executor:
    """Dask when asked; local processes when asked (``workers`` > 1) or, by default, from :data:`AUTO_PARALLEL`
    files on; never more workers than chunks."""
    from glyphlab.models.torch import usable_cores

    if settings.cluster:
        from glyphlab.pipeline.batch.cluster import DaskCluster

        return DaskCluster(settings.cluster, workers=settings.workers or usable_cores())
    chunks = -(-total // settings.chunk_size)
    workers = settings.workers or (usable_cores() if total >= AUTO_PARALLEL else 1)
    workers = min(workers, chunks)
    return InProcess() if workers <= 1 else LocalPool(workers)


class PredictionJob:
    """An opened predict job: the model loaded here (a bad model fails before any worker starts), the files left to
    do counted (the progress's total), and :meth:`chunks` streaming each chunk's rows in the source's order."""

    def __init__(self, settings: PredictSettings) -> None:
        from glyphlab.data.formats import IMAGE_SUFFIXES
        from glyphlab.serving.predictor import Predictor

        _check(settings)
        self.settings = settings
        # as the workers: a checked ONNX export alone when there is one (no model family imported here either)
        self.predictor = Predictor(settings.model, backend=settings.backend, onnx_alone=True)  # type: ignore[arg-type]
        self.model = str(self.predictor.directory.resolve())
        _LOADED[(self.model, settings.backend, None)] = self.predictor  # the in-process task reuses it
        self.source = FileSource.of(list(settings.sources))
        self.done = done_files(settings.out) if settings.resume and settings.out is not None else set()
        self.total = self.source.count(self.done)
        if self.total == 0 and not self.done:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(self.source.paths)}")
        self.executor_name = "none (nothing left to do)"

    def task(self, threads: int | None) -> PredictTask:
        s, model_id = self.settings, self.predictor.model_id
        return PredictTask(self.model, s.backend, model_id, s.top_k, s.max_pixels, threads, s.keep_inputs)

    def chunks(self) -> Iterator[list[Row]]:
        """Each chunk's rows as it finishes, in order; a BatchProgress event after each chunk."""
        if self.total == 0:
            return
        executor = _executor(self.settings, self.total)
        self.executor_name = executor.name
        task = self.task(None if isinstance(executor, InProcess) else 1)
        emit(TaskStarted(TASK, TASK, self.total))
        counter = ProgressCounter(TASK, self.total, len(self.done))
        sent: list[list[str]] = []

        def todo() -> Iterator[list[str]]:
            for chunk in chunked((f for f in self.source if f not in self.done), self.settings.chunk_size):
                sent.append(chunk)
                yield [os.path.abspath(f) for f in chunk]  # a cluster worker has another working folder

        try:
            in_flight = IN_FLIGHT_PER_WORKER * executor.workers
            for rows in _guarded(ordered_results(executor, task, todo(), in_flight), executor, self.settings.out):
                rows = [_renamed(row, name) for row, name in zip(rows, sent.pop(0))]
                counter.add(rows)
                yield rows
        finally:
            emit(TaskEnded(TASK))
            executor.close()


def _guarded(results: Iterator[list[Row]], executor: Executor, out: str | Path | None) -> Iterator[list[Row]]:
    """The executor's rows; a worker that died (killed, out of memory) ends the job with one line saying what to do."""
    try:
        yield from results
    except executor.lost as exc:
        again = f"the rows so far are in {out}: run it again with --resume" if out else "write to --out to resume"
        raise GlyphlabError(f"a worker process died ({type(exc).__name__}: {exc}); {again}") from None


def _renamed(row: Row, name: str) -> Row:
    """A row under the name the source gave (tasks get absolute paths, for cluster workers in other working
    folders), its error message too: a resume compares these names, and every executor writes the same rows."""
    absolute, row = row["file"], {**row, "file": name}
    if "error" in row:
        row["error"] = row["error"].replace(absolute, name)
    return row


def predict(settings: PredictSettings) -> Predictions:
    """Run the job: rows to ``settings.out`` as they come (or kept in the result), the counts in the result."""
    job = PredictionJob(settings)
    pred = job.predictor
    result = Predictions(pred.model_id, pred.backend, pred.preprocessing, "", None, total=job.total)
    result.skipped = len(job.done)
    writer = None
    if settings.out is not None:
        result.out = Path(settings.out)
        writer = open_writer(result.out, SCHEMA, flat_row, resume=settings.resume)
    kept: list[Row] | None = [] if writer is None or settings.keep_inputs else None
    start = time.perf_counter()
    try:
        for rows in job.chunks():
            for r in rows:
                if INPUT_KEY in r:
                    result.inputs[r["file"]] = r.pop(INPUT_KEY)
            if writer is not None:
                writer.write(rows)
            if kept is not None:
                kept += rows
            result.written += len(rows)
            result.failed += sum(1 for r in rows if "error" in r)
    finally:
        if writer is not None:
            writer.close()
        result.seconds = time.perf_counter() - start
        result.executor = job.executor_name
    result.rows = kept
    return result


def write_shown_inputs(folder: Path, result: Predictions) -> None:
    """``--show-inputs``: the prepared inputs (``keep_inputs``) as PNGs and a sheet of originals beside inputs
    (reporting.inputs.write_inputs) in ``folder``; each row shown gets its picture's path under ``input``."""
    from glyphlab.reporting.inputs import write_inputs

    refused = {
        r["file"]: "no ink" if r.get("no_ink") else "several glyphs"
        for r in result.rows
        if r.get("no_ink") or r.get("several_glyphs")
    }
    shown = [r for r in result.rows if r["file"] in refused or "label" in r]  # unreadable files have no picture
    if not shown:
        return
    paths = write_inputs(
        folder,
        [r["file"] for r in shown],
        [result.inputs.get(r["file"]) for r in shown],
        [r.get("class_name", "") for r in shown],
        [refused.get(r["file"]) for r in shown],
    )
    for r, path in zip(shown, paths):
        if path is not None:
            r["input"] = str(path)
