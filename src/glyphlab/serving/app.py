"""The HTTP app: ``POST /prediction`` (image upload, raw image body, JSON pixels or a JSON batch), ``POST /explanation``
(attribution maps for one image, bounded cost), ``GET /health``,
``GET /model``, the drawing page at ``GET /`` and OpenAPI docs at ``/docs`` and ``/redoc`` (served offline).

Inputs from strangers cannot break it: bodies over ``max_bytes`` get 413 before they are read whole (the
Content-Length header is checked, and the bytes are counted while they stream in), unknown content types
get 415, malformed JSON or JSON of the wrong shape, NaN or out-of-range values get 422 with the path of
the bad field, and bytes that are not an image, truncated images, empty bodies and decompression bombs
get 400. An image with no ink at all (a blank canvas) gets 422 with ``"type": "no_ink"`` instead of a
confident guess. Anything unexpected is logged and answered with a JSON 500 while the server keeps serving.

This module assembles the app: the routes are :mod:`glyphlab.serving.routes`, what they accept and answer
:mod:`glyphlab.serving.schemas`, the body, concurrency and rate limits :mod:`glyphlab.serving.middleware`, the
settings :mod:`glyphlab.serving.settings`; :func:`create_app` puts them together in their order.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from glyphlab.evaluation.attributions import Explainer, supported_methods
from glyphlab.serving.auth import load_api_key
from glyphlab.serving.gateway import GatewaySettings
from glyphlab.serving.gateway import install as install_gateway
from glyphlab.serving.limits import freeze_startup_objects, tune_malloc
from glyphlab.serving.middleware import install_limits, internal_error
from glyphlab.serving.predictor import Predictor
from glyphlab.serving.routes import explanation_route, info_routes, prediction_route, reading_route
from glyphlab.serving.schemas import install_openapi
from glyphlab.serving.settings import ServeSettings

__all__ = ["MODEL_ENV", "SETTINGS_ENV", "ServeSettings", "create_app", "app_from_env"]


#: how `glyphlab serve` hands the model folder and the settings to each worker process (app_from_env reads them)
MODEL_ENV, SETTINGS_ENV = "GLYPHLAB_SERVE_MODEL", "GLYPHLAB_SERVE_SETTINGS"


def create_app(
    model_path: str | Path | Predictor,
    settings: ServeSettings | None = None,
    gateway: GatewaySettings | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """A FastAPI app serving the model at ``model_path`` (a model folder, or a ready :class:`Predictor`); ``gateway``
    and ``api_key``: /metrics, CORS and the key every non-public route needs (see :mod:`glyphlab.serving.gateway`)."""
    settings = settings or ServeSettings()
    predictor = (
        model_path
        if isinstance(model_path, Predictor)
        else Predictor(model_path, backend=settings.backend, threads=settings.threads)
    )
    limits = settings.limits()
    # FastAPIOffline: /docs (Swagger UI) and /redoc from assets that package ships, no CDN
    app = FastAPIOffline(
        title="glyphlab",
        version="1",
        summary=f"Handwritten-character classifier: {predictor.model_id}",
        description="POST an image (multipart field `file`, or a raw image/png body) or JSON pixels to "
        "`/prediction`; draw one at `/`.",
    )
    app.state.predictor = predictor
    app.state.settings = settings

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        return internal_error(request.method, request.url.path)

    prediction = prediction_route(app, predictor, settings, limits)
    explainer = Explainer(predictor.model)  # one for /explanation and /reading?explain=true
    # the methods on first request of the document: asking Captum whether it is there costs ~2 s at start-up
    install_openapi(app, settings, lambda: supported_methods(predictor.model), predictor.classes)
    explanation_route(app, predictor, settings, explainer)
    reading_route(app, predictor, settings, limits, explainer)
    info_routes(app, predictor, settings)
    install_limits(app, prediction, settings)
    return install_gateway(app, predictor, gateway, api_key)  # metrics, API key, CORS: outside everything above


def app_from_env() -> FastAPI:
    """The uvicorn factory behind ``glyphlab serve`` (each worker process builds its own app)."""
    import os

    model = os.environ.get(MODEL_ENV)
    if not model:
        raise RuntimeError(f"{MODEL_ENV} is not set; start the server with `glyphlab serve MODEL`")
    raw = os.environ.get(SETTINGS_ENV)
    settings = ServeSettings.model_validate_json(raw) if raw else ServeSettings()
    from glyphlab.serving import protocols

    protocols.HEADER_TIMEOUT_S = settings.header_timeout_s  # this server process's connections (uvicorn's protocol)
    tune_malloc()  # process-wide, so only in a server process, not wherever create_app is called
    app = create_app(model, settings, gateway=GatewaySettings.from_env(), api_key=load_api_key())
    app.state.predictor.warm_up(settings.micro_batch)
    freeze_startup_objects()  # process-wide too
    return app
