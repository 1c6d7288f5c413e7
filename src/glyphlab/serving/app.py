"""The HTTP app: ``POST /prediction`` (image upload, raw image body, JSON pixels or a JSON batch), ``POST /explanation``
(attribution maps for one image, bounded cost), ``GET /health``,
``GET /model``, the drawing page at ``GET /`` and OpenAPI docs at ``/docs`` and ``/redoc`` (served offline).

Inputs from strangers cannot break it: bodies over ``max_bytes`` get 413 before they are read whole (the
Content-Length header is checked, and the bytes are counted while they stream in), unknown content types
get 415, malformed JSON or JSON of the wrong shape, NaN or out-of-range values get 422 with the path of
the bad field, and bytes that are not an image, truncated images, empty bodies and decompression bombs
get 400. An image with no ink at all (a blank canvas) gets 422 with ``"type": "no_ink"`` instead of a
confident guess. Anything unexpected is logged and answered with a JSON 500 while the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from glyphlab.data.images import DecodeLimits, ImageTooLargeError, NoInkError, SeveralGlyphsError
from glyphlab.errors import GlyphlabError
from glyphlab.evaluation.attributions import IG_STEPS, Explainer, payload
from glyphlab.models.persistence import read_model_card
from glyphlab.serving.asgi import send_json
from glyphlab.serving.auth import load_api_key
from glyphlab.serving.batching import MicroBatcher
from glyphlab.serving.gateway import GatewaySettings
from glyphlab.serving.gateway import install as install_gateway
from glyphlab.serving.limits import ConcurrencyLimitMiddleware, RateLimitMiddleware, freeze_startup_objects, tune_malloc
from glyphlab.serving.multipart import MultipartError, upload_file
from glyphlab.serving.predictor import Predictor

log = logging.getLogger("glyphlab.serving")

#: the largest side a JSON pixel array may have (it is resized to the model's input anyway)
MAX_JSON_SIDE = 512
#: uploads up to this size are prepared by the micro-batch, back to back with the concurrent requests' uploads
#: in its worker thread (warm caches); larger bodies (photos, scans) in a thread of their own, so that they do
#: not hold up the other requests. Neither on the event loop: a crafted 60 KB JPEG took 1.2 s to decode there
BATCH_PREPARE_BYTES = 64 * 1024


#: how `glyphlab serve` hands the model folder and the settings to each worker process (app_from_env reads them)
MODEL_ENV, SETTINGS_ENV = "GLYPHLAB_SERVE_MODEL", "GLYPHLAB_SERVE_SETTINGS"


class ServeSettings(BaseModel):
    """Limits and choices of one server; every field can be set from ``glyphlab serve`` options."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(5_000_000, gt=0, description="Largest request body accepted (bytes); more is a 413.")
    max_pixels: int = Field(4_000_000, gt=0, description="Largest image (width x height) decoded; more is a 400.")
    max_batch: int = Field(64, gt=0, description="Most images in one JSON batch request.")
    max_concurrency: int = Field(
        8,
        gt=0,
        description="Requests parsed or predicted at once; each can "
        "take ~180 MB for 4.7 MB of dense JSON pixels, ~35 MB for a "
        "4-Mpx image (bench/request_memory.py).",
    )
    max_queue: int = Field(
        1024,
        ge=0,
        description="Most requests waiting for a slot, and no more than the "
        "measured service time lets start within queue_timeout_s; "
        "more get 503. Their bodies count towards max_buffered_mb.",
    )
    queue_timeout_s: float = Field(30.0, gt=0, description="Longest wait for a slot before a 503 with Retry-After.")
    micro_batch: int = Field(
        32,
        ge=1,
        description="Most images of concurrent requests predicted together "
        "(adaptive: what queued during the last batch); 1 = off.",
    )
    batch_wait_ms: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description="How long the first request of a micro-batch waits for others to "
        "join (ms): more latency when idle, less CPU per request under load.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Longest a request body may take to arrive after its headers (s); later, 408."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Longest a connection may take to send a request's headers (s); later, it is closed."
    )
    max_buffered_mb: float | None = Field(
        None,
        gt=0,
        description="Most MB the bodies of all requests in the "
        "server may hold together (default 16 x the body "
        "limit); more, 503.",
    )
    rate_limit: float | None = Field(
        None,
        gt=0,
        description="Requests per second one client (IP address) may "
        "send, in bursts of up to twice that; more, 429 "
        "with Retry-After. None: no limit.",
    )
    expose_details: bool = Field(
        False,
        description="GET /model shows the model's file paths, the library "
        "versions and the training data's path (off: withheld).",
    )
    top_k: int = Field(3, gt=0, description="How many classes `top` lists.")
    backend: Literal["auto", "onnx", "native"] = Field("auto", description="ONNX Runtime if an export exists (auto).")
    threads: int | None = Field(
        1,
        gt=0,
        description="Inference threads per worker (None: the runtime's choice). One thread per request "
        "keeps latency low; concurrency comes from parallel requests and --workers.",
    )

    def limits(self) -> DecodeLimits:
        return DecodeLimits(max_bytes=self.max_bytes, max_pixels=self.max_pixels)


# -- request and response models ---------------------------------------------------------------------------
Pixel = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=1, max_length=MAX_JSON_SIDE)]
Image2D = Annotated[list[Row], Field(min_length=1, max_length=MAX_JSON_SIDE)]


def _check_rectangular(image: list[list[float]], where: str) -> None:
    widths = {len(r) for r in image}
    if len(widths) > 1:
        raise ValueError(f"{where}: every row must have the same length, got lengths {sorted(widths)[:5]}")


class PredictionRequest(BaseModel):
    """Either one image as ``pixels`` (a 2-D list, rows of floats in [0, 1], 1 = ink) or a batch as ``images``.

    An image of another shape than the model's input is prepared as the model's manifest says (by default
    cropped to its ink, resized and centred); an image with no ink is a 422 of type ``no_ink``.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"pixels": [[0.0, 0.5, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]}]},
    )

    pixels: Image2D | None = Field(None, description="One image: rows of floats in [0, 1] (1 = ink).")
    images: Annotated[list[Image2D], Field(min_length=1)] | None = Field(None, description="A batch of images.")

    @field_validator("pixels")
    @classmethod
    def _pixels_rectangular(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is not None:
            _check_rectangular(v, "pixels")
        return v

    @field_validator("images")
    @classmethod
    def _images_rectangular(cls, v: list[list[list[float]]] | None) -> list[list[list[float]]] | None:
        for i, im in enumerate(v or []):
            _check_rectangular(im, f"images[{i}]")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("pixels", "images"):
                if key in data and data[key] is None:
                    raise ValueError(f"'{key}' is null: leave it out, or send an image")
        return data

    @model_validator(mode="after")
    def _one_of(self) -> PredictionRequest:
        if (self.pixels is None) == (self.images is None):
            raise ValueError("send exactly one of 'pixels' (one image) or 'images' (a batch)")
        return self


class ExplanationRequest(BaseModel):
    """One image as ``pixels`` (rows of floats in [0, 1], 1 = ink): an explanation is of one image, not a batch."""

    model_config = ConfigDict(extra="forbid")

    pixels: Image2D = Field(description="One image: rows of floats in [0, 1] (1 = ink), all of the same length.")


def _strict_request_schema(schema: dict, max_batch: int) -> dict:
    """PredictionRequest's JSON schema as strict as the server: exactly one of ``pixels`` and ``images`` (oneOf),
    neither of them null, at most ``max_batch`` images. (Rows of equal length cannot be said in JSON Schema; the
    descriptions say it.)"""
    props = schema["properties"]
    for key in ("pixels", "images"):
        prop = props[key]
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            prop.update(variants[0])
        prop.pop("default", None)
    props["images"]["maxItems"] = int(max_batch)
    props["pixels"]["description"] = "One image: rows of floats in [0, 1] (1 = ink), all of the same length."
    props["images"]["description"] = f"A batch of 1 to {max_batch} images, each like `pixels`."
    schema["oneOf"] = [{"required": ["pixels"]}, {"required": ["images"]}]
    return schema


class TopClass(BaseModel):
    label: int = Field(description="Index of the class in the model's classes.")
    class_name: str
    probability: float


class Prediction(BaseModel):
    label: int = Field(description="Index of the most probable class.")
    class_name: str = Field(description="Name of the most probable class.")
    probabilities: dict[str, float] = Field(description="Probability of every class, by class name.")
    top: list[TopClass] = Field(description="The most probable classes, best first.")


class PredictionResponse(Prediction):
    model_id: str = Field(description="Model name and the first 12 hex digits of its weights' SHA-256.")


class BatchResponse(BaseModel):
    model_id: str
    predictions: list[Prediction]


class Health(BaseModel):
    status: Literal["ok"]
    model_id: str
    backend: str


class ErrorResponse(BaseModel):
    detail: Any


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _no_ink(locs: list[list[Any]]) -> JSONResponse:
    """A blank image (or images of a batch) is a 422 of type ``no_ink``, never a confident guess."""
    return _error(422, [{"loc": loc, "type": "no_ink", "msg": Predictor.NO_INK} for loc in locs])


def _several(loc: list[Any], exc: SeveralGlyphsError) -> JSONResponse:
    """A picture of several glyphs (a whole number) is a 422 of type ``several_glyphs``: one label would be a guess."""
    return _error(422, [{"loc": loc, "type": "several_glyphs", "msg": str(exc)}])


async def _prediction_request(request: Request) -> PredictionRequest | JSONResponse:
    """The JSON body as a :class:`PredictionRequest`, or the 422 naming (at most 20 of) its faults by field path."""
    try:
        return PredictionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        return _error(
            422,
            [
                {**e, "loc": ["body", *e["loc"]]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ][:20],
        )


async def _json_pixels(request: Request, one: str) -> np.ndarray | JSONResponse:
    """The ``pixels`` of a JSON body that carries one picture, or the 422 refusing it (``one`` says why a batch
    is refused: "one image per explanation")."""
    req = await _prediction_request(request)
    if isinstance(req, JSONResponse):
        return req
    if req.pixels is None:
        return _error(
            422, [{"loc": ["body", "images"], "type": "too_long", "msg": f"{one}: send 'pixels', not a batch"}]
        )
    return np.asarray(req.pixels, dtype=np.float32)


async def _one_image(request: Request, settings: ServeSettings, predictor: Predictor):
    """The one image of an /explanation request, as /prediction reads it (JSON ``pixels``, multipart ``file`` or
    an image body): a function that prepares it (run it in a worker thread), or the JSONResponse refusing it."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        pixels = await _json_pixels(request, "one image per explanation")
        if isinstance(pixels, JSONResponse):
            return pixels
        return lambda: predictor.prepare_pixels(pixels)
    data = await _upload_bytes(request, ctype, settings)
    if isinstance(data, JSONResponse):
        return data
    return lambda: predictor.prepare_bytes(data, settings.limits())


async def _upload_bytes(request: Request, ctype: str, settings: ServeSettings) -> bytes | JSONResponse:
    """The image bytes of a multipart (field ``file``) or raw image request, or the JSONResponse refusing it."""
    if ctype == "multipart/form-data":
        try:
            data = upload_file(
                await request.body(),
                request.headers.get("content-type", ""),
                "file",
                max_files=1,
                max_fields=8,
                max_part_size=settings.max_bytes,
            )
        except MultipartError as exc:
            return _error(400, f"the multipart body cannot be parsed: {exc}")
        if data is None:
            return _error(
                422,
                [{"loc": ["body", "file"], "type": "missing", "msg": "upload the image in the multipart field 'file'"}],
            )
        return data
    if ctype in IMAGE_TYPES:
        return await request.body()
    return _error(
        415,
        f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data "
        "(field 'file'), an image/png or image/jpeg body, or application/json",
    )


# -- what GET /model tells strangers ---------------------------------------------------------------------------
#: an absolute path (POSIX, home-relative or Windows) in free text; not a URL's path, not a fraction like 1/2
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(?:~?/|[A-Za-z]:\\)[^\s()\[\]`'\"<>,;|]+")
WITHHELD = "[path withheld]"


def redact_paths(text: str) -> str:
    """``text`` with every absolute path replaced by :data:`WITHHELD` (a model card names its training data's)."""
    return _ABSOLUTE_PATH.sub(WITHHELD, text)


def public_details(info: dict[str, Any]) -> dict[str, Any]:
    """GET /model's answer for strangers: no file paths (only file names), no library versions, no training
    paths in the manifest or the card; ``glyphlab serve --expose-details`` serves it all."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k != "versions"}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return redact_paths(value) if isinstance(value, str) else value

    out = scrub(info)
    if info.get("onnx"):
        out["onnx"] = Path(info["onnx"]).name
    return out


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
                    return
                if self.buffered + len(body) > self.max_buffered:
                    await send_json(
                        send,
                        503,
                        {"detail": "the server holds too many large bodies at once; retry in 1 s"},
                        retry_after=1,
                    )
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
            response = _internal_error(self.method, self.path)
        await response(scope, receive, send)


def _internal_error(method: str, path: str) -> JSONResponse:
    """The answer to an exception no handler turned into one (a bug): logged with its traceback, a JSON 500."""
    log.exception("unexpected error on %s %s", method, path)
    return _error(500, "internal error; the server logged it and keeps serving")


def _too_large(limit: int, declared: int | None = None) -> str:
    got = f" (Content-Length {declared:,})" if declared is not None else ""
    return f"the request body is larger than the limit of {limit:,} bytes{got}; send a smaller image"


# -- the app ---------------------------------------------------------------------------------------------------
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


def _request_body(json_model: str) -> dict:
    """The request body of /prediction (``PredictionRequest``) or /explanation (``ExplanationRequest``)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "minLength": 1,
                                "description": "A PNG or JPEG image of one glyph.",
                            }
                        },
                    },
                },
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model}"}},
                **{
                    t: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                    for t in ("image/png", "image/jpeg")
                },
            },
        },
    }


_PREDICTION_BODY = _request_body("PredictionRequest")
_EXPLANATION_BODY = _request_body("ExplanationRequest")


_RESPONSES = {
    400: {
        "model": ErrorResponse,
        "description": "Not an image, a damaged or truncated one, empty, or too many pixels.",
    },
    413: {"model": ErrorResponse, "description": "Body larger than max_bytes."},
    415: {"model": ErrorResponse, "description": "Content type not JSON, multipart or an image."},
    422: {
        "model": ErrorResponse,
        "description": "JSON of the wrong shape or values, or an image with no ink "
        "(a blank canvas: type `no_ink`); `loc` says where.",
    },
    503: {"model": ErrorResponse, "description": "At the concurrency limit; retry after `Retry-After` s."},
}


async def _json_prediction(request: Request, predictor: Predictor, settings: ServeSettings, answer) -> JSONResponse:
    """POST /prediction with JSON pixels (one image or a batch): validated, each image prepared, blank ones named."""
    req = await _prediction_request(request)
    if isinstance(req, JSONResponse):
        return req
    if req.images is not None:
        if len(req.images) > settings.max_batch:
            return _error(
                422,
                [
                    {
                        "loc": ["body", "images"],
                        "type": "too_long",
                        "msg": f"at most {settings.max_batch} images per request, got {len(req.images)}",
                    }
                ],
            )
        raw = req.images
    else:
        raw = [req.pixels]

    def prepare_json() -> np.ndarray | list[int]:
        xs, blank = [], []
        for i, im in enumerate(raw):
            try:
                xs.append(predictor.prepare_pixels(np.asarray(im, dtype=np.float32)))
            except NoInkError:
                blank.append(i)
        return blank if blank else np.stack(xs)

    x = await run_in_threadpool(prepare_json)
    if isinstance(x, list):
        where = [["body", "images", i] for i in x] if req.images is not None else [["body", "pixels"]]
        return _no_ink(where)
    return JSONResponse(await answer(x, batch=req.images is not None))


def _install_openapi(app: FastAPI, settings: ServeSettings) -> None:
    """The OpenAPI document with the hand-written request bodies' schemas (built once, on first request)."""
    app.openapi_schema = None

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (PredictionRequest, ExplanationRequest):
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(defs.pop("$defs", {}))
            comps[model.__name__] = defs
        _strict_request_schema(comps["PredictionRequest"], settings.max_batch)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _prediction_route(app: FastAPI, predictor: Predictor, settings: ServeSettings, limits: DecodeLimits) -> Callable:
    """POST /prediction (uploads, raw image bodies, JSON pixels); returns the handler for the direct route."""
    # answers are built as plain dicts of the response models' shape and sent as JSONResponse (FastAPI skips
    # re-validating them); tests check the shape against the models
    # at most max_concurrency requests are inside the app at once, so that many waiting is a full batch
    batcher = MicroBatcher(
        lambda x: predictor.predict(x),
        settings.micro_batch,
        wait_s=settings.batch_wait_ms / 1000.0,
        max_callers=settings.max_concurrency,
    )

    async def answer(x: np.ndarray | Callable[[], np.ndarray], batch: bool) -> dict:
        """Predict prepared images (batched with concurrent requests' unless micro_batch is 1) and describe them;
        ``x`` may be a function that prepares them, run by the batch next to the other requests' (see batching)."""
        if callable(x) and settings.micro_batch == 1:
            x = await run_in_threadpool(x)
        probs = await batcher.predict(x) if settings.micro_batch > 1 else await run_in_threadpool(predictor.predict, x)
        preds = [predictor.describe(row, settings.top_k) for row in probs]
        if batch:
            return {"model_id": predictor.model_id, "predictions": preds}
        return {**preds[0], "model_id": predictor.model_id}

    @app.post(
        "/prediction",
        response_model=PredictionResponse | BatchResponse,
        responses=_RESPONSES,
        openapi_extra=_PREDICTION_BODY,
        summary="Classify one image (upload or pixels) or a batch",
    )
    async def prediction(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if ctype == "application/json":
                return await _json_prediction(request, predictor, settings, answer)
            data = await _upload_bytes(request, ctype, settings)
            if isinstance(data, JSONResponse):
                return data

            def prepare() -> np.ndarray:
                return predictor.prepare_bytes(data, limits)[None]

            # a glyph's upload: prepared by the micro-batch, next to the concurrent requests' uploads (warm caches,
            # one hop to a thread for them all); a photo or scan in a thread of its own
            x = prepare if len(data) <= BATCH_PREPARE_BYTES else await run_in_threadpool(prepare)
            return JSONResponse(await answer(x, batch=False))
        except NoInkError:
            return _no_ink([["body", "file"] if ctype == "multipart/form-data" else ["body"]])
        except SeveralGlyphsError as exc:
            return _several(["body", "file"] if ctype == "multipart/form-data" else ["body"], exc)
        except ImageTooLargeError as exc:
            return _error(413, str(exc))
        except GlyphlabError as exc:
            return _error(400, str(exc))

    return prediction


def _explanation_route(app: FastAPI, predictor: Predictor, settings: ServeSettings, explainer: Explainer) -> None:
    """POST /explanation: attribution maps for one image, prepared as /prediction prepares it."""

    @app.post(
        "/explanation",
        responses=_RESPONSES,
        openapi_extra=_EXPLANATION_BODY,
        summary="Why the model chose its class and not the runner-up: attribution maps for one image",
    )
    async def explanation(
        request: Request,
        method: Literal["auto", "ig", "occlusion", "gradcam", "coef"] = "auto",
        steps: Annotated[int, Query(ge=1, le=IG_STEPS, description="IG steps (capped)")] = IG_STEPS,
    ):
        """Same input rules as /prediction, one image; maps of the model input's shape (``input``), red = for."""
        try:
            prepare = await _one_image(request, settings, predictor)
            if isinstance(prepare, JSONResponse):
                return prepare

            def run() -> dict:
                expl = explainer.explain(prepare()[None], method, steps=steps)
                return {**payload(expl), "model_id": predictor.model_id}

            return JSONResponse(await run_in_threadpool(run))
        except NoInkError:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            loc = {"application/json": ["body", "pixels"], "multipart/form-data": ["body", "file"]}.get(ctype, ["body"])
            return _no_ink([loc])
        except SeveralGlyphsError as exc:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            return _several({"multipart/form-data": ["body", "file"]}.get(ctype, ["body"]), exc)
        except ImageTooLargeError as exc:
            return _error(413, str(exc))
        except GlyphlabError as exc:
            return _error(400, str(exc))


def _reading_route(
    app: FastAPI, predictor: Predictor, settings: ServeSettings, limits: DecodeLimits, explainer: Explainer
) -> None:
    """POST /reading: the text of a picture of a line of characters (glyphlab.reading)."""

    @app.post(
        "/reading",
        responses=_RESPONSES,
        openapi_extra=_EXPLANATION_BODY,
        summary="Read a handwritten number or code: the text of a picture of a line of characters",
    )
    async def reading(
        request: Request,
        charset: Annotated[str | None, Query(max_length=100, description="e.g. 0-9")] = None,
        length: Annotated[int | None, Query(ge=1, le=64, description="exact characters per line")] = None,
        pattern: Annotated[str | None, Query(max_length=100, description="a regex each line matches")] = None,
        explain: Annotated[bool, Query(description="each character's heat map, as /explanation gives one")] = False,
    ):
        """Same input rules as /prediction, one image: its text, per line and per character (box, label,
        probability, runner-up), as ``glyphlab read`` and ``gl.read`` give it (glyphlab.reading); with
        ``explain``, each character also has the ``explanation`` of its model input (IG steps capped)."""
        from glyphlab.reading import explain_chars, read_one

        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        loc = {"application/json": ["body", "pixels"], "multipart/form-data": ["body", "file"]}.get(ctype, ["body"])
        try:
            if ctype == "application/json":
                source: Any = await _json_pixels(request, "one picture per reading")
                if isinstance(source, JSONResponse):
                    return source
                ink_dark: bool | None = False
            else:
                source = await _upload_bytes(request, ctype, settings)
                if isinstance(source, JSONResponse):
                    return source
                ink_dark = None

            def run() -> dict:
                r = read_one(
                    predictor, source, charset=charset, length=length, pattern=pattern, limits=limits, ink_dark=ink_dark
                )
                d = r.to_dict()
                d.pop("source", None)
                if explain:
                    why = iter(explain_chars(r, explainer))
                    for line in d["lines"]:
                        for ch in line["chars"]:
                            ch["explanation"] = next(why)
                return {**d, "model_id": predictor.model_id}

            return JSONResponse(await run_in_threadpool(run))
        except NoInkError as exc:
            return _error(422, [{"loc": loc, "type": "no_ink", "msg": str(exc)}])
        except ImageTooLargeError as exc:
            return _error(413, str(exc))
        except GlyphlabError as exc:
            return _error(400, str(exc))


def _info_routes(app: FastAPI, predictor: Predictor, settings: ServeSettings) -> None:
    """GET /health, /model (the manifest, or the model card as Markdown) and the drawing page at /."""

    @app.get("/health", response_model=Health, summary="Liveness: the model is loaded")
    def health() -> dict:
        return {"status": "ok", "model_id": predictor.model_id, "backend": predictor.backend}

    card = read_model_card(predictor.directory)  # hash-checked now: a card changed later is not served

    # what /model tells: paths, versions and training-data paths only with expose_details (strangers ask it)
    info = {**predictor.info(), "manifest": predictor.manifest, "limits": settings.model_dump(), "model_card": card}
    model_details = info if settings.expose_details else public_details(info)
    if not settings.expose_details and card is not None:
        card = redact_paths(card)

    @app.get(
        "/model",
        summary="The model's manifest and how it is served; its MODEL_CARD.md with Accept: text/markdown",
        responses={200: {"content": {"text/markdown": {}}}},
    )
    def model_info(request: Request):
        if "text/markdown" in request.headers.get("accept", ""):
            if card is None:
                return _error(
                    404,
                    "this model folder has no MODEL_CARD.md (saved by an older glyphlab); "
                    "rerun `glyphlab run` to get one",
                )
            return PlainTextResponse(card, media_type="text/markdown; charset=utf-8")
        return model_details

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = resources.files("glyphlab.serving").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def _limit_middleware(app: FastAPI, prediction: Callable, settings: ServeSettings) -> None:
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
    _install_openapi(app, settings)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        return _internal_error(request.method, request.url.path)

    prediction = _prediction_route(app, predictor, settings, limits)
    explainer = Explainer(predictor.model)  # one for /explanation and /reading?explain=true
    _explanation_route(app, predictor, settings, explainer)
    _reading_route(app, predictor, settings, limits, explainer)
    _info_routes(app, predictor, settings)
    _limit_middleware(app, prediction, settings)
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
