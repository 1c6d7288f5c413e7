"""Image helpers shared by the serving tests."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib

import numpy as np
from PIL import Image, ImageDraw


def png_bytes(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def drawn_one(size: int = 280, mode: str = "RGB") -> Image.Image:
    """A dark vertical stroke on a light background (a '1', as a user would draw it)."""
    im = Image.new(mode, (size, size), "white")
    ImageDraw.Draw(im).line([(size * 0.5, size * 0.1), (size * 0.5, size * 0.9)], fill="black", width=size // 12)
    return im


def digit_png(image: np.ndarray, scale: int = 20) -> bytes:
    """A dataset image (ink = 1) as a black-on-white PNG, upscaled, as a scanner would produce."""
    arr = (255 - np.asarray(image) * 255).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(arr, mode="L").resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.Resampling.NEAREST)
    return png_bytes(im)


def train_model(name: str, digits, **params):
    """Fit a registered model on the digits train split (nets: 800 train + 200 validation images)."""
    from glyphlab.models.registry import model_spec

    tr = digits.splits["train"]
    cls = model_spec(name).cls
    model = cls(**params)
    if cls.uses_validation:
        model.fit(tr.images[:800], tr.labels[:800], tr.images[800:1000], tr.labels[800:1000], classes=digits.classes)
    else:
        model.fit(tr.images, tr.labels, classes=digits.classes)
    return model


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (only the IHDR and an empty IDAT are written)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def stop_server(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a server subprocess: SIGTERM, then SIGKILL if it has not exited within ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
