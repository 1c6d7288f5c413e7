"""The limits and choices of one server (``ServeSettings``): every field a ``glyphlab serve`` option."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from glyphlab.data.images import DecodeLimits


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
