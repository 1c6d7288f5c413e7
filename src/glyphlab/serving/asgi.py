"""The one way the server's raw ASGI middlewares answer: a small JSON body, sent before FastAPI sees the request.

The body limit (400, 408, 413), the API key (401), the rate limit (429) and the concurrency limit (503) all
refuse a request below the app, where there is no ``JSONResponse``; each used to write the two ASGI messages
itself. The shape of the answer (``{"detail": ...}``, its length, ``Retry-After``, ``Connection: close``) is
decided here once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


async def send_json(
    send: Any,
    status: int,
    payload: dict,
    *,
    retry_after: int | None = None,
    close: bool = True,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer ``status`` with ``payload`` as JSON; ``close`` asks the client to drop the connection (the
    default: a refused request's body may be partly unread), ``retry_after`` adds ``Retry-After`` (seconds)."""
    body = json.dumps(payload).encode()
    extra = list(headers)
    if close:
        extra.append((b"connection", b"close"))
    if retry_after is not None:
        extra.append((b"retry-after", str(retry_after).encode()))
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
