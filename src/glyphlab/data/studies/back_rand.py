"""Seed 002's protocol, ``mnist-back-rand`` (MNIST on a uniform random background, in Kaggle-style transposed
CSVs), and its leak-free transfer source ``mnist-back-rand-source``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.formats import read_csv785, read_image_csv_pair, write_csv785, write_image_csv_pair
from glyphlab.data.registry import register_dataset
from glyphlab.data.splits import stratified_indices
from glyphlab.data.studies.cache import (
    DIGIT_CLASSES,
    all_mnist,
    cache_dir,
    cache_is_fresh,
    check_limit,
    limit_indices,
    mnist_dir,
    read_cached,
    write_protocol,
)
from glyphlab.data.variants import background_noise
from glyphlab.fileio import atomic_path

BACK_RAND_SEED = 2
BACK_RAND_SIZES = (12_000, 50_000)


def back_rand_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the 70,000 MNIST digits (train then test) become mnist-back-rand's train and test images."""
    n_train, n_test = BACK_RAND_SIZES
    rest, train_idx = stratified_indices(labels, n_train, BACK_RAND_SEED)
    _, test_pick = stratified_indices(labels[rest], n_test, BACK_RAND_SEED)
    return train_idx, rest[test_pick]


@register_dataset(
    "mnist-back-rand-source",
    description="seed 002's transfer source: the 20,000 clean MNIST digits NOT in mnist-back-rand's test split",
    source="MNIST IDX files (see `mnist`)",
    sizes="20,000 images 28x28, 10 classes; 16,000 train / 4,000 test",
)
def load_mnist_back_rand_source(
    data_dir: Path | None = None, limit: int | None = None, download: bool = True, noisy_test: bool = False
) -> Dataset:
    """Clean digits to pre-train a transfer-learning source for mnist-back-rand without leaking its test set.

    mnist-back-rand draws its 50,000 test digits from all 70,000 MNIST digits, so a network trained on clean
    MNIST's 60,000 training images has seen most of them (with a clean background) and its fine-tuned score
    would be inflated. This dataset keeps only the 20,000 digits outside that test split (the clean originals
    of the 12,000 noisy training digits and 8,000 unused ones), split 16,000 / 4,000 (stratified, fixed seed).

    ``noisy_test=True`` gives the 4,000 test digits the competition's background (``max(digit, U[0, 1])``,
    fixed seed), leaving the training digits clean: a source trained with ``background_noise`` is then scored
    on the kind of image it is for, not on clean digits it never saw.
    """
    limit = check_limit(limit)
    images, labels, source = all_mnist(data_dir, download)
    outside = np.setdiff1d(np.arange(len(labels)), back_rand_indices(labels)[1])
    train_pick, test_pick = stratified_indices(labels[outside], len(outside) // 5, BACK_RAND_SEED)
    splits = {}
    for name, idx in (("train", outside[train_pick]), ("test", outside[test_pick])):
        idx = idx[limit_indices(labels[idx], len(idx), limit, BACK_RAND_SEED)]
        splits[name] = Split(images[idx], labels[idx])
    if noisy_test:
        test_only = Dataset("mnist-back-rand-source", list(DIGIT_CLASSES), {"test": splits["test"]})
        splits["test"] = background_noise(test_only, seed=BACK_RAND_SEED)["test"]
    return Dataset(
        name="mnist-back-rand-source",
        classes=list(DIGIT_CLASSES),
        splits=splits,
        source=source,
        meta={
            "protocol": {
                "dataset": "mnist-back-rand-source",
                "seed": BACK_RAND_SEED,
                "excludes": "mnist-back-rand test digits",
                "limit": limit,
                "noisy_test": bool(noisy_test),
            }
        },
    )


@register_dataset(
    "mnist-back-rand",
    description="seed 002: MNIST on a uniform random background, stored transposed in Kaggle-style CSVs",
    source="generated from MNIST (fixed seed) into DATA_DIR/mnist-back-rand/{train,test,test_labels}.csv",
    sizes="62,000 images 28x28, 10 classes; 12,000 train / 50,000 test (+ the same 50,000 unlabeled: hidden)",
)
def load_mnist_back_rand(
    data_dir: Path | None = None, limit: int | None = None, download: bool = True, cache: bool = True
) -> Dataset:
    """Seed 002's protocol. 12,000 train and 50,000 test digits are drawn (stratified, fixed seed) from the
    70,000 MNIST digits, every pixel becomes ``max(digit, U[0, 1])`` (:func:`variants.background_noise`), and
    the images are written transposed, as the competition's files store them:

    * ``train.csv``: 785 columns, pixels 0-255 then the label;
    * ``test.csv``: 784 columns, unlabeled (the file a Kaggle submission predicts: split ``hidden``);
    * ``test_labels.csv``: its answer key, one label per row (what the competition host kept).

    They are read back with :func:`formats.read_csv785` / :func:`formats.read_image_csv_pair`
    (``transposed=True``), so the data goes through the report's file format; with ``cache`` (default) the
    parsed arrays are then kept in ``parsed.npz`` for later loads (``cache=False`` parses the CSVs every time).
    """
    limit = check_limit(limit)
    data_dir = mnist_dir(data_dir)
    folder = cache_dir(data_dir, "mnist-back-rand", limit)
    files = ["train.csv", "test.csv", "test_labels.csv"]
    protocol = {
        "dataset": "mnist-back-rand",
        "version": 1,
        "seed": BACK_RAND_SEED,
        "sizes": list(BACK_RAND_SIZES),
        "limit": limit,
        "pixels": "0-255 integers, transposed",
        "label_column": "last",
    }
    if not cache_is_fresh(folder, protocol, files):
        images, labels, _ = all_mnist(data_dir, download)
        train_idx, test_idx = back_rand_indices(labels)
        train_idx = train_idx[limit_indices(labels[train_idx], len(train_idx), limit, BACK_RAND_SEED)]
        test_idx = test_idx[limit_indices(labels[test_idx], len(test_idx), limit, BACK_RAND_SEED)]
        clean = Dataset(
            "mnist",
            DIGIT_CLASSES,
            {"train": Split(images[train_idx], labels[train_idx]), "test": Split(images[test_idx], labels[test_idx])},
        )
        noisy = background_noise(clean, seed=BACK_RAND_SEED)
        with atomic_path(folder / "train.csv") as tmp:
            write_csv785(tmp, noisy["train"], transposed=True)
        # the pair writer writes both files; each is moved into place
        with atomic_path(folder / "test.csv") as images_tmp, atomic_path(folder / "test_labels.csv") as labels_tmp:
            write_image_csv_pair(images_tmp, labels_tmp, noisy["test"], transposed=True)
        write_protocol(folder, protocol)

    def read() -> dict[str, Split]:
        return {
            "train": read_csv785(
                folder / "train.csv", transposed=True, labeled=True, header=False, classes=DIGIT_CLASSES
            ),
            "test": read_image_csv_pair(
                folder / "test.csv", folder / "test_labels.csv", transposed=True, header=False, classes=DIGIT_CLASSES
            ),
        }

    parsed = read_cached(folder, files, read, cache)
    train, test = parsed["train"], parsed["test"]
    return Dataset(
        name="mnist-back-rand",
        classes=list(DIGIT_CLASSES),
        splits={"train": train, "test": test, "hidden": Split(test.images, None)},
        source=str(folder),
        meta={"protocol": protocol, "files": {f: str(folder / f) for f in files}},
    )
