"""Image helpers shared by the serving tests."""

from __future__ import annotations

import io

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
