"""uvicorn's HTTP protocols with a deadline for a request's headers.

uvicorn times out an idle keep-alive connection, but not one whose request headers trickle in: a client that
sends a byte a second keeps its connection (and whatever it holds) for ever. Here a connection must deliver
the complete headers of each request within :data:`HEADER_TIMEOUT_S` of its start (or of the previous
answer), else it is closed. The body has its own deadline (``ServeSettings.body_timeout_s``, applied by the
app's body middleware). ``glyphlab serve`` runs uvicorn with ``http=protocol_class()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: seconds a connection may take to send a request's complete headers (set from ServeSettings in a server)
HEADER_TIMEOUT_S = 10.0


class _HeaderDeadline:
    """Mixed into a uvicorn protocol: the connection is closed if the headers are not complete in time."""

    _header_timer: asyncio.TimerHandle | None = None
    headers_timed_out = 0  # per process, for tests and logs

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)  # type: ignore[attr-defined]

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        transport = self.transport  # type: ignore[attr-defined]
        if not transport.is_closing():
            type(self).headers_timed_out += 1
            transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self._arm_header_deadline()  # the next request's headers


def _httptools_class() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineHttpTools(_HeaderDeadline, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self._disarm_header_deadline()
            super().on_headers_complete()

    return HeaderDeadlineHttpTools


def _h11_class() -> type:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineH11(_HeaderDeadline, H11Protocol):
        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a request's headers have arrived
                self._disarm_header_deadline()

    return HeaderDeadlineH11


try:  # module-level names, so that uvicorn's worker processes can import them by name
    HeaderDeadlineHttpTools: type | None = _httptools_class()
except ImportError:  # pragma: no cover - httptools is optional in uvicorn
    HeaderDeadlineHttpTools = None
HeaderDeadlineH11 = _h11_class()
for _cls in (HeaderDeadlineHttpTools, HeaderDeadlineH11):
    if _cls is not None:
        _cls.__qualname__ = _cls.__name__  # picklable by name


def protocol_class() -> str:
    """The import path of the HTTP protocol ``glyphlab serve`` gives uvicorn (httptools where installed)."""
    name = "HeaderDeadlineHttpTools" if HeaderDeadlineHttpTools is not None else "HeaderDeadlineH11"
    return f"{__name__}:{name}"
