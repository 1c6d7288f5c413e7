"""Seeded dataset variants (MNIST-rotation, MNIST-back-rand, subsets, ...) that compose.

Every function returns a NEW :class:`Dataset` (the input is never modified) and appends a record of
itself to ``meta["variants"]``. Random variants take a ``seed``; each split draws from its own stream
derived from (seed, variant, split), so train and test get different angles/noise, and the same seed
always gives byte-identical images.

:func:`apply_variants` parses CLI strings such as ``"rotate:-180:180,subset:3000,blur-filter"``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from glyphlab.data.dataset import Dataset
from glyphlab.data.splits import stratified_indices
from glyphlab.errors import ConfigError, DataError

BLUR_PERCENTILE = 5.0  # blur_filter's default threshold: this percentile of the split's blur scores
_CHUNK = 4096


def split_rng(seed: int, variant: str, split: str) -> np.random.Generator:
    """The random stream of one variant on one split (stable across runs and platforms)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(variant.encode()), zlib.crc32(split.encode())])


def _record(ds: Dataset, out: Dataset, name: str, **params: Any) -> Dataset:
    out.meta = {**out.meta, "variants": [*ds.meta.get("variants", []), {"name": name, **params}]}
    return out


# ------------------------------------------------------------------------------------------- rotate


def bilinear_sample(images: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Sample (m, h, w) images at float source coordinates (m, h*w), bilinear; zero outside the image."""
    m, h, w = images.shape
    hp, wp = h + 4, w + 4  # two pixels of zero border: every clipped corner lands on background
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = sy - y0, sx - x0
    # y0 in [-2, h] keeps y0 and y0+1 inside the padded image; beyond that both are background
    idx = (np.clip(y0, -2, h).astype(np.int64) + 2) * wp + (np.clip(x0, -2, w).astype(np.int64) + 2)
    idx += (np.arange(m, dtype=np.int64) * (hp * wp))[:, None]
    padded = np.zeros((m, hp, wp), dtype=np.float32)
    padded[:, 2:-2, 2:-2] = images
    flat = padded.ravel()
    top = (1 - fx) * flat.take(idx) + fx * flat.take(idx + 1)
    bottom = (1 - fx) * flat.take(idx + wp) + fx * flat.take(idx + wp + 1)
    return ((1 - fy) * top + fy * bottom).reshape(m, h, w)


def rotate_images(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate each image counter-clockwise by its angle (degrees) about its centre; bilinear, zero fill.

    Same result (up to float32 rounding) as ``scipy.ndimage.rotate(img, angle, reshape=False, order=1,
    mode="grid-constant")`` per image, vectorised: 60,000 28x28 images take a couple of seconds.
    """
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    out = np.empty_like(images)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    yy, xx = yy.ravel().astype(np.float32), xx.ravel().astype(np.float32)
    for s in range(0, n, _CHUNK):
        imgs = images[s : s + _CHUNK]
        m = len(imgs)
        t = np.deg2rad(np.asarray(angles[s : s + _CHUNK], dtype=np.float64))[:, None]
        cos, sin = np.cos(t).astype(np.float32), np.sin(t).astype(np.float32)
        sy = cos * yy + sin * xx + np.float32(cy)  # source coordinates, (m, h*w)
        sx = cos * xx - sin * yy + np.float32(cx)
        out[s : s + m] = bilinear_sample(imgs, sy, sx)
    return np.clip(out, 0.0, 1.0)


def rotate(
    ds: Dataset, low: float = -180.0, high: float = 180.0, seed: int = 0, *, return_angles: bool = False
) -> Dataset | tuple[Dataset, dict[str, np.ndarray]]:
    """Rotate every image by an angle drawn uniformly from [low, high) degrees (MNIST-rotation).

    With ``return_angles=True`` also returns ``{split: angles}``.
    """
    low, high = float(low), float(high)
    if not low <= high:
        raise ConfigError(f"rotate needs low <= high, got {low:g} > {high:g}")
    angles: dict[str, np.ndarray] = {}

    def fn(images: np.ndarray, split: str) -> np.ndarray:
        angles[split] = split_rng(seed, "rotate", split).uniform(low, high, len(images))
        return rotate_images(images, angles[split])

    out = _record(ds, ds.map_images(fn, f"rot{low:g}:{high:g}"), "rotate", low=low, high=high, seed=seed)
    return (out, angles) if return_angles else out


# -------------------------------------------------------------------------------------------- noise


def background_noise(ds: Dataset, seed: int = 0, low: float = 0.0, high: float = 1.0) -> Dataset:
    """MNIST-back-rand: every pixel becomes ``max(digit, noise)``, noise ~ U[low, high] per pixel.

    Background (0) pixels get the noise; ink pixels stay at least as bright as they were.
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigError(f"background noise needs 0 <= low <= high <= 1, got {low:g}, {high:g}")

    def fn(images: np.ndarray, split: str) -> np.ndarray:
        noise = split_rng(seed, "background_noise", split).uniform(low, high, images.shape).astype(np.float32)
        return np.maximum(images, noise)

    return _record(ds, ds.map_images(fn, "backrand"), "background_noise", seed=seed, low=low, high=high)


# ------------------------------------------------------------------------------ deterministic maps


def transpose(ds: Dataset) -> Dataset:
    """Transpose every image (swap rows and columns)."""
    return _record(ds, ds.map_images(lambda im, _: np.ascontiguousarray(im.transpose(0, 2, 1)), "T"), "transpose")


def threshold(ds: Dataset, level: float = 0.5) -> Dataset:
    """Binarise: pixels > ``level`` become 1, the rest 0."""
    level = float(level)
    if not 0.0 <= level <= 1.0:
        raise ConfigError(f"threshold level must be in [0, 1], got {level:g}")
    return _record(
        ds, ds.map_images(lambda im, _: (im > level).astype(np.float32), f"bin{level:g}"), "threshold", level=level
    )


# ------------------------------------------------------------------------------------------ subset


def subset(ds: Dataset, size: float | int, seed: int = 0, split: str = "train") -> Dataset:
    """Keep ``size`` images of ``split`` (a fraction in (0, 1) or a count), stratified by class."""
    src = ds[split]
    n = len(src)
    if isinstance(size, float) and size == 1.0 or isinstance(size, int) and size == n:
        idx = np.arange(n)
    elif src.labels is None:
        k = int(round(size * n)) if isinstance(size, float) else int(size)
        if not 0 < k <= n:
            raise DataError(f"subset of split '{split}' ({n} images) needs 0 < size <= {n}, got {size}")
        idx = np.sort(split_rng(seed, "subset", split).choice(n, k, replace=False))
    else:
        if isinstance(size, int) and size > n:
            raise DataError(f"subset: split '{split}' has only {n} images, cannot keep {size}")
        _, idx = stratified_indices(src.labels, size, seed)
    splits = dict(ds.splits)
    splits[split] = src.take(idx)
    out = ds.with_splits(splits)
    out.name = f"{ds.name}+subset{len(idx)}"
    return _record(ds, out, "subset", size=size, seed=seed, split=split, kept=int(len(idx)))


# ------------------------------------------------------------------------------------- blur filter


def blur_scores(images: np.ndarray) -> np.ndarray:
    """Variance of the 2-D Laplacian of each image (low = blurry or empty)."""
    images = np.asarray(images, dtype=np.float32)
    lap = ndimage.correlate1d(images, [1.0, -2.0, 1.0], axis=1, mode="reflect")
    lap += ndimage.correlate1d(images, [1.0, -2.0, 1.0], axis=2, mode="reflect")
    return lap.reshape(len(images), -1).var(axis=1)


def blur_filter(
    ds: Dataset,
    threshold: float | None = None,
    split: str = "train",
    *,
    percentile: float = BLUR_PERCENTILE,
    return_info: bool = False,
) -> Dataset | tuple[Dataset, dict[str, Any]]:
    """Drop the blurriest images of ``split``: those whose variance of the Laplacian is below ``threshold``.

    The default threshold is the ``percentile``-th percentile (5th) of the split's scores, so about 5% of
    it is dropped. Only ``split`` is filtered (filtering a test split would bias the evaluation).
    ``meta["blur_filter"]`` (and, with ``return_info=True``, the second return value) holds the threshold
    and the kept/dropped counts.
    """
    src = ds[split]
    if len(src) == 0:
        raise DataError(f"blur filter: split '{split}' is empty")
    scores = blur_scores(src.images)
    if threshold is None:
        if not 0.0 <= percentile <= 100.0:
            raise ConfigError(f"blur filter percentile must be in [0, 100], got {percentile:g}")
        threshold = float(np.percentile(scores, percentile))
    keep = np.flatnonzero(scores >= threshold)
    if len(keep) == 0:
        raise DataError(
            f"blur filter: threshold {threshold:g} drops every image of split '{split}' "
            f"(scores range {scores.min():g} to {scores.max():g})"
        )
    info = {"split": split, "threshold": float(threshold), "kept": int(len(keep)), "dropped": int(len(src) - len(keep))}
    splits = dict(ds.splits)
    splits[split] = src.take(keep)
    out = ds.with_splits(splits, blur_filter=info)
    out.name = f"{ds.name}+sharp"
    out = _record(ds, out, "blur_filter", **info)
    return (out, info) if return_info else out


# ------------------------------------------------------------------------------------------- parser


def _num(text: str, what: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"variant '{spec}': {what} must be a number, got {text!r}") from None


def _size(text: str, spec: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        v = _num(text, "the size (a count like 3000 or a fraction like 0.1)", spec)
        if not 0.0 < v < 1.0:
            raise ConfigError(f"variant '{spec}': a fractional size must be in (0, 1), got {text}") from None
        return v


def _make(name: str, args: list[str], spec: str, seed: int) -> Callable[[Dataset], Dataset]:
    def nargs(lo: int, hi: int, usage: str) -> None:
        if not lo <= len(args) <= hi:
            raise ConfigError(f"variant '{spec}': expected {usage}")

    if name == "rotate":
        nargs(0, 2, "rotate, rotate:DEGREES (range -D..D) or rotate:LOW:HIGH")
        if len(args) == 1:
            d = abs(_num(args[0], "the angle", spec))
            lo, hi = -d, d
        else:
            lo, hi = (_num(a, "an angle", spec) for a in args) if args else (-180.0, 180.0)
        if lo > hi:
            raise ConfigError(f"variant '{spec}': low angle {lo:g} is above high angle {hi:g}")
        return lambda ds: rotate(ds, lo, hi, seed)
    if name in ("background-noise", "back-rand", "noise"):
        nargs(0, 2, "background-noise or background-noise:LOW:HIGH")
        lo, hi = (_num(a, "a noise bound", spec) for a in args) if len(args) == 2 else (0.0, 1.0)
        if len(args) == 1:
            hi = _num(args[0], "the noise maximum", spec)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"variant '{spec}': noise bounds must satisfy 0 <= low <= high <= 1")
        return lambda ds: background_noise(ds, seed, lo, hi)
    if name == "transpose":
        nargs(0, 0, "transpose (no arguments)")
        return transpose
    if name in ("threshold", "binarize", "binarise"):
        nargs(0, 1, "threshold or threshold:LEVEL (LEVEL in [0, 1])")
        level = _num(args[0], "the level", spec) if args else 0.5
        if not 0.0 <= level <= 1.0:
            raise ConfigError(f"variant '{spec}': threshold level must be in [0, 1], got {level:g}")
        return lambda ds: threshold(ds, level)
    if name == "subset":
        nargs(1, 2, "subset:SIZE or subset:SIZE:SPLIT (SIZE a count like 3000 or a fraction like 0.1)")
        size = _size(args[0], spec)
        if isinstance(size, int) and size <= 0:
            raise ConfigError(f"variant '{spec}': the size must be positive, got {size}")
        split = args[1] if len(args) == 2 else "train"
        return lambda ds: subset(ds, size, seed, split)
    if name in ("blur-filter", "deblur"):
        nargs(
            0,
            2,
            "blur-filter, blur-filter:THRESHOLD or blur-filter:THRESHOLD:SPLIT "
            "(THRESHOLD empty or 'auto' for the default percentile)",
        )
        thr = None
        if args and args[0] not in ("", "auto"):
            thr = _num(args[0], "the threshold", spec)
        split = args[1] if len(args) == 2 else "train"
        return lambda ds: blur_filter(ds, thr, split)
    raise ConfigError(f"unknown variant '{name}' in '{spec}'. Known: {', '.join(VARIANT_NAMES)}")


VARIANT_NAMES = ("rotate", "background-noise", "transpose", "threshold", "subset", "blur-filter")


def parse_variants(spec: str, seed: int = 0) -> list[Callable[[Dataset], Dataset]]:
    """Parse ``"name[:arg[:arg]],name..."`` into dataset transforms (see :data:`VARIANT_NAMES`).

    Each variant draws from its own seed (``seed`` + its position), so two ``rotate`` steps differ.
    """
    steps = []
    parts = [p.strip() for p in (spec or "").split(",")]
    if parts == [""]:
        return []
    for i, part in enumerate(parts):
        if not part:
            raise ConfigError(f"empty variant in '{spec}' (two commas in a row, or a trailing comma?)")
        name, *args = [a.strip() for a in part.split(":")]
        steps.append(_make(name.lower().replace("_", "-"), args, part, seed + i))
    return steps


def apply_variants(ds: Dataset, spec: str, seed: int = 0) -> Dataset:
    """Apply a CLI variant string such as ``"rotate:-180:180,subset:3000,blur-filter"`` in order."""
    for step in parse_variants(spec, seed):
        ds = step(ds)
    return ds
