"""The ``serve`` step: a saved model behind HTTP (uvicorn), one or several worker processes.

One use case for ``glyphlab serve``: the port is checked and the model loaded once before anything starts
(a bad folder or a busy port is one line, not a traceback inside uvicorn), the settings reach the workers
through the environment, and the gateway (API key, CORS, metrics) is set up and cleaned up around the serve.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from glyphlab.serving.app import MODEL_ENV, SETTINGS_ENV, ServeSettings

__all__ = ["ServeSettings", "Listen", "serve"]


@dataclass(frozen=True)
class Listen:
    """Where and to whom the server answers: interface, port, worker processes, the API key file, the browser
    origins allowed (CORS), Prometheus metrics (and whether they need the key), uvicorn's access log."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    api_key_file: Path | None = None
    cors_origins: Sequence[str] = ()
    metrics: bool = True
    metrics_public: bool = True
    access_log: bool = True


def check_model(model: Path, settings: ServeSettings, workers: int) -> None:
    """Load the model once, hashes and weights, before the server starts; with several workers in a child
    process, so that the supervisor (which serves nothing) never holds it."""
    from glyphlab.serving.predictor import Predictor
    from glyphlab.serving.workers import check_model_in_child

    if workers > 1:
        check_model_in_child(model, settings.backend)
    else:
        Predictor(model, backend=settings.backend)


def serve(model: Path, settings: ServeSettings, listen: Listen, announce: Callable[[str], None] = print) -> None:
    """Serve ``model`` until the process is stopped; ``announce`` gets the line that says where."""
    import uvicorn  # noqa: F401  (first: without the serve extra, one line naming it, before any model is read)

    from glyphlab.serving import gateway
    from glyphlab.serving.protocols import protocol_class
    from glyphlab.serving.workers import check_port_free
    from glyphlab.serving.workers import serve as run_workers

    check_port_free(listen.host, listen.port)  # one model per port: before the model is read
    check_model(model, settings, listen.workers)
    os.environ[MODEL_ENV] = str(model)
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    key = gateway.configure_workers(
        listen.host,
        listen.api_key_file,
        list(listen.cors_origins),
        listen.metrics,
        listen.metrics_public,
        listen.workers,
    )
    announce(
        f"serving {model} on http://{listen.host}:{listen.port}/ (docs at /docs"
        f"{', metrics at /metrics' if listen.metrics else ''}{', API key required' if key else ''})"
    )
    try:
        run_workers(
            "glyphlab.serving.app:app_from_env",
            host=listen.host,
            port=listen.port,
            workers=listen.workers,
            log_level="info",
            access_log=listen.access_log,
            timeout_graceful_shutdown=5,
            http=protocol_class(),
        )
    finally:
        gateway.cleanup_workers()
