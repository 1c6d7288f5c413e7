"""A learned "is this one whole character?" score for the reader's candidate characters.

A glyph model is trained on whole glyphs: it is as sure of half a 0 or of a 1 squeezed against a 7 as of a
digit, so its probabilities alone cannot tell a right cut from a wrong one, and hand-set shape costs (width,
cuts, joins) lose many touching pairs by a small margin. The verifier is a small network trained on the
candidates of the reader's own lattice (with more cuts than it makes, so it has seen fragments of every size)
for synthetic strings of MNIST *training* digits (the photos of
``bench/read.py``'s generator, with twice its share of touching pairs), each labelled by its ink against each
glyph's own ink: whole (0.85 of its ink one glyph's, and 0.85 of that glyph's ink in it) or not (a fragment, two
glyphs merged, a piece of one with a piece of the next). By ink, not by box: a 1 leaning into its neighbour
has a box overlapping the neighbour's, yet cut off, it is one whole character. It sees what a character looks
like, not which character it is, so it works beside any saved glyph model: its inputs are prepared with its
own MNIST-style config (:data:`VERIFIER_CONFIG`), whatever the model's.

Its weights ship in the package (``verifier.safetensors``, 222 KiB, no pickle), made by
``python bench/train_read_verifier.py --data-dir ../shared/data``, and it runs in NumPy, so reading needs no
PyTorch for a scikit-learn model. Trained on digits, it knows digit shapes best; ``read(..., verify=False)``
reads without it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from glyphlab.data.images import ImageConfig

#: the verifier's own input: MNIST-style, 28x28, centred by whole pixels, as a glyph model trained on MNIST gets it
#: (so with such a model the reader prepares each candidate once for both)
VERIFIER_CONFIG = ImageConfig.mnist_style((28, 28), whole_pixels=True)
#: the shipped weights, beside this module
WEIGHTS = Path(__file__).with_name("verifier.safetensors")
#: the scalar features of a candidate, in this order: width and height as shares of the line's height, the
#: strokes cut at its left and right ends, whether it joins two components, how many pieces it is made of
N_FEATURES = 6


def features(feats: list[tuple]) -> np.ndarray:
    """The verifier's scalar features of the lattice's candidates ((i, j, left cut, right cut, join, width,
    height) each), as float32 (N, :data:`N_FEATURES`)."""
    rows = [(w, h, min(lc, 3), min(rc, 3), float(join), min(j - i, 5)) for i, j, lc, rc, join, w, h in feats]
    return np.asarray(rows, np.float32).reshape(-1, N_FEATURES)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """A valid 2-D convolution (cross-correlation, as PyTorch's) of (N, C, H, W) by (O, C, k, k), then ReLU."""
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, oh, ow = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return np.maximum(out, 0).reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)


class Verifier:
    """The trained network, in NumPy: :meth:`log_whole` gives each candidate's log-probability of being one
    whole character. The architecture is ``bench/train_read_verifier.py``'s (two strided convolutions, then two
    dense layers that also see the scalar features)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = {k: np.asarray(v, np.float32) for k, v in weights.items()}

    @classmethod
    def load(cls, path: str | Path = WEIGHTS) -> Verifier:
        from safetensors.numpy import load_file

        return cls(load_file(str(path)))

    def logits(self, images: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """(N, 28, 28) inputs (ink = 1) and (N, F) features -> (N,) logits of "one whole character"."""
        w = self.w
        x = np.asarray(images, np.float32).reshape(len(images), 1, 28, 28)
        x = _conv(x, w["c1.weight"], w["c1.bias"], 2)
        x = _conv(x, w["c2.weight"], w["c2.bias"], 2)
        z = np.concatenate([x.reshape(len(x), -1), feats.astype(np.float32)], axis=1)
        z = np.maximum(z @ w["f1.weight"].T + w["f1.bias"], 0)
        return (z @ w["f2.weight"].T + w["f2.bias"])[:, 0]

    def log_whole(self, images: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """log p(one whole character) of each candidate, float64. On one BLAS thread: a line's candidates are a
        few dozen small products, which threads only slow down (25 times on a loaded 2-core machine)."""
        with _blas().limit(limits=1, user_api="blas"):
            z = self.logits(images, feats).astype(np.float64)
        return -np.logaddexp(0.0, -z)


@lru_cache(maxsize=1)
def _blas():
    """threadpoolctl's view of the BLAS libraries (scikit-learn's dependency), found once: finding them takes
    milliseconds, limiting them microseconds."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@lru_cache(maxsize=1)
def shipped() -> Verifier | None:
    """The verifier shipped with glyphlab (None when its weights are missing: reading goes on without it)."""
    return Verifier.load() if WEIGHTS.exists() else None
