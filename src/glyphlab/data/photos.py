"""Seeded phone photos and scans of handwritten glyphs, made from clean glyph images (e.g. MNIST digits).

People bring pictures, not arrays: a digit written on a notepad and photographed, a scanned form. This
module draws such pictures from a clean glyph (ink = 1 on 0), so the image path can be built and measured
on what people bring, and a model can be trained on photo-like pictures. Each picture draws its own
conditions from a seeded generator:

- paper: white, cream, grey or a yellow note, with a fibre texture; plain, ruled (blue or grey lines, at
  times a red margin), squared or dotted, the rulings slightly tilted; at times the box of a form;
- light: a gradient, a vignette, the soft or hard shadow of a phone or hand across part of the page, a
  finger's shadow; the exposure of the whole;
- ink: black, blue, dark blue, red or pencil (light, grainy), pressed weakly or strongly, strokes thinned
  or thickened; the glyph 35-70 % of the frame, off-centre, tilted up to 12 degrees;
- the back of the page: at times a faint mirrored glyph showing through;
- the camera: a slight perspective, blur, sensor noise, JPEG at quality 55-90.

Every glyph stays clear to a person: nothing covers it and the ink is always darker than the paper around it.
:func:`photo` draws one picture; :func:`write_photo_folder` writes an image folder (one sub-folder per
class) that ``glyphlab run --dataset FOLDER`` reads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

PAPERS = {
    "white": (0.95, 0.95, 0.93),
    "cream": (0.96, 0.92, 0.80),
    "grey": (0.80, 0.80, 0.79),
    "note": (0.98, 0.93, 0.58),
}
INKS = {
    "black": (0.08, 0.08, 0.10),
    "blue": (0.10, 0.22, 0.62),
    "dark-blue": (0.08, 0.10, 0.35),
    "red": (0.72, 0.10, 0.12),
    "pencil": (0.30, 0.30, 0.33),
}
RULINGS = ("plain", "ruled", "squared", "dotted", "form-box")


def photo(glyph: np.ndarray, rng: np.random.Generator, **conditions) -> Image.Image:
    """One photo-like RGB JPEG of ``glyph`` ((h, w) floats, ink = 1 on 0), decoded back to a PIL image.

    ``conditions`` as :func:`photo_bytes` takes them.
    """
    out = Image.open(io.BytesIO(photo_bytes(glyph, rng, **conditions)))
    out.load()
    return out


def photo_bytes(
    glyph: np.ndarray,
    rng: np.random.Generator,
    *,
    bleed: np.ndarray | None = None,
    ruling: str | None = None,
    ink: str | None = None,
    quality: int | None = None,
) -> bytes:
    """The JPEG bytes a phone would send of ``glyph``: (h, w) floats, ink = 1 on 0.

    ``bleed`` is another glyph that may show through from the back of the page; ``ruling`` and ``ink``
    fix those conditions (else drawn); ``quality`` the JPEG quality (else 55-90). The steps draw from ``rng``
    in a fixed order (page, glyph, ink, form box, bleed, light, camera), so a seed gives the same photo.
    """
    H, W = int(rng.integers(96, 161)), int(rng.integers(96, 161))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    page, paper, ruling = _paper_page(rng, H, W, xx, yy, ruling)
    big, gh, gw = _placed_glyph(glyph, rng, H, W)
    bh, bw = big.shape
    top = int(rng.integers(1, H - bh)) if H - bh > 1 else 0
    left = int(rng.integers(1, W - bw)) if W - bw > 1 else 0
    alpha = np.zeros((H, W), np.float32)
    alpha[top : top + bh, left : left + bw] = big
    ink = ink or str(rng.choice(list(INKS), p=[0.35, 0.3, 0.15, 0.1, 0.1]))
    strength = rng.uniform(0.75, 1.0) if ink != "pencil" else rng.uniform(0.6, 0.85)
    alpha = alpha.clip(0, 1) ** rng.uniform(0.7, 1.3) * strength
    if ink == "pencil":
        alpha *= (1 - 0.35 * rng.random((H, W))).astype(np.float32)
    if ruling == "form-box":  # the printed box of a form around the glyph
        page = _form_box(page, rng, (top, left, top + bh, left + bw))
    if bleed is not None and rng.random() < 0.25:  # a faint glyph on the back of the page, mirrored
        page = _bleed_through(page, bleed, rng, gh, gw)
    colour = np.array(INKS[ink])
    img = page * (1 - alpha[..., None]) + colour[None, None, :] * alpha[..., None]
    img = img * (_light(rng, H, W, xx, yy) * rng.uniform(0.85, 1.05))[..., None]
    return _camera(img, rng, paper, quality)


def _paper_page(
    rng: np.random.Generator, H: int, W: int, xx: np.ndarray, yy: np.ndarray, ruling: str | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The (H, W, 3) page: paper with its fibre, and its rulings (plain, ruled, squared, dotted, form box)."""
    paper = np.array(PAPERS[rng.choice(list(PAPERS), p=[0.35, 0.3, 0.2, 0.15])]) * rng.uniform(0.9, 1.02)
    fibre = ndimage.gaussian_filter(rng.normal(0, 1, (H, W)), rng.uniform(1.0, 4.0)).astype(np.float32)
    page = paper[None, None, :] * (1 + 0.025 * fibre / (fibre.std() + 1e-6))[..., None]

    ruling = ruling or str(rng.choice(RULINGS, p=[0.25, 0.3, 0.25, 0.1, 0.1]))
    lines = np.zeros((H, W), np.float32)
    tilt = np.deg2rad(rng.uniform(-3, 3))
    v = -xx * np.sin(tilt) + yy * np.cos(tilt)  # the rulings' own axes
    u = xx * np.cos(tilt) + yy * np.sin(tilt)
    step = rng.uniform(11, 26)
    width = rng.uniform(0.6, 1.6)
    if ruling in ("ruled", "squared"):
        lines = np.maximum(lines, _lines(v, step, rng.uniform(0, step), width))
        if ruling == "squared":
            lines = np.maximum(lines, _lines(u, step, rng.uniform(0, step), width))
    elif ruling == "dotted":
        lines = _lines(v, step, rng.uniform(0, step), 1.3) * _lines(u, step, rng.uniform(0, step), 1.3)
    line_colour = np.array((0.45, 0.62, 0.88) if rng.random() < 0.6 else (0.55, 0.55, 0.58))
    mix = (rng.uniform(0.35, 0.85) * lines)[..., None]
    page = page * (1 - mix) + line_colour * page.mean() * mix
    if ruling == "ruled" and rng.random() < 0.35:  # a red margin line
        margin = _lines(u, 10_000, rng.uniform(0.05, 0.2) * W, 1.2)
        page += margin[..., None] * (np.array((0.85, 0.3, 0.3)) - page) * 0.7
    return page, paper, ruling


def _placed_glyph(glyph: np.ndarray, rng: np.random.Generator, H: int, W: int) -> tuple[np.ndarray, int, int]:
    """The glyph cropped to its ink, scaled to 35-70 % of the frame height, thickened or thinned and tilted
    (up to 12 degrees), fitted inside the frame; with the scaled size (gh, gw) before the tilt."""
    g = np.asarray(glyph, np.float32)
    rows, cols = np.flatnonzero(g.max(1) > 0.1), np.flatnonzero(g.max(0) > 0.1)
    g = np.pad(g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 2)
    target = rng.uniform(0.35, 0.70) * H
    scale = target / g.shape[0]
    gh, gw = max(4, round(g.shape[0] * scale)), max(3, round(g.shape[1] * scale))
    big = np.asarray(Image.fromarray(g, "F").resize((gw, gh), Image.Resampling.BICUBIC)).clip(0, 1)
    thick = rng.choice([-1, 0, 0, 1, 2]) * max(1, round(scale / 4))
    if thick > 0:
        big = ndimage.grey_dilation(big, size=(thick + 1, thick + 1))
    elif thick < 0:
        big = ndimage.grey_erosion(big, size=(2, 2))
    big = Image.fromarray(big.astype(np.float32), "F").rotate(
        rng.uniform(-12, 12), Image.Resampling.BILINEAR, expand=True
    )
    big = np.asarray(big).clip(0, 1)
    bh, bw = big.shape
    if bh >= H - 2 or bw >= W - 2:
        f = min((H - 4) / bh, (W - 4) / bw)
        big = np.asarray(Image.fromarray(big, "F").resize((max(2, int(bw * f)), max(2, int(bh * f))))).clip(0, 1)
    return big, gh, gw


def _form_box(page: np.ndarray, rng: np.random.Generator, glyph_box: tuple[int, int, int, int]) -> np.ndarray:
    """The page with a form's printed box drawn a few pixels around ``glyph_box`` (top, left, bottom, right)."""
    H, W = page.shape[:2]
    top, left, bottom, right = glyph_box
    box = np.zeros((H, W), np.float32)
    pad = rng.integers(3, 10)
    t0, l0 = max(0, top - pad), max(0, left - pad)
    t1, l1 = min(H - 1, bottom + pad), min(W - 1, right + pad)
    box[t0 : t1 + 1, [l0, l1]] = 1
    box[[t0, t1], l0 : l1 + 1] = 1
    return page * (1 - 0.7 * box[..., None])


def _bleed_through(page: np.ndarray, bleed: np.ndarray, rng: np.random.Generator, gh: int, gw: int) -> np.ndarray:
    """The page with ``bleed`` showing faintly through from its back, mirrored and blurred."""
    H, W = page.shape[:2]
    b = np.asarray(Image.fromarray(np.asarray(bleed, np.float32)[:, ::-1].copy(), "F").resize((gw, gh)))
    b = ndimage.gaussian_filter(b.clip(0, 1), 1.5) * rng.uniform(0.08, 0.18)
    bt, bl = int(rng.integers(0, max(1, H - gh))), int(rng.integers(0, max(1, W - gw)))
    back = np.zeros((H, W), np.float32)
    back[bt : bt + gh, bl : bl + gw] = b[: H - bt, : W - bl]
    return page * (1 - back[..., None])


def _light(rng: np.random.Generator, H: int, W: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The light over the page, (H, W): a gradient, a vignette, maybe a phone's or a finger's shadow."""
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * (xx / W - 0.5) + np.sin(ang) * (yy / H - 0.5)
    light = 1 + rng.uniform(0.0, 0.35) * ramp
    light *= 1 - rng.uniform(0, 0.25) * (((xx / W - 0.5) ** 2 + (yy / H - 0.5) ** 2) * 2)
    if rng.random() < 0.6:  # the shadow of a phone or a hand: a half-plane with a soft edge
        a2 = rng.uniform(0, 2 * np.pi)
        d = np.cos(a2) * (xx - rng.uniform(0.2, 0.8) * W) + np.sin(a2) * (yy - rng.uniform(0.2, 0.8) * H)
        soft = rng.uniform(1.0, 0.12 * W)
        light *= 1 - rng.uniform(0.25, 0.55) * (1 / (1 + np.exp(-d / soft)))
    if rng.random() < 0.15:  # a finger's shadow from one edge
        cx = rng.uniform(0, W)
        ell = ((xx - cx) / (0.12 * W)) ** 2 + ((yy - H) / (0.45 * H)) ** 2
        light *= 1 - 0.35 * np.exp(-np.maximum(ell - 1, 0) * 3) * (ell < 4)
    return light


def _camera(img: np.ndarray, rng: np.random.Generator, paper: np.ndarray, quality: int | None) -> bytes:
    """What the phone makes of the lit page: a slight perspective, blur, sensor noise, a JPEG."""
    H, W = img.shape[:2]
    im = Image.fromarray((img.clip(0, 1) * 255).round().astype(np.uint8), "RGB")
    if rng.random() < 0.5:  # a slight perspective: the phone not quite parallel to the page
        d = rng.uniform(-0.05, 0.05, 8) * np.array([W, H] * 4)
        src = np.array([0, 0, 0, H, W, H, W, 0], float) + d  # UL, LL, LR, UR
        im = im.transform(
            (W, H),
            Image.Transform.QUAD,
            tuple(src),
            Image.Resampling.BILINEAR,
            fillcolor=tuple(int(255 * c * 0.7) for c in paper),
        )
    arr = np.asarray(im, np.float32) / 255
    arr = ndimage.gaussian_filter(arr, (rng.uniform(0.2, 1.1),) * 2 + (0,))
    arr = arr + rng.normal(0, rng.uniform(0.005, 0.025), arr.shape)
    im = Image.fromarray((arr.clip(0, 1) * 255).round().astype(np.uint8), "RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(quality or rng.integers(55, 91)))
    return buf.getvalue()


def _lines(coord: np.ndarray, step: float, phase: float, width: float) -> np.ndarray:
    """Anti-aliased lines every ``step`` px along ``coord``, ``width`` px wide."""
    d = np.abs(((coord - phase + step / 2) % step) - step / 2)
    return np.clip(width / 2 + 0.5 - d, 0, 1).astype(np.float32)


def write_photo_folder(
    images: np.ndarray, labels: np.ndarray, out: str | Path, seed: int, classes: Sequence[str] | None = None
) -> Path:
    """Write one JPEG photo per image into ``out/CLASS/NNNNN.jpg`` (an image folder glyphlab reads)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    names = list(classes) if classes is not None else [str(c) for c in sorted(set(labels.tolist()))]
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    n = len(images)
    for i in range(n):
        bleed = images[(i + 1 + int(rng.integers(0, n - 1))) % n] if n > 1 else None
        label = labels[i]
        name = names[int(label)] if classes is not None else str(label)
        (out / name / f"{i:05d}.jpg").write_bytes(photo_bytes(images[i], rng, bleed=bleed))
    return out
