"""What the server's routes accept and answer, as types: the request and response models, the one error shape,
and the OpenAPI document built from them (so the documentation cannot drift from what is validated)."""

from __future__ import annotations

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


def error_response(status: int, detail: Any) -> JSONResponse:
    """Every refusal, from a route or a middleware, in one shape (:class:`ErrorResponse`): ``{"detail": ...}``."""
    return JSONResponse({"detail": detail}, status_code=status)


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


PREDICTION_BODY = _request_body("PredictionRequest")
EXPLANATION_BODY = _request_body("ExplanationRequest")


RESPONSES = {
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


def install_openapi(app: FastAPI, settings: ServeSettings) -> None:
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
