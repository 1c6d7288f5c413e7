"""An API key for the server: ``Authorization: Bearer KEY`` on every route but a few public ones.

The key comes from ``--api-key-file PATH`` (the file's first line; a file keeps it out of ``ps`` and shell
history) or the ``GLYPHLAB_API_KEY`` variable. Without the right key a request gets 401 with
``WWW-Authenticate: Bearer``, before its body is read and before it takes a processing slot; the key is
compared in constant time (:func:`hmac.compare_digest`). Public: ``/health`` (load balancers and container
health checks carry no key), the drawing page ``/`` (static HTML with no data in it; it asks for the key once
and sends it with its requests) and, unless configured otherwise, ``/metrics``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from glyphlab.errors import ConfigError
from glyphlab.serving.asgi import send_json

KEY_ENV = "GLYPHLAB_API_KEY"
KEY_FILE_ENV = "GLYPHLAB_API_KEY_FILE"
#: shorter keys are refused: a key is a secret, not a password to type
MIN_KEY_LENGTH = 16
#: most bytes of a refused request's body read and dropped before the 401 (beyond, the connection is closed)
MAX_DRAIN = 1 << 20
#: and the longest it waits for them
DRAIN_TIMEOUT_S = 2.0


def load_api_key(path: str | Path | None = None) -> str | None:
    """The key from ``path`` (or ``$GLYPHLAB_API_KEY_FILE``), else ``$GLYPHLAB_API_KEY``; None when neither is set."""
    path = path or os.environ.get(KEY_FILE_ENV)
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the API key file {path}: {exc}") from exc
        key = lines[0].strip() if lines else ""
        where = f"the API key file {path}"
    else:
        key = (os.environ.get(KEY_ENV) or "").strip()
        if not key:
            return None
        where = KEY_ENV
    if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
        raise ConfigError(
            f"{where} must hold one key of at least {MIN_KEY_LENGTH} characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return key


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what the server binds to) only accepts connections from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_warning(host: str, key: str | None) -> str | None:
    """The one-line warning for a server reachable from other machines with no key, else None."""
    if key or is_loopback(host):
        return None
    return (
        f"warning: --host {host} accepts connections from other machines and no API key is set: anyone who "
        f"can reach the port can use the model (--api-key-file PATH or {KEY_ENV})"
    )


class ApiKeyMiddleware:
    """Pure ASGI middleware: HTTP requests outside ``public`` need ``Authorization: Bearer KEY`` (else 401)."""

    def __init__(self, app: Any, key: str, public: Iterable[str] = ("/health", "/")) -> None:
        self.app = app
        self._key = key.encode("utf-8")
        self.public = frozenset(public)

    def allowed(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        given = b""
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
                break
        # compare_digest takes as long for any wrong key of a given length: nothing to learn from timing
        return hmac.compare_digest(given, self._key)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.public or self.allowed(scope.get("headers") or ()):
            await self.app(scope, receive, send)
            return
        # read (and drop) a small body, so that the client is not cut off mid-upload before it reads the 401; a
        # large or slow one is not waited for (the connection is closed after the answer)
        more, drained = scope.get("method") not in ("GET", "HEAD"), 0
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while more and drained < MAX_DRAIN:
                    message = await receive()
                    drained += len(message.get("body", b""))
                    more = message["type"] == "http.request" and message.get("more_body", False)
        except TimeoutError:
            more = True
        detail = "missing or wrong API key: send the header 'Authorization: Bearer KEY'"
        bearer = [(b"www-authenticate", b'Bearer realm="glyphlab"')]
        await send_json(send, 401, {"detail": detail}, close=more, headers=bearer)
