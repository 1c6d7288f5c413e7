"""Digits drawn with PIL strokes, pictures of strings of them, and a small model trained on them (no MNIST)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: each digit as strokes on a 40 x 60 grid (x, y)
STROKES = {
    "0": "ellipse",
    "1": [[(16, 10), (24, 4), (24, 56)]],
    "2": [[(6, 16), (14, 5), (28, 5), (34, 16), (30, 28), (6, 55), (36, 55)]],
    "3": [[(6, 8), (30, 5), (34, 16), (18, 28), (34, 38), (32, 52), (6, 55)]],
    "4": [[(28, 4), (4, 40), (36, 40)], [(28, 20), (28, 57)]],
    "5": [[(12, 4), (34, 4)], [(10, 15), (8, 28), (26, 24), (34, 36), (30, 52), (6, 55)]],  # the bar lifted
    "6": [[(30, 5), (10, 26), (6, 44), (14, 56), (28, 54), (32, 42), (22, 34), (8, 42)]],
    "7": [[(4, 6), (36, 6), (14, 57)]],
    "8": [[(30, 10), (20, 4), (8, 12), (30, 40), (22, 56), (8, 48), (10, 38), (32, 16), (30, 10)]],
    "9": [[(32, 18), (22, 6), (8, 14), (10, 28), (32, 22), (30, 57)]],
}


def glyph(ch: str, height: int = 60, width: int = 6, jitter: np.random.Generator | None = None) -> np.ndarray:
    """One digit, ink = 1 on 0, ``height`` px tall (its grid is 40 x 60); ``jitter`` moves its points a little."""
    s = height / 60
    im = Image.new("L", (round(44 * s), round(64 * s)), 0)
    d = ImageDraw.Draw(im)

    def pt(x: float, y: float) -> tuple[float, float]:
        if jitter is not None:
            x, y = x + jitter.normal(0, 1.2), y + jitter.normal(0, 1.2)
        return ((x + 2) * s, (y + 2) * s)

    if STROKES[ch] == "ellipse":
        a, b = pt(6, 4), pt(34, 56)
        d.ellipse([a, b], outline=255, width=width)
    else:
        for line in STROKES[ch]:
            d.line([pt(x, y) for x, y in line], fill=255, width=width, joint="curve")
    return np.asarray(im, np.float32) / 255


def line_ink(text: str, gaps: list[float] | float = 12, height: int = 60, rise: list[int] | None = None) -> np.ndarray:
    """The glyphs of ``text`` side by side (ink = 1): ``gaps`` px between neighbours (negative: overlapping)."""
    gs = [glyph(c, height) for c in text]
    gaps = [gaps] * (len(gs) - 1) if not isinstance(gaps, list) else gaps
    xs = [0]
    for g, gap in zip(gs[:-1], gaps):
        xs.append(int(xs[-1] + g.shape[1] + gap))
    rise = rise or [0] * len(gs)
    H = max(g.shape[0] for g in gs) + max(rise) + 2
    out = np.zeros((H, xs[-1] + gs[-1].shape[1]), np.float32)
    for g, x, r in zip(gs, xs, rise):
        out[r : r + g.shape[0], x : x + g.shape[1]] = np.maximum(out[r : r + g.shape[0], x : x + g.shape[1]], g)
    return out


def page(inks: list[np.ndarray], margin: int = 30, gap: int = 40) -> Image.Image:
    """Lines of ink stacked (one per entry), dark grey ink on cream paper with a light gradient, as RGB."""
    W = max(i.shape[1] for i in inks) + 2 * margin
    H = sum(i.shape[0] for i in inks) + gap * (len(inks) - 1) + 2 * margin
    alpha = np.zeros((H, W), np.float32)
    y = margin
    for ink in inks:
        alpha[y : y + ink.shape[0], margin : margin + ink.shape[1]] = ink
        y += ink.shape[0] + gap
    paper = np.array((0.96, 0.92, 0.80), np.float32) * (1 - 0.12 * np.linspace(0, 1, W))[None, :, None]
    img = paper * (1 - alpha[..., None]) + np.array((0.1, 0.1, 0.15), np.float32) * alpha[..., None]
    return Image.fromarray((img.clip(0, 1) * 255).round().astype(np.uint8), "RGB")


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def train_drawn_model(directory: Path, per_class: int = 30, seed: int = 0) -> Path:
    """A logistic regression fitted on jittered drawn digits prepared as :func:`glyphlab.reading.read` prepares a
    character (the MNIST-style clean config), saved with that config recorded."""
    from glyphlab.data.images import ImageConfig, Preprocessing
    from glyphlab.models.persistence import save_model
    from glyphlab.models.registry import create_model
    from glyphlab.reading.segment import _model_input

    rng = np.random.default_rng(seed)
    config = ImageConfig.mnist_style(28)
    xs, ys = [], []
    for label in range(10):
        for _ in range(per_class):
            g = glyph(str(label), int(rng.integers(40, 80)), int(rng.integers(4, 8)), jitter=rng)
            xs.append(_model_input(g, config))
            ys.append(label)
    model = create_model("logreg")
    model.fit(np.stack(xs), np.array(ys), classes=[str(i) for i in range(10)])
    model.preprocessing_ = Preprocessing.arrays((28, 28))
    return save_model(model, directory)
