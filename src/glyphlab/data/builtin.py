"""Built-in datasets. Other modules add theirs with ``@register_dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.registry import register_dataset
from glyphlab.data.splits import stratified_indices

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0  # fixed, so every run of every seed is scored on the same 450 test images
MNIST_LIMIT_SEED = 0  # fixed: mnist with limit=N is the same N images per split for everyone


@register_dataset(
    "digits",
    description="scikit-learn's embedded 8x8 handwritten digits (UCI optdigits test set)",
    source="sklearn.datasets.load_digits (ships with scikit-learn, no download)",
    sizes="1,797 images 8x8, 10 classes; 1,347 train / 450 test",
)
def load_digits_dataset(data_dir: Path | None = None, limit: int | None = None) -> Dataset:
    """The 1,347 / 450 split of scikit-learn's digits; ``limit`` keeps that many images per split (stratified,
    seeded), chosen from the fixed split so a limited test set is a subset of the full one."""
    from sklearn.datasets import load_digits

    from glyphlab.data.studies.cache import check_limit, limit_indices

    limit = check_limit(limit)
    raw = load_digits()
    images = (raw.images / 16.0).astype(np.float32)
    labels = raw.target.astype(np.int64)
    train_idx, test_idx = stratified_indices(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    splits = {}
    for split, idx in (("train", train_idx), ("test", test_idx)):
        idx = idx[limit_indices(labels[idx], len(idx), limit, DIGITS_SPLIT_SEED)]
        splits[split] = Split(images[idx], labels[idx])
    return Dataset(
        name="digits",
        classes=[str(i) for i in range(10)],
        splits=splits,
        source="sklearn.datasets.load_digits",
        meta={"limit": limit} if limit else {},
    )


@register_dataset(
    "mnist",
    description="MNIST handwritten digits (LeCun, Cortes, Burges), canonical IDX files",
    source="downloaded from the canonical mirrors (ossci-datasets S3, cvdf-datasets GCS), SHA-256 verified",
    sizes="70,000 images 28x28, 10 classes; 60,000 train / 10,000 test",
)
def load_mnist_dataset(data_dir: Path | None = None, download: bool = True, limit: int | None = None) -> Dataset:
    """MNIST's 60,000 / 10,000; ``limit`` keeps that many images per split (stratified, seeded)."""
    from glyphlab.data.mnist import load_mnist
    from glyphlab.data.registry import default_data_dir
    from glyphlab.data.studies.cache import check_limit, limit_indices

    limit = check_limit(limit)
    ds = load_mnist(data_dir if data_dir is not None else default_data_dir(), download=download)
    if limit is None:
        return ds
    splits = {k: s.take(limit_indices(s.labels, len(s), limit, MNIST_LIMIT_SEED)) for k, s in ds.splits.items()}
    return ds.with_splits(splits, limit=limit)


# ------------------------------------------------------------------------------- rotated MNIST (seed 000)

ROT_SEED000_SEED = 0  # fixed: every user of mnist-rot-seed000 gets the same subset, angles and filter
ROT_SEED000_TRAIN = 3_000  # a stratified 5% of MNIST's 60,000 training digits
MNIST_ROT_SEED = 2007  # fixed: the year of Larochelle et al.'s benchmark
MNIST_ROT_SIZES = (10_000, 2_000, 50_000)  # train / val / test
MNIST_ROT_AMAT = (
    "mnist_all_rotation_normalized_float_train_valid.amat",
    "mnist_all_rotation_normalized_float_test.amat",
)


def _rotated_split(
    images: np.ndarray, labels: np.ndarray, keep: np.ndarray, low: float, high: float, seed: int, split: str
) -> Split:
    """Rotate ``images[keep]``; the angle of image i is the i-th draw of the split's stream over ALL images, so
    a ``limit`` picks the very same rotated images as the full dataset holds (only fewer of them are rotated)."""
    from glyphlab.data.variants import rotate_images, split_rng

    angles = split_rng(seed, "rotate", split).uniform(low, high, len(images))
    return Split(rotate_images(images[keep], angles[keep]), labels[keep])


def _mnist_rot_draw(data_dir: Path | None, download: bool) -> tuple[str, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """mnist-rot's draw from all 70,000 MNIST digits: (source, images, labels, indices of "train+val", "test" and
    "spare", the 8,000 in neither). Defined once, so the spare digits cannot drift from the splits' draw."""
    from glyphlab.data.studies.cache import all_mnist

    images, labels, source = all_mnist(data_dir, download)
    n_train, n_val, n_test = MNIST_ROT_SIZES
    rest, train_all = stratified_indices(labels, n_train + n_val, MNIST_ROT_SEED)
    spare_pick, test_pick = stratified_indices(labels[rest], n_test, MNIST_ROT_SEED)
    return source, images, labels, {"train+val": train_all, "test": rest[test_pick], "spare": rest[spare_pick]}


def mnist_rot_spare(data_dir: Path | None = None, download: bool = True) -> Split:
    """The 8,000 MNIST digits in none of mnist-rot's splits, rotated in [0, 360) on their own seeded stream.

    For choosing a network's settings on rotated digits without looking at mnist-rot's test split."""
    _, images, labels, drawn = _mnist_rot_draw(data_dir, download)
    idx = drawn["spare"]
    return _rotated_split(images[idx], labels[idx], np.arange(len(idx)), 0.0, 360.0, MNIST_ROT_SEED, "spare")


@register_dataset(
    "mnist-rot-seed000",
    description="seed 000: a stratified 5% of MNIST train rotated in [-180, 180) and blur-filtered; all 10,000 "
    "MNIST test digits rotated likewise",
    source="generated from the MNIST IDX files (fixed seed 0)",
    sizes="~2,850 train (3,000 before the blur filter drops the 5% blurriest) / 10,000 test, 28x28, 10 classes",
)
def load_mnist_rot_seed000(data_dir: Path | None = None, limit: int | None = None, download: bool = True) -> Dataset:
    """Seed 000's protocol: 3,000 stratified MNIST training digits and the 10,000 test digits, each rotated by an
    angle drawn uniformly from [-180, 180) degrees (seeded, per split: :func:`variants.rotate`'s streams), then
    :func:`variants.blur_filter` drops the blurriest training images (below the 5th percentile of the
    variance of the Laplacian); ``meta["blur_filter"]`` says how many. ``limit`` keeps that many images per
    split (stratified) before anything is rotated."""
    from glyphlab.data.studies.cache import check_limit, limit_indices, load_mnist_quietly, mnist_dir
    from glyphlab.data.variants import blur_filter

    limit = check_limit(limit)
    seed = ROT_SEED000_SEED
    mnist = load_mnist_quietly(mnist_dir(data_dir), download)
    tr, te = mnist["train"], mnist["test"]
    _, sub = stratified_indices(tr.labels, ROT_SEED000_TRAIN, seed)
    train_imgs, train_labels = tr.images[sub], tr.labels[sub]
    splits = {
        "train": _rotated_split(
            train_imgs, train_labels, limit_indices(train_labels, len(sub), limit, seed), -180.0, 180.0, seed, "train"
        ),
        "test": _rotated_split(
            te.images, te.labels, limit_indices(te.labels, len(te), limit, seed), -180.0, 180.0, seed, "test"
        ),
    }
    ds = Dataset(
        name="mnist-rot-seed000",
        classes=[str(i) for i in range(10)],
        splits=splits,
        source=mnist.source,
        meta={
            "protocol": {
                "dataset": "mnist-rot-seed000",
                "seed": seed,
                "train_subset": ROT_SEED000_TRAIN,
                "angles": [-180.0, 180.0],
                "limit": limit,
            },
            "variants": [
                {"name": "subset", "size": ROT_SEED000_TRAIN, "seed": seed, "split": "train"},
                {"name": "rotate", "low": -180.0, "high": 180.0, "seed": seed},
            ],
        },
    )
    out = blur_filter(ds, split="train")
    out.name = "mnist-rot-seed000"
    return out


@register_dataset(
    "mnist-rot",
    description="MNIST-rotation (Larochelle et al. 2007): digits rotated uniformly in [0, 360); or the original "
    ".amat files with option amat_dir",
    source="generated from the MNIST IDX files (fixed seed 2007), or read from amat_dir",
    sizes="62,000 images 28x28, 10 classes; 10,000 train / 2,000 val / 50,000 test",
)
def load_mnist_rot(
    data_dir: Path | None = None, limit: int | None = None, amat_dir: str | Path | None = None, download: bool = True
) -> Dataset:
    """The MNIST-rotation benchmark's protocol: 12,000 training digits (the first 10,000 train, the last 2,000
    validation) and 50,000 test digits, each rotated by an angle uniform in [0, 360).

    Generated (the default): the 12,000 are a stratified draw (fixed seed) from all 70,000 MNIST digits and
    the 50,000 test digits a stratified draw from the remaining 58,000, so no digit is in both. With
    ``amat_dir`` the original files (``mnist_all_rotation_normalized_float_{train_valid,test}.amat``, images
    stored column-major) are read instead. ``limit`` keeps that many images per split (stratified), chosen
    before rotating."""
    from glyphlab.data.studies.cache import check_limit, limit_indices
    from glyphlab.errors import DataError

    limit = check_limit(limit)
    seed = MNIST_ROT_SEED
    n_train, n_val, n_test = MNIST_ROT_SIZES
    classes = [str(i) for i in range(10)]
    if amat_dir is not None:
        from glyphlab.data.formats import read_amat

        folder = Path(amat_dir).expanduser()
        paths = [folder / f for f in MNIST_ROT_AMAT]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"mnist-rot: amat_dir {folder} lacks {', '.join(missing)}")
        train_valid = read_amat(paths[0], transposed=True, labeled=True, classes=classes)
        test = read_amat(paths[1], transposed=True, labeled=True, classes=classes)
        n_tr = min(n_train, len(train_valid) - 1)
        raw = {
            "train": train_valid.take(np.arange(n_tr)),
            "val": train_valid.take(np.arange(n_tr, len(train_valid))),
            "test": test,
        }
        splits = {k: s.take(limit_indices(s.labels, len(s), limit, seed)) for k, s in raw.items()}
        return Dataset(
            name="mnist-rot",
            classes=classes,
            splits=splits,
            source=str(folder),
            meta={"protocol": {"dataset": "mnist-rot", "files": [str(p) for p in paths], "limit": limit}},
        )
    source, images, labels, drawn = _mnist_rot_draw(data_dir, download)
    train_all, test_idx = drawn["train+val"], drawn["test"]
    # a seeded shuffle first: train_all is sorted, so a plain cut would not be random in MNIST's order
    order = np.random.default_rng(seed).permutation(len(train_all))
    train_idx, val_idx = train_all[np.sort(order[:n_train])], train_all[np.sort(order[n_train:])]
    splits = {}
    for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        keep = limit_indices(labels[idx], len(idx), limit, seed)
        splits[name] = _rotated_split(images[idx], labels[idx], keep, 0.0, 360.0, seed, name)
    return Dataset(
        name="mnist-rot",
        classes=classes,
        splits=splits,
        source=source,
        meta={
            "protocol": {
                "dataset": "mnist-rot",
                "seed": seed,
                "sizes": list(MNIST_ROT_SIZES),
                "angles": [0.0, 360.0],
                "limit": limit,
            },
            "variants": [{"name": "rotate", "low": 0.0, "high": 360.0, "seed": seed}],
        },
    )
