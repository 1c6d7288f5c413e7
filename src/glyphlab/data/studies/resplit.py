"""Seed 003's protocol, ``mnist-70k-resplit``: all 70,000 MNIST digits re-split 56,000 / 14,000."""

from __future__ import annotations

from pathlib import Path

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.registry import register_dataset
from glyphlab.data.splits import stratified_indices
from glyphlab.data.studies.cache import (
    DIGIT_CLASSES,
    all_mnist,
    check_limit,
    limit_indices,
)

RESPLIT_SEED = 3
RESPLIT_TEST = 14_000


@register_dataset(
    "mnist-70k-resplit",
    description="seed 003: all 70,000 MNIST digits re-split 56,000 train / 14,000 test (stratified, fixed seed)",
    source="MNIST IDX files (see `mnist`)",
    sizes="70,000 images 28x28, 10 classes; 56,000 train / 14,000 test",
)
def load_mnist_70k_resplit(data_dir: Path | None = None, limit: int | None = None, download: bool = True) -> Dataset:
    limit = check_limit(limit)
    images, labels, source = all_mnist(data_dir, download)
    train_idx, test_idx = stratified_indices(labels, RESPLIT_TEST, RESPLIT_SEED)
    train_idx = train_idx[limit_indices(labels[train_idx], len(train_idx), limit, RESPLIT_SEED)]
    test_idx = test_idx[limit_indices(labels[test_idx], len(test_idx), limit, RESPLIT_SEED)]
    return Dataset(
        name="mnist-70k-resplit",
        classes=list(DIGIT_CLASSES),
        splits={
            "train": Split(images[train_idx], labels[train_idx]),
            "test": Split(images[test_idx], labels[test_idx]),
        },
        source=source,
        meta={"protocol": {"seed": RESPLIT_SEED, "test": RESPLIT_TEST, "limit": limit}},
    )
