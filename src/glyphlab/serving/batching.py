"""Adaptive micro-batching: concurrent requests' images go through the model together, one batch at a time.

One image through ONNX Runtime costs a fixed overhead (session run, thread hand-off) that a batch pays
once. The batcher keeps at most one inference running per worker; images that arrive while it runs are
queued and become the next batch (up to ``max_batch`` images). So batches grow with the load and an idle
server answers a lone request at once, without a timer to tune (BentoML's adaptive batching, without the
wait window). Each caller gets exactly the rows of its own images; a failed batch fails each of its callers.

A batch the model is expected to finish within ``inline_s`` (from the time per image it has taken so far)
runs on the event loop itself: for a small ONNX batch the hop to a worker thread and back cost more CPU
than the inference (on a 2-core server, 0.7 ms of a 2.4 ms request). A slower model (PyTorch, a big net)
still runs in a thread, so the loop keeps answering while it computes; the first batch always does, to
measure it.

A caller may hand over a function that makes its images instead of the images (an upload's decoding
and preparation): the batch calls it next to the other callers', back to back, in one worker thread (never
on the event loop, whatever the upload costs). On a shared 2-core VM the
caches are cold again a few milliseconds after a request: one upload's whole path (decode, prepare, model,
JSON) cost 1.2 ms of CPU back to back and 2.4 ms after 10 ms away, three together after the same gap
1.34 ms each (``bench/serve_cold.py``, AMD EPYC Zen 3). ``wait_s`` lets the first caller of a
batch wait that long for others to join (Triton's ``max_queue_delay``): latency traded for CPU under load,
off (0) by default.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from fastapi.concurrency import run_in_threadpool

#: what a caller hands over: (n, H, W) images, or a function that makes them when its batch is assembled
Images = np.ndarray | Callable[[], np.ndarray]


class MicroBatcher:
    """``await batcher.predict(x)`` for (n, H, W) images -> (n, n_classes), batched with concurrent callers."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 32,
        inline_s: float = 0.002,
        wait_s: float = 0.0,
        max_callers: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_callers is not None and max_callers < 1:
            raise ValueError(f"max_callers must be at least 1, got {max_callers}")
        if not 0.0 <= wait_s <= 1.0:
            raise ValueError(f"wait_s must be between 0 and 1 second, got {wait_s}")
        self._predict = predict
        self.max_batch = int(max_batch)
        self.inline_s = float(inline_s)
        #: how long the oldest caller waits for others before its batch runs (unless the batch is full first)
        self.wait_s = float(wait_s)
        #: the most callers that can be pending at once (a server's concurrency limit), if there is one: that
        #: many waiting is a full batch too, as nobody else can join
        self.max_callers = max_callers
        #: seconds per image of the recent model calls (a running mean); None before the first
        self.per_image_s: float | None = None
        #: how many batches ran on the event loop (the rest went to a thread)
        self.inline_batches = 0
        #: (images or their maker, the caller's future, when it arrived on the loop's clock)
        self._pending: list[tuple[Images, asyncio.Future, float]] = []
        self._worker: asyncio.Task | None = None
        self._full: asyncio.Future | None = None  # set while waiting for a batch to fill
        self._taken: list[tuple[np.ndarray, asyncio.Future]] = []  # the batch being run
        #: sizes of the batches run so far (the last 1,000), to see the batching at work
        self.batch_sizes: deque[int] = deque(maxlen=1000)

    async def predict(self, images: Images) -> np.ndarray:
        """The model's rows for ``images``; a function given instead is called once, when the batch is assembled
        (it counts as one image towards ``max_batch``), and what it raises is raised here, to this caller only."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append((images, fut, loop.time()))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())
        elif self._full is not None and not self._full.done() and self._batch_full():
            self._full.set_result(None)
        return await fut

    @staticmethod
    def _size(images: Images) -> int:
        return len(images) if isinstance(images, np.ndarray) else 1

    def _batch_full(self) -> bool:
        live = [im for im, fut, _ in self._pending if not fut.cancelled()]
        return sum(self._size(im) for im in live) >= self.max_batch or (
            self.max_callers is not None and len(live) >= self.max_callers
        )

    async def _wait_for_others(self) -> None:
        """Until the oldest pending caller has waited ``wait_s`` or a full batch is pending."""
        loop = asyncio.get_running_loop()
        arrivals = [t for _, fut, t in self._pending if not fut.cancelled()]
        if not arrivals or self._batch_full():
            return
        left = arrivals[0] + self.wait_s - loop.time()
        if left <= 0:
            return
        self._full = loop.create_future()
        timer = loop.call_later(left, lambda f: f.done() or f.set_result(None), self._full)
        try:
            await self._full
        finally:
            timer.cancel()
            self._full = None

    async def _take(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """The oldest callers whose images fit in one batch (always at least one caller), their images made.

        The makers (uploads to decode) run back to back in one worker thread, never on the event loop: a
        decoder's time is the upload's to choose, within the limits, and the loop must keep answering."""
        self._taken = taken = []  # kept on self as it grows: the worker's handler fails these if it must
        n = 0
        while self._pending and (not taken or n + self._size(self._pending[0][0]) <= self.max_batch):
            images, fut, arrived = self._pending.pop(0)
            if fut.cancelled():
                continue
            taken.append((images, fut))
            n += self._size(images)
        if any(not isinstance(images, np.ndarray) for images, _ in taken):
            made = await run_in_threadpool(self._make, [images for images, _ in taken])
            taken[:] = [(images, fut) for images, (_, fut) in zip(made, taken)]
            for images, fut in [t for t in taken if isinstance(t[0], Exception)]:
                self._settle(fut, images)  # this caller's upload, not the batch's problem
            taken[:] = [t for t in taken if not isinstance(t[0], Exception)]
        return taken

    @staticmethod
    def _make(items: list[Images]) -> list[np.ndarray | Exception]:
        """Each caller's images, made where a maker was handed over; an Exception is that caller's own."""
        out: list[np.ndarray | Exception] = []
        for images in items:
            if isinstance(images, np.ndarray):
                out.append(images)
                continue
            try:
                out.append(images())
            except Exception as exc:
                out.append(exc)
        return out

    async def _run(self) -> None:
        try:
            await self._batches()
        except BaseException as exc:
            # the worker itself stops (cancelled with the loop, or a maker or the model raised past Exception):
            # no caller may wait for ever, neither those of the batch in hand nor those queued behind it
            for fut in [f for _, f in self._taken] + [f for _, f, _ in self._pending]:
                if fut.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    fut.cancel()
                else:
                    fut.set_exception(RuntimeError(f"the micro-batch worker stopped: {type(exc).__name__}: {exc}"))
            self._pending.clear()
            raise
        finally:
            self._taken = []

    async def _batches(self) -> None:
        while self._pending:
            if self.wait_s > 0:
                await self._wait_for_others()
            taken = await self._take()
            if not taken:
                continue
            try:
                x = taken[0][0] if len(taken) == 1 else np.concatenate([im for im, _ in taken])
                probs = await self._call(x)
            except Exception as exc:
                if len(taken) == 1:
                    self._settle(taken[0][1], exc)
                else:  # one caller's bad input must not fail the others: run them one by one
                    for im, fut in taken:
                        try:
                            self._settle(fut, await self._call(im))
                        except Exception as one:
                            self._settle(fut, one)
                continue
            self.batch_sizes.append(len(x))
            start = 0
            for im, fut in taken:
                self._settle(fut, probs[start : start + len(im)])
                start += len(im)

    async def _call(self, x: np.ndarray) -> np.ndarray:
        """The model on one batch: here if it is expected to be quick, else in a worker thread."""
        if self.per_image_s is not None and self.per_image_s * len(x) <= self.inline_s:
            self.inline_batches += 1
            return self._timed(x)
        return await run_in_threadpool(self._timed, x)

    def _timed(self, x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self._predict(x)
        per_image = (time.perf_counter() - start) / max(1, len(x))
        # a running mean: one call slowed down by a busy CPU moves it only a little
        old = self.per_image_s
        self.per_image_s = per_image if old is None else 0.8 * old + 0.2 * per_image
        return out

    @staticmethod
    def _settle(fut: asyncio.Future, result: np.ndarray | BaseException) -> None:
        if fut.done():  # the caller went away
            return
        if isinstance(result, StopIteration):  # a future cannot hold one
            result = RuntimeError(f"StopIteration: {result}")
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)
