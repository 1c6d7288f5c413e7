"""The app's own ASGI middlewares and the order they are installed in: the body limit (413 before a body is read
whole, 408 for a slow one, 503 when bodies in flight hold too much), the direct route for POST /prediction,
the concurrency slots and the rate limit (:mod:`glyphlab.serving.limits`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from glyphlab.serving.asgi import send_json
from glyphlab.serving.limits import TRIM_IDLE_S, ConcurrencyLimitMiddleware, RateLimitMiddleware, trim_heap
from glyphlab.serving.schemas import error_response
from glyphlab.serving.settings import ServeSettings

log = logging.getLogger("glyphlab.serving")


# -- the body limit: a pure ASGI middleware ------------------------------------------------------------------
class BodyLimitMiddleware:
    """Read a request's whole body before the app sees it: at most ``max_bytes``, within ``timeout_s``.

    A declared Content-Length over the limit is refused at once with 413; otherwise the body is read here chunk
    by chunk, counting, and handed to the app only if it stayed within the limit (at most ``max_bytes`` are
    ever held). A body that has not arrived whole ``timeout_s`` after its headers gets 408 (a client sending
    a byte a second is cut off). This middleware sits outside the concurrency limit, so a request takes one
    of its slots only once its body is here: slow clients cannot hold the slots. What the bodies of all
    requests in the server hold together (being read, waiting for a slot, being answered) is capped at
    ``max_buffered`` bytes (more: 503 with Retry-After), so that a queue of large bodies cannot fill memory.
    """

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 30.0, max_buffered: int | None = None) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout_s = float(timeout_s)
        # never below one whole body: a budget smaller than the body limit would refuse every large body for ever
        self.max_buffered = max(self.max_bytes, int(max_buffered) if max_buffered is not None else 16 * self.max_bytes)
        #: bytes held by the bodies being read now
        self.buffered = 0
        self._trim: asyncio.TimerHandle | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
                if length < 0:
                    raise ValueError
            except ValueError:
                await send_json(send, 400, {"detail": "the Content-Length header is not a valid number"})
                return
            if length > self.max_bytes:
                await send_json(send, 413, {"detail": _too_large(self.max_bytes, length)})
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    await send_json(
                        send,
                        408,
                        {"detail": f"the request body did not arrive within {self.timeout_s:g} s; send it at once"},
                    )
                    return
                if message["type"] == "http.disconnect":
                    return
                body = message.get("body", b"")
                if total + len(body) > self.max_bytes:
                    await send_json(send, 413, {"detail": _too_large(self.max_bytes)})
                    self._trim_after_refusal()
                    return
                if self.buffered + len(body) > self.max_buffered:
                    if message.get("more_body", False) and not await _drop_rest(receive, deadline - loop.time()):
                        return  # the client went away, or took longer than the body timeout
                    await send_json(
                        send,
                        503,
                        {"detail": "the server holds too many large bodies at once; retry in 1 s"},
                        retry_after=1,
                    )
                    self._trim_after_refusal()
                    return
                self.buffered += len(body)
                total += len(body)
                chunks.append(body)
                if not message.get("more_body", False):
                    break
            replay = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            chunks.clear()  # one copy of the body, not two
            sent = False

            async def replay_receive() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return replay
                return await receive()

            await self.app(scope, replay_receive, send)
        finally:
            self.buffered -= total  # held until the answer is sent: waiting for a slot, a body still counts

    def _trim_after_refusal(self) -> None:
        """Freed heap back to the system once no body is held for :data:`TRIM_IDLE_S`: a refused body never reaches
        the concurrency limit, which trims after the requests it lets in (150 refused 4.8 MB bodies, read and
        dropped, left a worker's heap 141 MiB larger until the next accepted request)."""
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(TRIM_IDLE_S, self._trim_if_idle)

    def _trim_if_idle(self) -> None:
        self._trim = None
        if self.buffered:  # bodies are held again: the requests they belong to will be trimmed after
            return
        asyncio.get_running_loop().run_in_executor(None, trim_heap)


async def _drop_rest(receive: Any, timeout_s: float) -> bool:
    """Read and drop the rest of a refused body, so that the client, still sending, gets to read the answer
    (answered mid-body, 115 of 150 clients flooding 4.8 MB bodies got a connection reset instead of the 503).
    Nothing is kept; bounded by the body timeout. False if the client went away or ran out of time."""
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


class DirectRouteMiddleware:
    """One hot route straight to its handler, past FastAPI's router, dependency solving and exception stack.

    The handler is the route's own function (it takes the ``Request`` and returns a response), so the
    answers are the route's, byte for byte; what is skipped is per-request machinery that costs a tenth of
    a small upload's CPU on a 2-core server. An exception the handler does not turn into an answer is
    logged and answered with the JSON 500 of the app's own handler.
    """

    def __init__(self, app: Any, method: str, path: str, handler: Any) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.handler = handler

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != self.method or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await self.handler(request)
        except Exception:
            response = internal_error(self.method, self.path)
        await response(scope, receive, send)


def internal_error(method: str, path: str) -> JSONResponse:
    """The answer to an exception no handler turned into one (a bug): logged with its traceback, a JSON 500."""
    log.exception("unexpected error on %s %s", method, path)
    return error_response(500, "internal error; the server logged it and keeps serving")


def _too_large(limit: int, declared: int | None = None) -> str:
    got = f" (Content-Length {declared:,})" if declared is not None else ""
    return f"the request body is larger than the limit of {limit:,} bytes{got}; send a smaller image"


def install_limits(app: FastAPI, prediction: Callable, settings: ServeSettings) -> None:
    """The request limits, innermost first: the direct route, the concurrency slots, the body, the rate."""
    # innermost: POST /prediction goes straight to its handler (the route above stays, for the OpenAPI document)
    app.add_middleware(DirectRouteMiddleware, method="POST", path="/prediction", handler=prediction)
    # a slot is taken once the body is here: a slow client holds a connection, never a slot
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        max_concurrency=settings.max_concurrency,
        max_queue=settings.max_queue,
        queue_timeout_s=settings.queue_timeout_s,
    )
    # no body is read beyond the limit or the deadline
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_bytes,
        timeout_s=settings.body_timeout_s,
        max_buffered=settings.max_buffered_mb * 1_000_000 if settings.max_buffered_mb else None,
    )
    if settings.rate_limit:  # outermost of the limits: a client over its rate costs nothing more
        app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit)
