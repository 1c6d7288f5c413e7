"""Bounded server memory: a concurrency limit with a bounded wait queue, and heap trimming when idle.

Without a limit every request that arrives is read, parsed and held at once: 150 concurrent 4.8 MB JSON
batches took one worker to 5 GB. :class:`ConcurrencyLimitMiddleware` lets at most ``max_concurrency``
requests be parsed or predicted at any time. It sits inside the app's body middleware, so a request takes a
slot only once its body has arrived (within the body deadline, and within a cap on the bytes all bodies being
read hold together): eight clients sending a byte a second held all eight slots for 30 s when the slot came
first. Others wait, in arrival order, in a queue of at most ``max_queue``; a request that finds the queue
full, or waits longer than ``queue_timeout_s``, is answered 503 with a ``Retry-After`` header. GET requests
(health checks, the page, the docs) are never queued, so a busy server still says it is alive.

Freed buffers do not always go back to the system: glibc keeps freed heap in its arenas and raises its
mmap threshold after large frees, so a worker that once held 4 GB kept holding it. :func:`tune_malloc`
pins the threshold (large bodies and arrays stay in their own mappings, returned on free) and
:func:`trim_heap` (``malloc_trim``) runs once the server has been idle for :data:`TRIM_IDLE_S` after
work. (It ran at every idle moment before: a busy server goes idle between most requests, and each trim,
about 0.1 ms of CPU on a worker's heap plus a hand-off to a thread, was a tenth of a request's cost.) Both
are no-ops on other C libraries.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import math
import time
from collections import deque
from typing import Any

from glyphlab.serving.asgi import send_json

#: glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: allocations above this get their own mapping (returned to the system on free)
MMAP_THRESHOLD = 1 << 20
#: seconds without a request before freed heap is trimmed
TRIM_IDLE_S = 0.5
#: most bytes read and thrown away from a refused request's body (so the client can read the 503)
MAX_DRAIN = 64 << 20

_libc: Any = None


def _glibc() -> Any | None:
    """The C library if it is glibc (it has malloc_trim), else None."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _libc = lib if lib is not None and hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else False
        except OSError:
            _libc = False
    return _libc or None


def tune_malloc(arenas: int = 2) -> bool:
    """Pin glibc's mmap threshold and cap its arenas (a few inference threads need no more); True if done."""
    lib = _glibc()
    if lib is None:
        return False
    return bool(lib.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(lib.mallopt(_M_ARENA_MAX, int(arenas)))


def freeze_startup_objects() -> int:
    """Move every object alive now (the imported libraries, the model) out of the garbage collector's reach.

    A worker holds ~420,000 objects after start-up (torch, onnxruntime, FastAPI, the model). Python's full
    collection walks all of them: 100-350 ms on a 2-core server, during which every request in that worker
    waits, and it comes round every few thousand requests, so it was the p99. ``gc.freeze()`` (meant for
    exactly this) leaves them out of every later collection; what requests allocate is still collected.
    Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def trim_heap() -> bool:
    """Give freed heap memory back to the system (glibc ``malloc_trim(0)``); True if something was returned."""
    lib = _glibc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


class RateLimitMiddleware:
    """Pure ASGI middleware: each client (IP address) may send ``rate`` requests a second, in bursts of up to
    ``burst`` (a token bucket); more get 429 with ``Retry-After`` before anything is read. ``GET /health`` is
    not limited (a load balancer's probes)."""

    #: clients remembered before those with a full bucket (idle ones) are forgotten
    MAX_CLIENTS = 10_000

    def __init__(self, app: Any, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.app = app
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, 2.0 * self.rate)
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)
        self.limited = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope.get("method") == "GET" and scope.get("path") == "/health"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        tokens, then = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            self.limited += 1
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            detail = f"too many requests from {client}: at most {self.rate:g} a second; retry in {retry} s"
            await send_json(send, 429, {"detail": detail}, retry_after=retry)
            return
        self.buckets[client] = (tokens - 1.0, now)
        if len(self.buckets) > self.MAX_CLIENTS:
            self._forget_idle(now)
        await self.app(scope, receive, send)

    def _forget_idle(self, now: float) -> None:
        """Forget the clients whose bucket has filled up again (they would start afresh anyway)."""
        for client, (tokens, then) in list(self.buckets.items()):
            if tokens + (now - then) * self.rate >= self.burst:
                del self.buckets[client]


class ConcurrencyLimitMiddleware:
    """Pure ASGI middleware: at most ``max_concurrency`` body-carrying requests inside, ``max_queue`` waiting.

    The slot is held until the inner app has sent its whole answer, so everything a request allocated is
    garbage by the time the next one starts. Waiters are served first come, first served.
    """

    def __init__(
        self, app: Any, max_concurrency: int, max_queue: int, queue_timeout_s: float, trim_when_idle: bool = True
    ) -> None:
        if max_concurrency < 1 or max_queue < 0 or queue_timeout_s <= 0:
            raise ValueError("max_concurrency >= 1, max_queue >= 0 and queue_timeout_s > 0 are required")
        self.app = app
        self.max_concurrency = int(max_concurrency)
        self.max_queue = int(max_queue)
        self.queue_timeout_s = float(queue_timeout_s)
        self.trim_when_idle = trim_when_idle
        self.active = 0
        self.waiters: deque[asyncio.Future] = deque()
        self.rejected = 0
        #: exponentially weighted mean of the time a request holds its slot (seconds), for Retry-After
        self.service_s = 0.05
        self._dirty = False
        self._trimming = False
        self._trim_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if not await self._acquire():
            await self._refuse(receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.service_s = 0.8 * self.service_s + 0.2 * (time.perf_counter() - start)
            self._release()

    # -- slots ---------------------------------------------------------------------------------------
    def expected_wait_s(self, place: int) -> float:
        """How long the request at ``place`` in the queue (1 = next) is likely to wait, from the service time."""
        return place * self.service_s / self.max_concurrency

    async def _acquire(self) -> bool:
        if self.active < self.max_concurrency and not self.waiters:
            self.active += 1
            return True
        # a queue sized by time, not only by count: a burst of cheap requests waits (300 of them, which one
        # worker clears in 0.2 s, got 52 % 503s from a fixed queue of 128); one that would time out anyway
        # is told at once
        place = len(self.waiters) + 1
        if place > self.max_queue or self.expected_wait_s(place) > self.queue_timeout_s:
            return False
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await asyncio.wait({fut}, timeout=self.queue_timeout_s)
        except asyncio.CancelledError:
            self._abandon(fut)
            raise
        if fut.done() and not fut.cancelled():
            return True  # the releasing request handed its slot over (self.active unchanged)
        self._abandon(fut)
        return False

    def _abandon(self, fut: asyncio.Future) -> None:
        """A waiter gives up: out of the queue, or, if a slot was handed to it meanwhile, give that back."""
        if fut.done() and not fut.cancelled():
            self._release()
            return
        fut.cancel()
        try:
            self.waiters.remove(fut)
        except ValueError:
            pass

    def _release(self) -> None:
        self._dirty = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # hand the slot over
                return
        self.active -= 1
        if self.active == 0 and self.trim_when_idle:
            self._idle_since = time.monotonic()
            if self._trim_timer is None:
                self._trim_timer = asyncio.get_running_loop().call_later(TRIM_IDLE_S, self._trim_if_idle)

    def _trim_if_idle(self) -> None:
        """Trim once the server has been idle for TRIM_IDLE_S; while it is busy the next idle moment re-arms it."""
        self._trim_timer = None
        if self.active or self._trimming:
            return
        wait = self._idle_since + TRIM_IDLE_S - time.monotonic()
        loop = asyncio.get_running_loop()
        if wait > 0:  # a request came and went meanwhile: wait for a full quiet spell
            self._trim_timer = loop.call_later(wait, self._trim_if_idle)
            return
        self._trimming = True
        loop.run_in_executor(None, self._trim)

    def _trim(self) -> None:
        try:
            if self._dirty:
                self._dirty = False
                trim_heap()
        finally:
            self._trimming = False

    # -- refusal -------------------------------------------------------------------------------------
    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free: the queue ahead times the mean service time, per slot."""
        ahead = len(self.waiters) + self.active
        return int(min(60, max(1, math.ceil(self.service_s * ahead / self.max_concurrency))))

    async def _refuse(self, receive: Any, send: Any) -> None:
        """503 + Retry-After, after reading (and dropping) the body so the client gets to read the answer."""
        self.rejected += 1
        drained = 0
        while drained <= MAX_DRAIN:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        retry = self.retry_after_s()
        detail = (
            f"the server is at its limit of {self.max_concurrency} concurrent requests "
            f"with {self.max_queue} waiting; retry in {retry} s"
        )
        await send_json(send, 503, {"detail": detail}, retry_after=retry)
