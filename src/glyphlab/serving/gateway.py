"""What stands between the network and the app: metrics, the API key and CORS, as ASGI middleware.

:func:`install` wraps an app from :func:`glyphlab.serving.app.create_app`, outermost first:
CORS (only with ``cors_origins``), then :class:`~glyphlab.serving.metrics.MetricsMiddleware` (so 401s and
503s are counted), then :class:`~glyphlab.serving.auth.ApiKeyMiddleware` (before the concurrency limit: a
request without the key takes no slot and its body is not parsed), then the app's own limits. The key is
never part of :class:`GatewaySettings` (which ``GET /model`` shows): it is read from its file or variable.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from glyphlab.serving.auth import ApiKeyMiddleware, load_api_key
from glyphlab.serving.metrics import MetricsMiddleware, ServerMetrics

#: how ``glyphlab serve`` hands the settings to its worker processes
GATEWAY_ENV = "GLYPHLAB_SERVE_GATEWAY"
METRICS_PATH = "/metrics"


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    metrics_public: bool = Field(True, description="/metrics needs no API key (Prometheus scrapes without one).")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (CORS); none: CORS off."
    )

    @classmethod
    def from_env(cls) -> GatewaySettings:
        raw = os.environ.get(GATEWAY_ENV)
        return cls.model_validate_json(raw) if raw else cls()


def install(app: Any, predictor: Any, settings: GatewaySettings | None = None, api_key: str | None = None) -> Any:
    """Add /metrics, the API-key check and CORS to ``app`` (call it last: middleware added last is outermost)."""
    from fastapi.responses import Response

    settings = settings or GatewaySettings()
    public = {"/health", "/"}
    if settings.metrics:
        version = predictor.model_id.rsplit("-", 1)[-1]
        metrics = ServerMetrics(predictor.model_name, version, list(predictor.classes))
        # the micro-batcher calls predictor.predict; wrap the class's own (a predictor shared by apps is wrapped once)
        predictor.predict = metrics.wrap_predict(type(predictor).predict.__get__(predictor))
        app.state.metrics = metrics

        def scrape() -> Response:
            body, ctype = metrics.exposition()
            return Response(body, media_type=ctype)

        app.add_api_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
        if settings.metrics_public:
            public.add(METRICS_PATH)
    if api_key:
        app.add_middleware(ApiKeyMiddleware, key=api_key, public=public)
    if settings.metrics:
        routes = {r.path for r in app.routes if getattr(r, "path", None) and "{" not in r.path}
        app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.state.api_key_required = bool(api_key)
    return app


_cleanups: list[Any] = []


def configure_workers(
    host: str,
    api_key_file: str | os.PathLike | None,
    cors_origins: list[str],
    metrics: bool,
    metrics_public: bool,
    workers: int,
) -> str | None:
    """What ``glyphlab serve`` does before starting its workers: read the key (a bad file is an error now, not in
    each worker), hand the settings and the key file's path (never the key) down through the environment, set up
    the metrics folder for several workers, and warn (one line, stderr) when other machines can connect and
    no key is set. Returns the key."""
    import sys

    from glyphlab.serving.auth import KEY_FILE_ENV, open_warning
    from glyphlab.serving.metrics import multiprocess_dir

    key = load_api_key(api_key_file)
    if api_key_file:
        os.environ[KEY_FILE_ENV] = str(os.path.abspath(api_key_file))
    settings = GatewaySettings(metrics=metrics, metrics_public=metrics_public, cors_origins=list(cors_origins))
    os.environ[GATEWAY_ENV] = settings.model_dump_json()
    if metrics:
        _cleanups.append(multiprocess_dir(workers))
    warning = open_warning(host, key)
    if warning:
        print(warning, file=sys.stderr)
    return key


def cleanup_workers() -> None:
    while _cleanups:
        _cleanups.pop()()
