"""Seed 001's protocol, ``glyphs36``: generated binary digits and letters in 36 strongly imbalanced classes,
rendered from TrueType fonts (:mod:`.fonts`), distorted and binarised, split 22,634 / 2,500 / 5,000."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.registry import register_dataset
from glyphlab.data.splits import stratified_indices
from glyphlab.data.studies.cache import ALNUM_CLASSES, check_limit, limit_indices
from glyphlab.data.studies.fonts import glyph_templates
from glyphlab.data.variants import bilinear_sample
from glyphlab.errors import DataError

GLYPHS_SEED = 1
GLYPHS_TOTAL = 30_134
GLYPHS_SPLIT = (22_634, 2_500, 5_000)  # train / val / test, as in seed 001


def glyphs36_class_counts(
    total: int = GLYPHS_TOTAL,
    singleton: int = 30,
    low: int = 102,
    high: int = 3291,
    n_classes: int = 36,
    seed: int = GLYPHS_SEED,
) -> np.ndarray:
    """Per-class image counts shaped like seed 001's (the report shows them only as a bar chart): class
    ``singleton`` (30, as in the report) has one image, the other 35 run from ``low`` to ``high`` along a
    power curve ``low + (high - low) * t**p`` (t evenly spaced in [0, 1]) whose exponent is solved so the
    counts sum to ``total``; the counts are then dealt to the classes in a fixed seeded order."""
    n = n_classes - 1
    target = total - 1
    t = np.linspace(0.0, 1.0, n)
    lo_p, hi_p = 0.01, 50.0
    for _ in range(200):  # bisection on the exponent: the sum falls as p grows
        p = (lo_p + hi_p) / 2
        s = np.sum(low + (high - low) * t**p)
        lo_p, hi_p = (p, hi_p) if s > target else (lo_p, p)
    counts = np.floor(low + (high - low) * t**p).astype(np.int64)
    counts[-1], counts[0] = high, low
    short = target - int(counts.sum())
    inner = np.arange(1, n - 1)
    counts[inner[np.argsort(-(t[inner] ** p - np.floor(t[inner] ** p)))][: abs(short)]] += np.sign(short)
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n_classes, dtype=np.int64)
    others = [c for c in range(n_classes) if c != singleton]
    out[others] = counts[order]
    out[singleton] = 1
    assert out.sum() == total
    return out


def _upsample_matrix(k: int, size: int) -> np.ndarray:
    """(size, k) linear interpolation from a k-point coarse grid to ``size`` points."""
    pos = np.linspace(0, k - 1, size)
    i0 = np.clip(np.floor(pos).astype(int), 0, k - 2)
    f = pos - i0
    u = np.zeros((size, k), dtype=np.float32)
    u[np.arange(size), i0] = 1 - f
    u[np.arange(size), i0 + 1] = f
    return u


def render_glyphs(
    labels: np.ndarray,
    index: np.ndarray,
    size: int = 56,
    seed: int = GLYPHS_SEED,
    fonts: str = "all",
    lowercase: float = 0.3,
    total: int = GLYPHS_TOTAL,
) -> np.ndarray:
    """Binary images for the glyphs ``index`` (positions in the full set of ``total``) with classes ``labels``.

    Every random draw of glyph ``i`` depends only on (seed, i), so a limited subset holds exactly the images
    the full set has at those positions. Per glyph: a font; lowercase for a letter with probability
    ``lowercase`` (the classes are case-insensitive, as EMNIST merged); a random affine map (rotation +-12
    degrees, shear +-0.25, scale 0.8-1.15 per axis, shift +-8% of the side) composed with an elastic field
    (a coarse 4x4 random displacement grid, up to ~2.5% of the side, interpolated); a stroke-width change
    (grey erosion or dilation, 3x3, for about 45% of glyphs); Gaussian pixel noise and sparse speckles; then
    binarisation at 0.5."""
    templates, _ = glyph_templates(size, fonts)
    n_fonts = len(templates)
    labels = np.asarray(labels, dtype=np.int64)
    index = np.asarray(index, dtype=np.int64)
    # all per-glyph parameters for the whole set, drawn once (cheap), then picked by index
    rng = np.random.default_rng([seed, 36_001])
    font = rng.integers(0, n_fonts, total)[index]
    lower = (rng.random(total) < lowercase)[index]
    rot = np.deg2rad(rng.uniform(-12, 12, total))[index]
    shear = rng.uniform(-0.25, 0.25, total)[index]
    scale = rng.uniform(0.8, 1.15, (total, 2))[index]
    shift = rng.uniform(-0.08, 0.08, (total, 2))[index] * size
    coarse = rng.normal(0.0, 0.025 * size, (total, 2, 4, 4)).astype(np.float32)[index]
    stroke = rng.choice([-1, 0, 1], total, p=[0.2, 0.55, 0.25])[index]
    sigma = rng.uniform(0.0, 0.25, total)[index]
    speckle = rng.uniform(0.0, 0.002, total)[index]

    char = labels.copy()
    letter = labels >= 10
    char[letter & lower] += 26  # a-z follow A-Z in the templates
    c = (size - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(size) - c, np.arange(size) - c, indexing="ij")
    yy, xx = yy.ravel().astype(np.float32), xx.ravel().astype(np.float32)
    up = _upsample_matrix(4, size)
    out = np.empty((len(index), size, size), dtype=np.float32)
    chunk = 2048
    for s in range(0, len(index), chunk):
        sl = slice(s, s + chunk)
        m = len(index[sl])
        # forward map A = R(rot) @ Shear @ diag(scale); sample the template at A^-1 (p - shift) (+ elastic)
        m_cos, m_sin = np.cos(rot[sl]), np.sin(rot[sl])
        r = np.stack([np.stack([m_cos, -m_sin], -1), np.stack([m_sin, m_cos], -1)], -2)  # (m, 2, 2) on (y, x)
        h = np.zeros((m, 2, 2))
        h[:, 0, 0] = h[:, 1, 1] = 1.0
        h[:, 1, 0] = shear[sl]  # x moves by shear * y
        a = r @ h @ (np.eye(2)[None] * scale[sl][:, :, None])
        inv = np.linalg.inv(a).astype(np.float32)
        py = yy[None] - shift[sl, 0:1].astype(np.float32)
        px = xx[None] - shift[sl, 1:2].astype(np.float32)
        src_y = inv[:, 0, 0:1] * py + inv[:, 0, 1:2] * px + c
        src_x = inv[:, 1, 0:1] * py + inv[:, 1, 1:2] * px + c
        field = np.einsum("hk,mdkl,wl->mdhw", up, coarse[sl], up).reshape(m, 2, -1)
        src_y += field[:, 0]
        src_x += field[:, 1]
        imgs = bilinear_sample(templates[font[sl], char[sl]], src_y, src_x)
        for op, fn in ((1, ndimage.grey_dilation), (-1, ndimage.grey_erosion)):
            pick = np.flatnonzero(stroke[sl] == op)
            if len(pick):
                changed = fn(imgs[pick], size=(1, 3, 3))
                if op == -1:  # never erode a glyph away: keep the original when too little ink is left
                    keep = (changed > 0.5).reshape(len(pick), -1).sum(1) >= 0.25 * (imgs[pick] > 0.5).reshape(
                        len(pick), -1
                    ).sum(1)
                    changed[~keep] = imgs[pick][~keep]
                imgs[pick] = changed
        for j, i in enumerate(index[sl]):
            g = np.random.default_rng([seed, 36_002, int(i)])
            noise = g.normal(0.0, sigma[s + j], (size, size)).astype(np.float32)
            flips = g.random((size, size)) < speckle[s + j]
            imgs[j] = np.where(flips, 1.0 - imgs[j], imgs[j] + noise)
        out[sl] = (imgs > 0.5).astype(np.float32)
    return out


def glyphs36_splits(
    labels: np.ndarray, sizes: tuple[int, int, int] = GLYPHS_SPLIT, seed: int = GLYPHS_SEED
) -> dict[str, np.ndarray]:
    """Seed 001's split (train / val / test), stratified; classes too small to stratify (the single-image
    class) go to train, so the held-out splits are exactly stratified and their sizes exact."""
    n_train, n_val, n_test = sizes
    if n_train + n_val + n_test != len(labels):
        raise DataError(f"glyphs36: split sizes {sizes} do not add up to {len(labels)} images")
    counts = np.bincount(labels)
    small = np.flatnonzero(counts[labels] < 3)
    big = np.flatnonzero(counts[labels] >= 3)
    rest, test = stratified_indices(labels[big], n_test, seed)
    rest_train, val = stratified_indices(labels[big][rest], n_val, seed)
    return {
        "train": np.sort(np.concatenate([small, big[rest][rest_train]])),
        "val": np.sort(big[rest][val]),
        "test": np.sort(big[test]),
    }


@register_dataset(
    "glyphs36",
    description="seed 001: generated binary digits and letters (0-9, A-Z) from TrueType fonts, 36 imbalanced classes",
    source="rendered with matplotlib's and the system's TrueType fonts, distorted, binarised (seeded)",
    sizes="30,134 images 56x56, 36 classes (one with a single image); 22,634 train / 2,500 val / 5,000 test",
)
def load_glyphs36(
    data_dir: Path | None = None,
    limit: int | None = None,
    size: int = 56,
    fonts: str = "all",
    lowercase: float = 0.3,
    seed: int = GLYPHS_SEED,
) -> Dataset:
    """Seed 001's dataset, generated. ``limit`` keeps that many images per split before rendering;
    ``size`` is the image side; ``fonts`` is ``all`` (matplotlib's + the system's; the default) or ``bundled``
    (only matplotlib's, the same on every machine); ``lowercase`` is the share of letters drawn lowercase.
    Nothing is written to ``data_dir``."""
    limit = check_limit(limit)
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 256:
        raise DataError(f"glyphs36: size must be a whole number of pixels in [16, 256], got {size!r}")
    if not 0.0 <= float(lowercase) <= 1.0:
        raise DataError(f"glyphs36: lowercase must be a share in [0, 1], got {lowercase!r}")
    counts = glyphs36_class_counts(seed=GLYPHS_SEED)
    labels = np.random.default_rng([seed, 36_000]).permutation(np.repeat(np.arange(36), counts))
    parts = glyphs36_splits(labels, seed=seed)
    splits = {}
    for name, idx in parts.items():
        idx = idx[limit_indices(labels[idx], len(idx), limit, seed, min_per_class=2)]
        splits[name] = Split(
            render_glyphs(labels[idx], idx, size=size, seed=seed, fonts=fonts, lowercase=float(lowercase)), labels[idx]
        )
    _, font_names = glyph_templates(size, fonts)
    return Dataset(
        name="glyphs36",
        classes=list(ALNUM_CLASSES),
        splits=splits,
        source="generated (glyphlab.data.studies.render_glyphs)",
        meta={
            "generator": {
                "seed": seed,
                "size": size,
                "fonts": list(font_names),
                "lowercase": float(lowercase),
                "limit": limit,
                "class_counts": counts.tolist(),
            }
        },
    )
