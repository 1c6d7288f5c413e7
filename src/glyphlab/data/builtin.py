"""Built-in datasets. Other modules add theirs with ``@register_dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.registry import register_dataset
from glyphlab.data.splits import stratified_indices

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0  # fixed, so every run of every seed is scored on the same 450 test images


@register_dataset(
    "digits",
    description="scikit-learn's embedded 8x8 handwritten digits (UCI optdigits test set)",
    source="sklearn.datasets.load_digits (ships with scikit-learn, no download)",
    sizes="1,797 images 8x8, 10 classes; 1,347 train / 450 test",
)
def load_digits_dataset(data_dir: Path | None = None) -> Dataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = (raw.images / 16.0).astype(np.float32)
    labels = raw.target.astype(np.int64)
    train_idx, test_idx = stratified_indices(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return Dataset(
        name="digits",
        classes=[str(i) for i in range(10)],
        splits={
            "train": Split(images[train_idx], labels[train_idx]),
            "test": Split(images[test_idx], labels[test_idx]),
        },
        source="sklearn.datasets.load_digits",
    )
