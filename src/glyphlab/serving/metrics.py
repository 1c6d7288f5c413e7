"""``GET /metrics``: the server's counters in Prometheus' text format (``prometheus-client``).

What is counted (every series labelled with ``model`` and ``version``, the first 12 hex digits of the
weights' SHA-256, as in ``model_id``):

- ``glyphlab_requests_total{route, method, status}`` and ``glyphlab_request_duration_seconds{route}``
  (a histogram, from the request's arrival to its answer's last byte, queueing included; both are recorded just
  before that last byte is sent, so a client that has its answer finds it counted); a path that is no route
  of the app is counted as ``route="other"``, so scanners cannot blow up the number of series;
- ``glyphlab_batch_size`` (a histogram of images per model call: the micro-batches),
  ``glyphlab_predictions_total{class_name}`` (images by predicted class);
- ``glyphlab_queue_depth`` (requests waiting for a slot), ``glyphlab_requests_in_progress``,
  ``glyphlab_rejected_requests_total`` (503s: queue full or waited too long).

With ``--workers N`` each worker is its own process with its own counters, and a scrape reaches one of
them: in prometheus-client's multiprocess mode every worker writes its values to files in one folder
(``PROMETHEUS_MULTIPROC_DIR``, which ``glyphlab serve`` makes and removes), and whichever worker answers
the scrape adds them all up (gauges: the sum over live workers). :func:`multiprocess_dir` sets it up; it must
happen before any worker imports prometheus_client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: request latency buckets (seconds): a glyph takes milliseconds, an explanation or a queued request longer
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
OTHER = "other"


def multiprocess_dir(workers: int) -> Callable[[], None]:
    """For ``workers`` > 1 and no ``PROMETHEUS_MULTIPROC_DIR`` yet: a fresh folder for the workers' metric files,
    set in the environment the workers inherit. Returns what removes it again (a no-op when nothing was made)."""
    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        return lambda: None
    path = tempfile.mkdtemp(prefix="glyphlab-metrics-")
    os.environ[MULTIPROC_ENV] = path

    def cleanup() -> None:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)

    return cleanup


class ServerMetrics:
    """The metrics of one app (one worker); in multiprocess mode the values live in the shared folder's files."""

    def __init__(self, model: str, version: str, classes: list[str]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # one registry per app (tests build many apps in one process); in multiprocess mode the metrics are not
        # registered anywhere: a scrape reads every worker's files through a MultiProcessCollector
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        reg = self.registry
        base = ("model", "version")
        self._base = (model, version)
        self.requests = Counter(
            "glyphlab_requests",
            "HTTP requests answered, by route, method and status.",
            (*base, "route", "method", "status"),
            registry=reg,
        )
        self.latency = Histogram(
            "glyphlab_request_duration_seconds",
            "Time from the request's arrival to its answer's last byte handed to the server, queueing included.",
            (*base, "route"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch = Histogram(
            "glyphlab_batch_size",
            "Images per model call (micro-batches of concurrent requests).",
            base,
            buckets=BATCH_BUCKETS,
            registry=reg,
        ).labels(*self._base)
        predictions = Counter(
            "glyphlab_predictions", "Images predicted, by predicted class.", (*base, "class_name"), registry=reg
        )
        self.by_class = [predictions.labels(*self._base, c) for c in classes]

        def live_gauge(name: str, documentation: str) -> Any:  # summed over the workers alive now
            return Gauge(name, documentation, base, registry=reg, multiprocess_mode="livesum").labels(*self._base)

        self.in_progress = live_gauge(
            "glyphlab_requests_in_progress", "Requests being answered (queued ones included)."
        )
        self.queue = live_gauge("glyphlab_queue_depth", "Requests waiting for a processing slot.")
        self.rejected = Counter(
            "glyphlab_rejected_requests",
            "Requests refused with 503 (queue full or waited longer than the queue timeout).",
            base,
            registry=reg,
        ).labels(*self._base)
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        #: counting starts with the first request (the warm-up's blank batches are not predictions)
        self.live = False

    def count_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(*self._base, route, method, str(status))
        child.inc()
        hist = self._latency.get(route)
        if hist is None:
            hist = self._latency[route] = self.latency.labels(*self._base, route)
        hist.observe(seconds)

    def count_batch(self, probs: np.ndarray) -> None:
        if not self.live or len(probs) == 0:
            return
        self.batch.observe(len(probs))
        counts = np.bincount(np.asarray(probs).argmax(axis=1), minlength=len(self.by_class))
        for child, n in zip(self.by_class, counts.tolist()):
            if n:
                child.inc(n)

    def wrap_predict(self, predict: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        """``predict`` that also counts its batch size and the predicted classes."""

        def counted(x: np.ndarray) -> np.ndarray:
            probs = predict(x)
            self.count_batch(probs)
            return probs

        return counted

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware counting every HTTP request (by route, method, status) and its latency.

    It sits outside the API-key check and the concurrency limit, so 401s and 503s are counted too. The queue
    depth is read from the app's :class:`~glyphlab.serving.limits.ConcurrencyLimitMiddleware` whenever a request
    arrives (once it has been queued or let in) and leaves.
    """

    def __init__(self, app: Any, metrics: ServerMetrics, routes: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._limiter: Any = None
        self._rejected_seen = 0

    def _find_limiter(self) -> Any:
        from glyphlab.serving.limits import ConcurrencyLimitMiddleware

        node, depth = self.app, 0
        while node is not None and depth < 20:
            if isinstance(node, ConcurrencyLimitMiddleware):
                return node
            node, depth = getattr(node, "app", None), depth + 1
        return False

    def _sample_queue(self) -> None:
        limiter = self._limiter
        if not limiter:
            return
        self.metrics.queue.set(len(getattr(limiter, "waiters", ())))
        rejected = int(getattr(limiter, "rejected", 0))
        if rejected > self._rejected_seen:
            self.metrics.rejected.inc(rejected - self._rejected_seen)
            self._rejected_seen = rejected

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        m.live = True
        if self._limiter is None:
            self._limiter = self._find_limiter()
        start = time.perf_counter()
        path = scope.get("path", "")
        route = path if path in self.routes else OTHER
        method = scope.get("method", "")
        status = 500
        done = False
        m.in_progress.inc()
        # once this request has been queued or let in (the limiter runs before its first await)
        asyncio.get_running_loop().call_soon(self._sample_queue)

        def finish() -> None:
            nonlocal done
            if not done:
                done = True
                m.in_progress.dec()
                m.count_request(route, method, status, time.perf_counter() - start)
                self._sample_queue()

        async def counting_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()  # counted before the last byte leaves: a client that has its answer sees it counted
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            finish()  # no complete answer (an error, a disconnect)
