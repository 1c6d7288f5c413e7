"""Run a task over chunks of files, in this process or a pool of local processes, results in the source's order.

A task is a picklable callable ``task(paths) -> rows`` (one row per path). At most ``in_flight`` chunks are
submitted and not yet written, so memory holds a few chunks per worker whatever the number of files; rows come
back in submission order (a finished later chunk waits for the one before it), which makes the output file's
order the source's order in every executor, and the resume's ``file`` column a plain set to skip.

Worker processes are *spawned* (not forked: a fork of a process that already runs ONNX Runtime's or PyTorch's
thread pools can deadlock) and end with their parent (:func:`glyphlab.pipeline.parallel.exit_with_parent`).
:mod:`.cluster` adds the same interface on a Dask cluster.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Any, Protocol

from glyphlab.events import BatchProgress, emit, watched
from glyphlab.pipeline.parallel import exit_with_parent

Task = Callable[[list[str]], list[dict[str, Any]]]


class Executor(Protocol):
    """Where chunks run: ``submit`` returns something with ``result()`` (a concurrent or a Dask future)."""

    workers: int
    name: str
    #: what a future raises when its worker process died (killed, out of memory): the job stops with one line
    lost: tuple[type[BaseException], ...]

    def submit(self, task: Task, chunk: list[str]) -> Any: ...

    def close(self) -> None: ...


class InProcess:
    """Chunks run here, one after the other, when submitted (the in-flight bound is then one chunk)."""

    workers = 1
    name = "1 process"
    lost: tuple[type[BaseException], ...] = ()

    def submit(self, task: Task, chunk: list[str]) -> Future:
        done: Future = Future()
        done.set_result(task(chunk))
        return done

    def close(self) -> None:
        """Nothing to stop."""


class LocalPool:
    """``workers`` spawned processes on this machine; each keeps what a task caches (a loaded model) for its life."""

    def __init__(self, workers: int) -> None:
        self.workers = int(workers)
        self.name = f"{self.workers} local processes"
        self.lost = (BrokenProcessPool,)
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
        )

    def submit(self, task: Task, chunk: list[str]) -> Future:
        return self._pool.submit(task, chunk)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of ``size`` items (the last one shorter), taken lazily."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def ordered_results(executor: Executor, task: Task, chunks: Iterable[list[str]], in_flight: int) -> Iterator[list]:
    """Each chunk's rows, in the order the chunks came, with at most ``in_flight`` chunks submitted at once."""
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(executor.submit(task, chunk))
            if len(pending) >= max(1, in_flight):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # stopped early (an error, a closed generator): drop what nobody will read
            future.cancel()


class ProgressCounter:
    """Counts rows as they are written and emits where the job stands after each chunk
    (:class:`glyphlab.events.BatchProgress`: done, total, rate, ETA; drawn by whichever observer watches)."""

    def __init__(self, task: str, total: int, skipped: int) -> None:
        self.task, self.total, self.skipped = task, total, skipped
        self.done = self.failed = 0
        self.start = time.perf_counter()

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.done += len(rows)
        self.failed += sum(1 for r in rows if "error" in r)
        if watched():
            emit(self.snapshot())

    def snapshot(self) -> BatchProgress:
        elapsed = time.perf_counter() - self.start
        return BatchProgress(self.task, self.done, self.total, elapsed, self.failed, self.skipped)
