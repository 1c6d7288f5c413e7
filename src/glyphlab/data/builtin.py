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


@register_dataset(
    "mnist",
    description="MNIST handwritten digits (LeCun, Cortes, Burges), canonical IDX files",
    source="downloaded from the canonical mirrors (ossci-datasets S3, cvdf-datasets GCS), SHA-256 verified",
    sizes="70,000 images 28x28, 10 classes; 60,000 train / 10,000 test",
)
def load_mnist_dataset(data_dir: Path | None = None, download: bool = True) -> Dataset:
    from glyphlab.data.mnist import load_mnist
    from glyphlab.data.registry import default_data_dir

    return load_mnist(data_dir if data_dir is not None else default_data_dir(), download=download)
