"""Seed 004's protocol, ``mnist-csv``: MNIST as an images CSV plus a labels CSV, read back with the pair reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.formats import read_image_csv_pair, write_image_csv_pair
from glyphlab.data.registry import register_dataset
from glyphlab.data.studies.cache import (
    DIGIT_CLASSES,
    cache_dir,
    cache_is_fresh,
    check_limit,
    limit_indices,
    load_mnist_quietly,
    mnist_dir,
    read_cached,
    write_protocol,
)
from glyphlab.errors import DataError
from glyphlab.fileio import atomic_path

CSV_SEED = 4

CSV_IMAGES = "handwritten_digits_images.csv"
CSV_LABELS = "handwritten_digits_labels.csv"


@register_dataset(
    "mnist-csv",
    description="seed 004: MNIST as an images CSV + labels CSV pair (70,000 rows), MNIST's 10k test as test",
    source=f"written once from MNIST into DATA_DIR/mnist-csv/{{{CSV_IMAGES},{CSV_LABELS}}}",
    sizes="70,000 images 28x28, 10 classes; 60,000 train (validation carved by the run) / 10,000 test",
)
def load_mnist_csv(
    data_dir: Path | None = None, limit: int | None = None, download: bool = True, cache: bool = True
) -> Dataset:
    """Seed 004's files: ``handwritten_digits_images.csv`` (one row of 784 pixels 0-255 per image) and
    ``handwritten_digits_labels.csv`` (one label per row), MNIST's 60,000 training digits first, then its
    10,000 test digits; the first block is the train split (a run carves the validation split from it),
    the second the test split. ``cache`` keeps the parsed arrays in ``parsed.npz`` after the first read."""
    limit = check_limit(limit)
    data_dir = mnist_dir(data_dir)
    folder = cache_dir(data_dir, "mnist-csv", limit)
    protocol: dict[str, Any] = {
        "dataset": "mnist-csv",
        "version": 1,
        "seed": CSV_SEED,
        "limit": limit,
        "order": "MNIST train then MNIST test",
    }
    meta_path = folder / "protocol.json"
    n_train = None
    if meta_path.is_file():
        try:
            n_train = json.loads(meta_path.read_text()).get("n_train")
        except (OSError, json.JSONDecodeError):
            n_train = None
    if n_train is None or not cache_is_fresh(folder, {**protocol, "n_train": n_train}, [CSV_IMAGES, CSV_LABELS]):
        mnist = load_mnist_quietly(data_dir, download)
        parts = []
        for split in ("train", "test"):
            s = mnist[split]
            parts.append(s.take(limit_indices(s.labels, len(s), limit, CSV_SEED)))
        n_train = len(parts[0])
        both = Split(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
        with atomic_path(folder / CSV_IMAGES) as images_tmp, atomic_path(folder / CSV_LABELS) as labels_tmp:
            write_image_csv_pair(images_tmp, labels_tmp, both)
        write_protocol(folder, {**protocol, "n_train": n_train})
    both = read_cached(
        folder,
        [CSV_IMAGES, CSV_LABELS],
        lambda: {
            "all": read_image_csv_pair(folder / CSV_IMAGES, folder / CSV_LABELS, header=False, classes=DIGIT_CLASSES)
        },
        cache,
    )["all"]
    if not 0 < n_train < len(both):
        raise DataError(
            f"{meta_path}: n_train={n_train} does not fit the {len(both)} rows of {folder / CSV_IMAGES}; "
            "delete the folder to regenerate it"
        )
    idx = np.arange(len(both))
    return Dataset(
        name="mnist-csv",
        classes=list(DIGIT_CLASSES),
        splits={"train": both.take(idx[:n_train]), "test": both.take(idx[n_train:])},
        source=str(folder),
        meta={
            "protocol": {**protocol, "n_train": n_train},
            "files": {"images": str(folder / CSV_IMAGES), "labels": str(folder / CSV_LABELS)},
        },
    )
