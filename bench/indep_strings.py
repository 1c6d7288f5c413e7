"""Photos and scans of handwritten numbers made independently of bench/read.py's generator, for glyphlab read.

    python bench/indep_strings.py --data-dir ../shared/data --out FOLDER [--n 500] [--seed 7]
    glyphlab read MODEL FOLDER --labels FOLDER/labels.csv

``bench/read.py`` makes its benchmark strings with one renderer (MNIST's strokes scaled up as they are, its
papers, its gaps and touching pairs); a reader, or a model fine-tuned on its strings
(``bench/train_read_model.py``), could learn that renderer's habits. These strings share nothing with it but
MNIST's test digits: each number of 3-8 digits is written with one pen whose strokes are redrawn along each
digit's centre line (``bench/indep_photos.py``'s :func:`digit_alpha`: a thin ballpoint to a marker), with one
slant for the whole number and a little of each digit's own, gaps drawn from the writer's own spacing (some
digits touching), a drifting baseline; on plain, ruled, squared or dotted paper (``indep_photos``'s papers and
inks), photographed (a light ramp, vignetting, sometimes a shadow's edge, a colour cast, blur, sensor noise,
JPEG 50-92) or, one in four, scanned (even light, little blur). Writes ``FOLDER/NNNN.jpg`` and
``FOLDER/labels.csv`` (file,text); each picture depends only on (seed, index).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parent))
from indep_photos import INKS, PAPERS, band, digit_alpha, read_idx, smooth_noise  # noqa: E402


def _place(glyphs: list[np.ndarray], rng: np.random.Generator, height: float) -> tuple[np.ndarray, int]:
    """The glyphs' coverage laid out left to right on one canvas (the writer's gaps and baseline), and its
    margin; a touching pair overlaps by a few pixels, its strokes' coverage combined."""
    spacing = rng.uniform(0.1, 0.35)
    xs, x = [], 0.0
    for i, g in enumerate(glyphs):
        if i:
            x += height * (rng.uniform(-0.08, -0.01) if rng.random() < 0.1 else max(0.02, rng.normal(spacing, 0.08)))
        xs.append(x)
        x += g.shape[1]
    drift = rng.uniform(-0.1, 0.1)  # the baseline's rise over the number, in heights
    ys = [height * (drift * xi / max(x, 1) + rng.normal(0, 0.04)) + (height - g.shape[0]) for xi, g in zip(xs, glyphs)]
    margin = int(rng.uniform(0.4, 1.0) * height) + 4
    y0 = min(ys)
    H = int(max(y + g.shape[0] for y, g in zip(ys, glyphs)) - y0) + 2 * margin
    W = int(x) + 2 * margin
    cover = np.zeros((H, W), np.float32)
    for g, gx, gy in zip(glyphs, xs, ys):
        t, l = int(round(gy - y0)) + margin, int(round(gx)) + margin
        region = cover[t : t + g.shape[0], l : l + g.shape[1]]
        region[:] = 1 - (1 - region) * (1 - g[: region.shape[0], : region.shape[1]])
    return cover, margin


def _paper(rng: np.random.Generator, H: int, W: int, height: float) -> np.ndarray:
    """The sheet (H, W, 3): paper, its texture and its printed lines (plain, ruled, squared or dotted)."""
    kind = rng.choice(list(PAPERS), p=[0.35, 0.2, 0.15, 0.15, 0.15])
    rgb = np.array(PAPERS[kind]) * rng.uniform(0.97, 1.03, 3)
    tex = 1 + rng.uniform(0.005, 0.03) * smooth_noise(rng, H, W, int(rng.integers(3, 9)))
    tex += rng.uniform(0.005, 0.02) * ndi.gaussian_filter(rng.standard_normal((H, W)), 0.7)
    page = rgb * tex[..., None]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    tilt = np.radians(rng.uniform(-2, 2))
    ly, lx = yy * np.cos(tilt) - xx * np.sin(tilt), xx * np.cos(tilt) + yy * np.sin(tilt)
    ruling = rng.choice(["plain", "ruled", "squared", "dotted"], p=[0.35, 0.3, 0.2, 0.15])
    faint = rng.uniform(0.35, 0.8)
    cover, colour = np.zeros((H, W), np.float32), np.array((0.5, 0.66, 0.92))
    if ruling == "ruled":
        s = rng.uniform(0.7, 1.3) * height
        cover = faint * band(ly, s, rng.uniform(0, s), rng.uniform(0.8, 1.6))
    elif ruling == "squared":
        s, wl = rng.uniform(0.3, 0.6) * height, rng.uniform(0.7, 1.3)
        cover = faint * np.maximum(band(ly, s, rng.uniform(0, s), wl), band(lx, s, rng.uniform(0, s), wl))
    elif ruling == "dotted":
        s = rng.uniform(0.3, 0.6) * height
        dy, dx = np.abs((ly + s / 2) % s - s / 2), np.abs((lx + s / 2) % s - s / 2)
        cover = np.clip(rng.uniform(0.8, 1.5) - np.hypot(dx, dy) + 0.5, 0, 1)
    if ruling != "plain" and rng.random() < 0.3:
        colour = np.array((0.62, 0.62, 0.65))
    return page * (1 - cover[..., None] * (1 - colour))


def _photograph(img: np.ndarray, seen: np.ndarray, rng: np.random.Generator, scan: bool, pen_px: float) -> bytes:
    """The sheet under a camera's light (or a scanner's), blurred, noisy, as JPEG bytes."""
    H, W = seen.shape
    oy, ox = np.mgrid[0:H, 0:W].astype(np.float32)
    light = np.ones((H, W), np.float32)
    if not scan:
        ang = rng.uniform(0, 2 * np.pi)
        ramp = (ox * np.cos(ang) + oy * np.sin(ang)) / np.hypot(W, H)
        light *= 1 - rng.uniform(0, 0.3) * (ramp - ramp.min())
        light *= 1 - rng.uniform(0, 0.3) * (((ox - W / 2) / W) ** 2 + ((oy - H / 2) / H) ** 2) * 2
        if rng.random() < 0.3:  # a phone's shadow edge
            ang, cx, cy = rng.uniform(0, 2 * np.pi), rng.uniform(0, W), rng.uniform(0, H)
            side = ((ox - cx) * np.cos(ang) + (oy - cy) * np.sin(ang)) / rng.uniform(0.7, 8)
            light *= 1 - rng.uniform(0.2, 0.4) * np.clip(side + 0.5, 0, 1)
    warm = rng.uniform(-0.07, 0.08) if not scan else rng.uniform(-0.02, 0.02)
    cast = np.array([1 + warm, 1, 1 - warm]) * rng.uniform(0.98, 1.02, 3)
    img = img * light[..., None] * cast * rng.uniform(0.9, 1.08)
    sigma = rng.uniform(0.2, 0.5) if scan else rng.uniform(0.3, min(1.3, 0.35 * pen_px + 0.3))
    img = ndi.gaussian_filter(img, (sigma, sigma, 0))
    noise = rng.uniform(0.003, 0.01) if scan else rng.uniform(0.005, 0.025)
    img = img + noise * rng.standard_normal(img.shape)
    buf = io.BytesIO()
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8), "RGB").save(
        buf, "JPEG", quality=int(rng.integers(50, 93))
    )
    return buf.getvalue()


def string_picture(digits: list[np.ndarray], rng: np.random.Generator) -> bytes:
    """JPEG bytes of one number written with the MNIST digits ``digits`` (28x28 uint8), left to right."""
    height = rng.uniform(28, 64)
    pen = rng.choice(["ballpoint", "felt", "marker", "pencil"], p=[0.4, 0.25, 0.15, 0.2])
    lo, hi = {"ballpoint": (0.04, 0.07), "felt": (0.07, 0.11), "marker": (0.1, 0.15), "pencil": (0.04, 0.08)}[pen]
    pen_px = max(1.3, rng.uniform(lo, hi) * height)
    slant = rng.uniform(-10, 10)
    glyphs = [digit_alpha(d, height * rng.uniform(0.88, 1.12), slant + rng.normal(0, 3), pen_px) for d in digits]
    cover, _ = _place(glyphs, rng, height)
    H, W = cover.shape
    ink = np.array(INKS["pencil" if pen == "pencil" else rng.choice(["black", "blue", "darkblue", "red", "green"])])
    if pen == "pencil":
        grain = ndi.gaussian_filter(rng.standard_normal(cover.shape), 0.6)
        cover = cover * rng.uniform(0.78, 0.9) * np.clip(0.85 + 0.5 * grain, 0.45, 1)
    else:
        cover = cover * rng.uniform(0.88, 1.0) * (1 - 0.12 * np.abs(smooth_noise(rng, H, W, 5)))
    page = _paper(rng, H, W, height)
    page = page * (1 - cover[..., None] * (1 - ink))
    scan = rng.random() < 0.25
    return _photograph(page, cover, rng, scan, pen_px)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    mnist = args.data_dir / "mnist"
    images = read_idx(next(mnist.rglob("t10k-images*")))
    labels = read_idx(next(mnist.rglob("t10k-labels*")))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(args.n):
        rng = np.random.default_rng([args.seed, i])
        idx = rng.integers(0, len(images), int(rng.integers(3, 9)))
        name = f"{i:04d}.jpg"
        (args.out / name).write_bytes(string_picture([images[k] for k in idx], rng))
        rows.append(f"{name},{''.join(str(int(labels[k])) for k in idx)}\n")
    (args.out / "labels.csv").write_text("file,text\n" + "".join(rows))
    print(f"{args.n} pictures of numbers of MNIST test digits in {args.out} (seed {args.seed})")


if __name__ == "__main__":
    main()
