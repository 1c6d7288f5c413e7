"""What the server's routes accept and answer, as types: the request and response models, the one error shape,
and the OpenAPI document built from them (so the documentation cannot drift from what is validated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from glyphlab.serving.settings import ServeSettings

#: the largest side a JSON pixel array may have (it is resized to the model's input anyway)
MAX_JSON_SIDE = 512


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


def image_schema(max_side: int = MAX_JSON_SIDE) -> dict:
    """The JSON schema of one image (components/schemas/Image): 1 to ``max_side`` rows of 1 to ``max_side`` numbers
    in [0, 1]. That every row is as long as the others is said in words only: JSON Schema can say it just by one
    ``anyOf`` branch per width (``items`` of that length), and schemathesis' coverage phase on /prediction took
    5.5 s with 16 such branches and over 200 s with 64 (512 are needed), so a fuzzer or a client generator could
    not use the document at all."""
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": max_side,
        "description": "One image: rows of numbers in [0, 1] (1 = ink), all of the same length.",
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": max_side,
            "items": {"type": "number", "minimum": 0.0, "maximum": 1.0},
        },
    }


IMAGE_REF = {"$ref": "#/components/schemas/Image"}


def _strict_request_schema(schema: dict, max_batch: int) -> dict:
    """PredictionRequest's JSON schema as strict as the server: exactly one of ``pixels`` and ``images`` (oneOf),
    neither of them null, each image rectangular (:func:`image_schema`), at most ``max_batch`` images."""
    props = schema["properties"]
    props["pixels"] = {**IMAGE_REF, "description": "One image: rows of numbers in [0, 1] (1 = ink), equally long."}
    props["images"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": int(max_batch),
        "items": IMAGE_REF,
        "description": f"A batch of 1 to {max_batch} images, each like `pixels`.",
    }
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


def error_response(status: int, detail: Any) -> JSONResponse:
    """Every refusal, from a route or a middleware, in one shape (:class:`ErrorResponse`): ``{"detail": ...}``."""
    return JSONResponse({"detail": detail}, status_code=status)


#: the image formats the server decodes, as a body's or a multipart part's media type
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


def _request_body(json_model: str) -> dict:
    """The request body of /prediction (``PredictionRequest``) or /explanation and /reading (``ExplanationRequest``):
    JSON, a multipart field ``file`` holding an image (its part's media type one of :data:`IMAGE_TYPES`, said in
    the ``encoding`` so that clients and fuzzers send an image there, not any bytes), or an image as the body."""
    binary = {"type": "string", "format": "binary", "minLength": 1}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "additionalProperties": False,  # the server refuses other parts (422 extra_forbidden)
                        "properties": {"file": {**binary, "description": "An image of one glyph (PNG, JPEG, ...)."}},
                    },
                    "encoding": {"file": {"contentType": ", ".join(IMAGE_TYPES)}},
                },
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model}"}},
                **{t: {"schema": dict(binary)} for t in IMAGE_TYPES},
            },
        },
    }


PREDICTION_BODY = _request_body("PredictionRequest")
EXPLANATION_BODY = _request_body("ExplanationRequest")


#: what a blank picture gets (the one refusal of a well-formed request that no schema can foresee: whether an
#: image holds ink is in its pixels, not its shape); documented as the 422's example
NO_INK_EXAMPLE = {
    "detail": [
        {
            "loc": ["body", "file"],
            "type": "no_ink",
            "msg": "no ink: the image is blank (nothing stands out from its background), so there is nothing to "
            "classify; draw or scan a glyph",
        }
    ]
}


def _error(description: str, examples: dict[str, Any] | None = None) -> dict:
    out: dict[str, Any] = {"model": ErrorResponse, "description": description}
    if examples:
        out["content"] = {"application/json": {"examples": {k: {"value": v} for k, v in examples.items()}}}
    return out


RESPONSES = {
    400: _error("Not an image, a damaged or truncated one, or a parameter the model cannot use."),
    413: _error("Body larger than max_bytes, or an image of more pixels than max_pixels."),
    415: _error("Content type not JSON, multipart or an image."),
    422: _error(
        "JSON of the wrong shape or values (`loc` says where), or a well-formed image the model cannot classify: "
        "`no_ink` (blank: nothing stands out from its background; a 1x1 image always is) or `several_glyphs` "
        "(a picture of several characters: send one, or use /reading). The schema cannot say these: they are "
        "in the pixels, not the shape.",
        {"no_ink": NO_INK_EXAMPLE},
    ),
    503: _error("At the concurrency limit; retry after `Retry-After` s."),
}


def _single_chars(classes: list[str]) -> str:
    """The one-character class names, as a regex character class's body (``0-9``-style charsets name those)."""
    import re

    return "".join(re.escape(c) for c in classes if len(c) == 1)


def _non_null(schema: dict) -> dict:
    """An optional parameter's schema without its ``null`` branch (the one FastAPI writes as ``anyOf``)."""
    variants = [v for v in schema.get("anyOf", []) if v.get("type") != "null"]
    return variants[0] if len(variants) == 1 else schema


def _strict_parameters(schema: dict, methods: tuple[str, ...], classes: list[str]) -> None:
    """The query parameters as the served model takes them: /explanation's ``method`` only the methods this model
    can be explained with (a logreg has no ``ig``); /reading's ``charset`` naming at least one of the model's
    one-character classes (else 400 "allows none of the model's classes") and its ``pattern`` a regex."""
    chars = _single_chars(classes)
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            for param in op.get("parameters", []):
                where, target = (path, param.get("name")), _non_null(param.get("schema", {}))
                if where == ("/explanation", "method"):
                    target["enum"] = list(methods)
                elif where == ("/reading", "charset") and chars:
                    target["pattern"] = f"[{chars}]"
                elif where == ("/reading", "pattern"):
                    target["format"] = "regex"


def install_openapi(
    app: FastAPI,
    settings: ServeSettings,
    methods: Callable[[], tuple[str, ...]] = lambda: ("auto",),
    classes: list[str] | None = None,
) -> None:
    """The OpenAPI document with the hand-written request bodies' schemas and the served model's parameters
    (``methods()``: those it can be explained with; its ``classes``), built once, on first request."""
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
        comps["Image"] = image_schema()
        _strict_request_schema(comps["PredictionRequest"], settings.max_batch)
        comps["ExplanationRequest"]["properties"]["pixels"] = {**IMAGE_REF, "description": "One image, like `pixels`."}
        _strict_parameters(schema, methods(), classes or [])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
