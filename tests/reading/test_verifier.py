"""The reader's learned "one whole character?" verifier: NumPy inference = the training network, and its say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from reading_helpers import glyph

from glyphlab.reading.segment import _model_input
from glyphlab.reading.verifier import N_FEATURES, VERIFIER_CONFIG, WEIGHTS, Verifier, features, shipped

BENCH = Path(__file__).parents[2] / "bench"


def test_numpy_inference_is_the_training_networks():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(BENCH))
    try:
        from train_read_verifier import net
    finally:
        sys.path.remove(str(BENCH))
    torch.manual_seed(0)
    model = net().eval()
    rng = np.random.default_rng(0)
    x = rng.random((7, 28, 28), dtype=np.float32)
    f = rng.random((7, N_FEATURES), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x[:, None]), torch.from_numpy(f)).numpy()
    got = Verifier({k: v.numpy() for k, v in model.state_dict().items()}).logits(x, f)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_shipped_weights_are_safetensors_in_the_package():
    assert WEIGHTS.exists() and WEIGHTS.suffix == ".safetensors"
    assert WEIGHTS.stat().st_size < 1_000_000
    assert shipped() is not None


def test_a_whole_digit_is_more_likely_one_character_than_its_half_or_two_merged():
    zero, one = glyph("0"), glyph("1")
    half = zero[:, : zero.shape[1] // 2]
    pair = np.zeros((zero.shape[0], zero.shape[1] + one.shape[1]), np.float32)
    pair[:, : zero.shape[1]] = zero
    pair[: one.shape[0], zero.shape[1] - 4 : zero.shape[1] - 4 + one.shape[1]] = np.maximum(
        pair[: one.shape[0], zero.shape[1] - 4 : zero.shape[1] - 4 + one.shape[1]], one
    )
    h = zero.shape[0]
    crops = [zero, half, pair]
    # (i, j, left cut, right cut, join, width, height): the half ends in a cut through two strokes
    feats = [(0, 1, 0, 0, False, zero.shape[1] / h, 1.0), (0, 1, 0, 2, False, half.shape[1] / h, 1.0)]
    feats.append((0, 1, 0, 0, False, pair.shape[1] / h, 1.0))
    images = np.stack([_model_input(c, VERIFIER_CONFIG) for c in crops])
    whole, half_lp, pair_lp = shipped().log_whole(images, features(feats))
    assert whole > np.log(0.5) > max(half_lp, pair_lp)
