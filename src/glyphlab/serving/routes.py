"""The server's routes: POST /prediction, /explanation and /reading, and GET /health, /model and the drawing
page; each ``*_route`` function adds its routes to an app, and :func:`glyphlab.serving.app.create_app` calls them.
Every refusal is an :func:`~glyphlab.serving.schemas.error_response` with the status the module docstring of
:mod:`glyphlab.serving.app` lists."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import ValidationError

from glyphlab.data.images import DecodeLimits, ImageTooLargeError, NoInkError, SeveralGlyphsError
from glyphlab.errors import GlyphlabError
from glyphlab.evaluation.attributions import IG_STEPS, Explainer, payload
from glyphlab.models.persistence import read_model_card
from glyphlab.serving.batching import MicroBatcher
from glyphlab.serving.multipart import ExtraPartError, MultipartError, upload_file
from glyphlab.serving.predictor import Predictor
from glyphlab.serving.schemas import (
    EXPLANATION_BODY,
    IMAGE_TYPES,
    PREDICTION_BODY,
    RESPONSES,
    BatchResponse,
    Health,
    PredictionRequest,
    PredictionResponse,
    error_response,
)
from glyphlab.serving.settings import ServeSettings

#: uploads up to this size are prepared by the micro-batch, back to back with the concurrent requests' uploads
#: in its worker thread (warm caches); larger bodies (photos, scans) in a thread of their own, so that they do
#: not hold up the other requests. Neither on the event loop: a crafted 60 KB JPEG took 1.2 s to decode there
BATCH_PREPARE_BYTES = 64 * 1024


def _no_ink(locs: list[list[Any]]) -> JSONResponse:
    """A blank image (or images of a batch) is a 422 of type ``no_ink``, never a confident guess."""
    return error_response(422, [{"loc": loc, "type": "no_ink", "msg": Predictor.NO_INK} for loc in locs])


def _several(loc: list[Any], exc: SeveralGlyphsError) -> JSONResponse:
    """A picture of several glyphs (a whole number) is a 422 of type ``several_glyphs``: one label would be a guess."""
    return error_response(422, [{"loc": loc, "type": "several_glyphs", "msg": str(exc)}])


async def _prediction_request(request: Request) -> PredictionRequest | JSONResponse:
    """The JSON body as a :class:`PredictionRequest`, or the 422 naming (at most 20 of) its faults by field path."""
    try:
        return PredictionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(
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
        return error_response(
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
                max_fields=0,  # only the file: the schema's multipart object has no other property
                max_part_size=settings.max_bytes,
            )
        except ExtraPartError as exc:
            msg = f"unexpected multipart field {str(exc)!r}: send the image alone, in the field 'file'"
            return error_response(422, [{"loc": ["body", str(exc)], "type": "extra_forbidden", "msg": msg}])
        except MultipartError as exc:
            return error_response(400, f"the multipart body cannot be parsed: {exc}")
        if data is None:
            return error_response(
                422,
                [{"loc": ["body", "file"], "type": "missing", "msg": "upload the image in the multipart field 'file'"}],
            )
        return data
    if ctype in IMAGE_TYPES:
        return await request.body()
    return error_response(
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


async def _json_prediction(request: Request, predictor: Predictor, settings: ServeSettings, answer) -> JSONResponse:
    """POST /prediction with JSON pixels (one image or a batch): validated, each image prepared, blank ones named."""
    req = await _prediction_request(request)
    if isinstance(req, JSONResponse):
        return req
    if req.images is not None:
        if len(req.images) > settings.max_batch:
            return error_response(
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


def prediction_route(app: FastAPI, predictor: Predictor, settings: ServeSettings, limits: DecodeLimits) -> Callable:
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
        responses=RESPONSES,
        openapi_extra=PREDICTION_BODY,
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
            return error_response(413, str(exc))
        except GlyphlabError as exc:
            return error_response(400, str(exc))

    return prediction


def explanation_route(app: FastAPI, predictor: Predictor, settings: ServeSettings, explainer: Explainer) -> None:
    """POST /explanation: attribution maps for one image, prepared as /prediction prepares it."""

    @app.post(
        "/explanation",
        responses=RESPONSES,
        openapi_extra=EXPLANATION_BODY,
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
            return error_response(413, str(exc))
        except GlyphlabError as exc:
            return error_response(400, str(exc))


def reading_route(
    app: FastAPI, predictor: Predictor, settings: ServeSettings, limits: DecodeLimits, explainer: Explainer
) -> None:
    """POST /reading: the text of a picture of a line of characters (glyphlab.reading)."""

    @app.post(
        "/reading",
        responses=RESPONSES,
        openapi_extra=EXPLANATION_BODY,
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
            return error_response(422, [{"loc": loc, "type": "no_ink", "msg": str(exc)}])
        except ImageTooLargeError as exc:
            return error_response(413, str(exc))
        except GlyphlabError as exc:
            return error_response(400, str(exc))


def info_routes(app: FastAPI, predictor: Predictor, settings: ServeSettings) -> None:
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
                return error_response(
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
