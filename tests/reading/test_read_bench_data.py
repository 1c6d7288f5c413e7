"""The reading benches' data: the reader's right-cut characters a reading model is fine-tuned on
(bench/train_read_model.py) and the independently rendered numbers it is checked on (bench/indep_strings.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reading_helpers import glyph, train_drawn_model

from glyphlab.data.dataset import Split
from glyphlab.data.formats import load_path
from glyphlab.serving.predictor import Predictor

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import indep_strings
        import train_read_model
    finally:
        sys.path.remove(str(BENCH))
    return train_read_model, indep_strings


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Drawn digits standing in for MNIST's (ink = 1, one size), two of each, and their labels."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 2)
    return np.stack([glyph(str(d), 28, 3, jitter=rng) for d in labels]), labels


def test_reader_characters_are_the_right_cuts_with_their_true_digits(bench, digits, tmp_path):
    train_read_model, _ = bench
    predictor = Predictor(train_drawn_model(tmp_path / "drawn"))
    images, labels = digits
    x, y, used = train_read_model.reader_characters(predictor, images, labels, 8, seed=3)
    texts = [t for _, t in train_read_model.make_strings(images, labels, 8, 3)]
    assert used, "no photo of drawn digits was cut right"
    assert "".join(map(str, y)) == "".join(texts[i] for i in used)
    assert x.shape == (len(y), 28, 28) and 0.0 <= x.min() and x.max() <= 1.0


def test_written_data_reads_back_as_a_dataset_of_characters_then_digits(bench, tmp_path):
    train_read_model, _ = bench
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 28, 28)).astype(np.float32), np.array([4, 0, 7])
    train = Split((rng.random((5, 28, 28)) * 255).round(), np.array([1, 2, 3, 4, 5]))  # 0..255, as MNIST's
    test = Split(rng.random((2, 28, 28)).astype(np.float32), np.array([9, 8]))
    train_csv, test_csv = train_read_model.write_data(tmp_path, x, y, train, test)
    ds = load_path(train_csv, test_path=test_csv)
    assert list(ds.splits["train"].labels) == [4, 0, 7, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(ds.splits["train"].images[:3], x, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(ds.splits["train"].images[3:], train.images / 255, atol=1e-6)
    assert list(ds.splits["test"].labels) == [9, 8]


def test_independent_numbers_are_jpeg_photos_that_depend_only_on_their_seed(bench):
    _, indep_strings = bench
    rng = np.random.default_rng(5)
    mnist_like = [(glyph(str(d), 28, 3) * 255).astype(np.uint8) for d in (3, 1, 4)]
    first = indep_strings.string_picture(mnist_like, np.random.default_rng([7, 0]))
    again = indep_strings.string_picture(mnist_like, np.random.default_rng([7, 0]))
    other = indep_strings.string_picture(mnist_like, rng)
    assert first == again and first != other
    with Image.open(io.BytesIO(first)) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.width > im.height
