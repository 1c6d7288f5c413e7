"""From an uploaded image (any size, format mode) to a model input: (H, W) float32 in [0, 1], 1 = ink.

Decoding is defensive because the bytes come from strangers:

* the byte size is checked first (``max_bytes``), then only the header is read and the pixel count
  checked against ``max_pixels`` *before* anything is decoded, so a 20000x20000 PNG of a few KB
  (a decompression bomb) costs nothing;
* ``verify()`` checks the file's structure (PNG CRCs, chunk order), then the image is reopened and
  fully loaded; truncated files are errors (Pillow's ``LOAD_TRUNCATED_IMAGES`` is never set here);
* only PNG, JPEG, GIF, BMP and WebP decoders are allowed;
* every failure is an :class:`ImageInputError` (a :class:`~glyphlab.errors.DataError`) with a message a
  caller can show to a user.

The pixels then follow the MNIST recipe for 28x28 models (grayscale, light backgrounds inverted, crop to
the ink, longest side to 20 px, centre of mass at the centre of 28x28); other input sizes use the same
crop-and-centre idea with the ink box filling the whole input (the 8x8 ``digits`` are drawn edge to edge).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from glyphlab.errors import DataError

#: decoders allowed to run on uploaded bytes
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
#: a pixel counts as ink for the bounding box above this value (after contrast stretch)
INK_THRESHOLD = 0.1
#: an image whose ink is weaker than this above the background holds no glyph: it becomes all zeros
MIN_CONTRAST = 0.08
#: images are reduced to at most this side before the float work (the glyph ends up 20 px anyway)
WORK_SIDE = 512


class ImageInputError(DataError):
    """An uploaded image cannot be used: not an image, damaged, too large, or of an unsupported kind."""


class ImageTooLargeError(ImageInputError):
    """The upload has more bytes than allowed."""


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = 5_000_000
    max_pixels: int = 4_000_000


# -- decoding -------------------------------------------------------------------------------------------
def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> Image.Image:
    """Decode untrusted bytes into a fully loaded PIL image, or raise :class:`ImageInputError`."""
    if not data:
        raise ImageInputError("the upload is empty: send a PNG or JPEG image")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"the image has {len(data):,} bytes, more than the limit of {limits.max_bytes:,}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone in this process relaxed Pillow globally; we do not
        raise ImageInputError("refusing to decode: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set in this process")
    fmt = "image"
    with warnings.catch_warnings():
        # Pillow's own bomb check warns (and errors at 2x its global limit); ours is stricter and runs first
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as probe:
                fmt = probe.format or fmt
                _check_pixels(probe.size, limits)
                probe.verify()
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            _check_pixels(im.size, limits)
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated GIF/WebP: the first frame
            im.load()
        except ImageInputError:
            raise
        except UnidentifiedImageError:
            raise ImageInputError(
                f"the upload is not an image Pillow may decode here (allowed: {', '.join(ALLOWED_FORMATS)})"
            ) from None
        except Image.DecompressionBombError as exc:
            raise ImageInputError(
                f"the image header claims more pixels than this server decodes (limit {limits.max_pixels:,}); "
                f"refused without decoding ({exc})"
            ) from None
        except Exception as exc:  # decoders of damaged files raise many types (OSError, SyntaxError, struct.error...)
            msg = str(exc) or type(exc).__name__
            if "truncated" in msg.lower() or isinstance(exc, EOFError):
                raise ImageInputError(f"the image is truncated or damaged: {msg}") from None
            raise ImageInputError(f"the {fmt} file is damaged: {msg}") from None
    return im


def _check_pixels(size: tuple[int, int], limits: DecodeLimits) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageInputError(f"the image has no pixels ({w}x{h})")
    if w * h > limits.max_pixels:
        raise ImageInputError(
            f"the image is {w}x{h} = {w * h:,} pixels, more than the limit of {limits.max_pixels:,}; "
            "send a smaller image (a glyph needs only a few hundred pixels a side)"
        )


# -- to grayscale ink -------------------------------------------------------------------------------------
def to_ink(im: Image.Image) -> np.ndarray:
    """Grayscale float32 (H, W) in [0, 1] with ink = 1 and background = 0, whatever the mode and colours."""
    try:
        im = ImageOps.exif_transpose(im)  # phone photos
    except Exception:  # a broken EXIF block is not worth refusing the image for
        pass
    if max(im.size) > WORK_SIDE:
        im = im.copy()
        im.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    gray = _gray(im)
    if not np.isfinite(gray).all():
        gray = np.nan_to_num(gray, nan=0.0, posinf=1.0, neginf=0.0)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # dark ink on light paper
        gray = 1.0 - gray
        border = 1.0 - border
    background = float(np.median(border))
    peak = float(gray.max())
    if peak - background < MIN_CONTRAST:
        return np.zeros_like(gray, dtype=np.float32)
    return np.clip((gray - background) / (peak - background), 0.0, 1.0).astype(np.float32)


def _gray(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        return ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)).astype(np.float32)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        arr = np.asarray(rgba, dtype=np.float32) / 255.0
        alpha = arr[..., 3]
        lum = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        if alpha.min() < 0.99:
            # transparent background (e.g. a canvas): put the strokes on the opposite of their own colour
            weight = alpha.sum()
            ink_lum = float((lum * alpha).sum() / weight) if weight > 0 else 0.0
            backdrop = 0.0 if ink_lum > 0.5 else 1.0
            return lum * alpha + backdrop * (1.0 - alpha)
        return lum
    if mode not in ("L", "RGB", "1", "P", "CMYK"):
        try:
            im = im.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageInputError(f"images in mode {mode} are not supported: {exc}") from None
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


# -- to the model's input ------------------------------------------------------------------------------
def box_fraction(shape: Sequence[int]) -> float:
    """Share of the input side the ink box gets: 20/28 for MNIST-like inputs, all of it for tiny ones."""
    return 20.0 / 28.0 if min(shape) >= 16 else 1.0


def fit_to_input(ink: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Crop to the ink, scale the longest side to the box (keeping aspect), centre the mass in ``shape``."""
    from scipy import ndimage

    H, W = int(shape[0]), int(shape[1])
    ink = np.asarray(ink, dtype=np.float32)
    if ink.ndim != 2 or ink.size == 0:
        raise ImageInputError(f"expected a 2-D image, got shape {ink.shape}")
    ink = np.nan_to_num(np.clip(ink, 0.0, 1.0), nan=0.0)
    mask = ink > INK_THRESHOLD
    if not mask.any():
        return np.zeros((H, W), dtype=np.float32)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ch, cw = crop.shape
    frac = box_fraction((H, W))
    box_h, box_w = max(1.0, H * frac), max(1.0, W * frac)
    scale = min(box_h / ch, box_w / cw)
    nh, nw = max(1, min(H, round(ch * scale))), max(1, min(W, round(cw * scale)))
    small = (nh * nw) < 256
    resample = Image.Resampling.BOX if small and scale < 1 else Image.Resampling.LANCZOS
    resized = np.asarray(Image.fromarray(crop, mode="F").resize((nw, nh), resample), dtype=np.float32)
    resized = np.clip(resized, 0.0, 1.0)
    out = np.zeros((H, W), dtype=np.float32)
    top, left = (H - nh) // 2, (W - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    if out.sum() > 0 and frac < 1.0:
        cy, cx = ndimage.center_of_mass(out)
        dy, dx = (H - 1) / 2.0 - cy, (W - 1) / 2.0 - cx
        # never shift ink off the canvas: limit the shift to the free margin on each side
        dy = float(np.clip(dy, -top, H - top - nh))
        dx = float(np.clip(dx, -left, W - left - nw))
        out = ndimage.shift(out, (dy, dx), order=1, mode="constant", cval=0.0)
    peak = float(out.max())
    if peak > 0:
        out = out / peak
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def prepare_image(im: Image.Image, shape: Sequence[int]) -> np.ndarray:
    """A decoded image -> the model input (H, W) float32 in [0, 1], ink = 1."""
    return fit_to_input(to_ink(im), shape)


def prepare_bytes(data: bytes, shape: Sequence[int], limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """Untrusted image bytes -> the model input, or :class:`ImageInputError`."""
    im = decode_image(data, limits)
    try:
        return prepare_image(im, shape)
    finally:
        im.close()


def prepare_pixels(pixels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A 2-D array already in [0, 1] with ink = 1: kept as is when it has the model's shape, else fitted."""
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim != 2:
        raise ImageInputError(f"expected a 2-D image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ImageInputError("the pixels contain NaN or infinite values")
    if tuple(arr.shape) == tuple(int(s) for s in shape):
        return np.clip(arr, 0.0, 1.0)
    return fit_to_input(arr, shape)
