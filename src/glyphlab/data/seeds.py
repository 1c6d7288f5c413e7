"""The seed studies' own datasets, each one command away (``glyphlab run --dataset NAME``).

* ``mnist-back-rand`` (seed 002): 12,000 train / 50,000 test MNIST digits on a uniform random background,
  stored transposed in the Kaggle files' layout (a 785-column train CSV with the label last, a 784-column
  unlabeled test CSV); the unlabeled copy of the test set is the ``hidden`` split a submission predicts.
* ``mnist-70k-resplit`` (seed 003): all 70,000 MNIST digits re-split 56,000 train / 14,000 test.
* ``mnist-csv`` (seed 004): MNIST as an images CSV plus a labels CSV (70,000 rows), read back with the pair
  reader; MNIST's own 10,000 test digits are the test split.
* ``glyphs36`` (seed 001): 30,134 generated binary 56x56 digits and letters in 36 strongly imbalanced
  classes, rendered from TrueType fonts and distorted; split 22,634 / 2,500 / 5,000.
* ``emnist``: the real EMNIST byclass files, merged case-insensitively to the same 36 classes, 56x56 binary.

Every loader takes ``limit`` (keep that many images per split, stratified, chosen before anything expensive
is done, so quick recipes and tests run on a few hundred images). Files a loader generates are written once
into ``data_dir/NAME/`` (``data_dir/NAME/limit-N/`` with a limit) atomically (:mod:`glyphlab.fileio`),
and regenerated when their ``protocol.json`` does not match.
"""

from __future__ import annotations

import json
import re
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.registry import default_data_dir, register_dataset
from glyphlab.data.splits import stratified_indices
from glyphlab.data.variants import bilinear_sample
from glyphlab.errors import DataError
from glyphlab.fileio import atomic_open, atomic_path, write_bytes, write_json

DIGIT_CLASSES = [str(i) for i in range(10)]
ALNUM_CLASSES = DIGIT_CLASSES + [chr(ord("A") + i) for i in range(26)]

#: fixed seeds of the protocols: every user of a name gets the same images and splits
BACK_RAND_SEED = 2
RESPLIT_SEED = 3
CSV_SEED = 4
GLYPHS_SEED = 1

BACK_RAND_SIZES = (12_000, 50_000)
RESPLIT_TEST = 14_000
GLYPHS_TOTAL = 30_134
GLYPHS_SPLIT = (22_634, 2_500, 5_000)  # train / val / test, as in seed 001


# ------------------------------------------------------------------------------------------ helpers


def _check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DataError(f"limit must be a positive whole number of images per split, got {limit!r}")
    return int(limit)


def limit_indices(labels: np.ndarray | None, n: int, limit: int | None, seed: int, min_per_class: int = 0) -> np.ndarray:
    """Sorted indices of ``limit`` of ``n`` items, stratified by label where labels are given.

    ``min_per_class`` first reserves that many items of every class that has them (so a few hundred images of
    a long-tailed dataset still hold every class often enough for, e.g., an SVM's 3-fold calibration); the
    rest is a stratified draw. Classes with a single member cannot be stratified; with a limit they are left
    out (without one, everything is kept).
    """
    if limit is None or limit >= n:
        return np.arange(n)
    if labels is None:
        return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    ok = np.flatnonzero(counts[labels] >= 2)
    if limit >= len(ok):
        return ok
    reserved = np.zeros(0, dtype=np.int64)
    if min_per_class > 0:
        rng = np.random.default_rng([seed, 1])
        groups = [rng.permutation(ok[labels[ok] == c])[:min_per_class] for c in np.unique(labels[ok])]
        reserved = np.sort(np.concatenate(groups))[:limit] if groups else reserved
        if len(reserved) >= limit:
            return np.sort(rng.permutation(reserved)[:limit])
        ok = np.setdiff1d(ok, reserved)
        left = np.bincount(labels[ok], minlength=len(counts))
        ok = ok[left[labels[ok]] >= 2]
        if limit - len(reserved) >= len(ok):
            return np.sort(np.concatenate([reserved, ok]))
    _, held = stratified_indices(labels[ok], int(limit - len(reserved)), seed)
    return np.sort(np.concatenate([reserved, ok[held]]))


def _mnist_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _load_mnist(data_dir: Path, download: bool) -> Dataset:
    from glyphlab.data.mnist import load_mnist

    return load_mnist(data_dir, download=download, progress=False)


def _cache_dir(data_dir: Path, name: str, limit: int | None) -> Path:
    base = data_dir / name
    return base / f"limit-{limit}" if limit else base


def _fresh(folder: Path, protocol: dict[str, Any], files: list[str]) -> bool:
    meta = folder / "protocol.json"
    if not meta.is_file() or not all((folder / f).is_file() for f in files):
        return False
    try:
        return json.loads(meta.read_text()) == protocol
    except (OSError, json.JSONDecodeError):
        return False


def _write_protocol(folder: Path, protocol: dict[str, Any]) -> None:
    write_json(folder / "protocol.json", protocol)


PARSED = "parsed.npz"


def _stamp(folder: Path, files: list[str]) -> list[list[int]]:
    return [[(folder / f).stat().st_size, (folder / f).stat().st_mtime_ns] for f in files]


def _read_cached(folder: Path, files: list[str], read: Callable[[], dict[str, Split]], cache: bool) -> dict[str, Split]:
    """``read()`` parses the CSV files (every first load does); with ``cache`` the parsed arrays are kept in
    ``parsed.npz`` beside them and used while the CSVs' sizes and modification times are unchanged (parsing
    tens of thousands of 784-column rows takes most of a minute)."""
    path = folder / PARSED
    stamp = _stamp(folder, files)
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["stamp"])) == stamp:
                    names = json.loads(str(z["splits"]))
                    return {n: Split(z[f"{n}_images"].astype(np.float32) / 255.0,
                                     z[f"{n}_labels"] if f"{n}_labels" in z.files else None) for n in names}
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # unreadable cache: parse the CSVs again
    splits = read()
    if cache:
        arrays: dict[str, Any] = {"stamp": json.dumps(stamp), "splits": json.dumps(list(splits))}
        for n, sp in splits.items():
            arrays[f"{n}_images"] = np.rint(sp.images * 255).astype(np.uint8)
            if sp.labels is not None:
                arrays[f"{n}_labels"] = sp.labels
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **arrays)
    return splits


# ---------------------------------------------------------------------------------- mnist-back-rand


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
def load_mnist_back_rand_source(data_dir: Path | None = None, limit: int | None = None,
                                download: bool = True, noisy_test: bool = False) -> Dataset:
    """Clean digits to pre-train a transfer-learning source for mnist-back-rand without leaking its test set.

    mnist-back-rand draws its 50,000 test digits from all 70,000 MNIST digits, so a network trained on clean
    MNIST's 60,000 training images has seen most of them (with a clean background) and its fine-tuned score
    would be inflated. This dataset keeps only the 20,000 digits outside that test split (the clean originals
    of the 12,000 noisy training digits and 8,000 unused ones), split 16,000 / 4,000 (stratified, fixed seed).

    ``noisy_test=True`` gives the 4,000 test digits the competition's background (``max(digit, U[0, 1])``,
    fixed seed), leaving the training digits clean: a source trained with ``background_noise`` is then scored
    on the kind of image it is for, not on clean digits it never saw.
    """
    limit = _check_limit(limit)
    mnist = _load_mnist(_mnist_dir(data_dir), download)
    images = np.concatenate([mnist["train"].images, mnist["test"].images])
    labels = np.concatenate([mnist["train"].labels, mnist["test"].labels])
    outside = np.setdiff1d(np.arange(len(labels)), back_rand_indices(labels)[1])
    train_pick, test_pick = stratified_indices(labels[outside], len(outside) // 5, BACK_RAND_SEED)
    splits = {}
    for name, idx in (("train", outside[train_pick]), ("test", outside[test_pick])):
        idx = idx[limit_indices(labels[idx], len(idx), limit, BACK_RAND_SEED)]
        splits[name] = Split(images[idx], labels[idx])
    if noisy_test:
        from glyphlab.data.variants import background_noise

        test_only = Dataset("mnist-back-rand-source", list(DIGIT_CLASSES), {"test": splits["test"]})
        splits["test"] = background_noise(test_only, seed=BACK_RAND_SEED)["test"]
    return Dataset(name="mnist-back-rand-source", classes=list(DIGIT_CLASSES), splits=splits, source=mnist.source,
                   meta={"protocol": {"dataset": "mnist-back-rand-source", "seed": BACK_RAND_SEED,
                                      "excludes": "mnist-back-rand test digits", "limit": limit,
                                      "noisy_test": bool(noisy_test)}})


@register_dataset(
    "mnist-back-rand",
    description="seed 002: MNIST on a uniform random background, stored transposed in Kaggle-style CSVs",
    source="generated from MNIST (fixed seed) into DATA_DIR/mnist-back-rand/{train,test,test_labels}.csv",
    sizes="62,000 images 28x28, 10 classes; 12,000 train / 50,000 test (+ the same 50,000 unlabeled: hidden)",
)
def load_mnist_back_rand(data_dir: Path | None = None, limit: int | None = None, download: bool = True,
                         cache: bool = True) -> Dataset:
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
    from glyphlab.data.formats import read_csv785, read_image_csv_pair, write_csv785, write_image_csv_pair
    from glyphlab.data.variants import background_noise

    limit = _check_limit(limit)
    data_dir = _mnist_dir(data_dir)
    folder = _cache_dir(data_dir, "mnist-back-rand", limit)
    files = ["train.csv", "test.csv", "test_labels.csv"]
    protocol = {"dataset": "mnist-back-rand", "version": 1, "seed": BACK_RAND_SEED, "sizes": list(BACK_RAND_SIZES),
                "limit": limit, "pixels": "0-255 integers, transposed", "label_column": "last"}
    if not _fresh(folder, protocol, files):
        mnist = _load_mnist(data_dir, download)
        images = np.concatenate([mnist["train"].images, mnist["test"].images])
        labels = np.concatenate([mnist["train"].labels, mnist["test"].labels])
        train_idx, test_idx = back_rand_indices(labels)
        train_idx = train_idx[limit_indices(labels[train_idx], len(train_idx), limit, BACK_RAND_SEED)]
        test_idx = test_idx[limit_indices(labels[test_idx], len(test_idx), limit, BACK_RAND_SEED)]
        clean = Dataset("mnist", DIGIT_CLASSES, {"train": Split(images[train_idx], labels[train_idx]),
                                                 "test": Split(images[test_idx], labels[test_idx])})
        noisy = background_noise(clean, seed=BACK_RAND_SEED)
        with atomic_path(folder / "train.csv") as tmp:
            write_csv785(tmp, noisy["train"], transposed=True)
        # the pair writer writes both files; each is moved into place
        with atomic_path(folder / "test.csv") as images_tmp, atomic_path(folder / "test_labels.csv") as labels_tmp:
            write_image_csv_pair(images_tmp, labels_tmp, noisy["test"], transposed=True)
        _write_protocol(folder, protocol)
    def read() -> dict[str, Split]:
        return {"train": read_csv785(folder / "train.csv", transposed=True, labeled=True, header=False,
                                     classes=DIGIT_CLASSES),
                "test": read_image_csv_pair(folder / "test.csv", folder / "test_labels.csv", transposed=True,
                                            header=False, classes=DIGIT_CLASSES)}

    parsed = _read_cached(folder, files, read, cache)
    train, test = parsed["train"], parsed["test"]
    return Dataset(
        name="mnist-back-rand",
        classes=list(DIGIT_CLASSES),
        splits={"train": train, "test": test, "hidden": Split(test.images, None)},
        source=str(folder),
        meta={"protocol": protocol, "files": {f: str(folder / f) for f in files}},
    )


# -------------------------------------------------------------------------------- mnist-70k-resplit


@register_dataset(
    "mnist-70k-resplit",
    description="seed 003: all 70,000 MNIST digits re-split 56,000 train / 14,000 test (stratified, fixed seed)",
    source="MNIST IDX files (see `mnist`)",
    sizes="70,000 images 28x28, 10 classes; 56,000 train / 14,000 test",
)
def load_mnist_70k_resplit(data_dir: Path | None = None, limit: int | None = None, download: bool = True) -> Dataset:
    limit = _check_limit(limit)
    mnist = _load_mnist(_mnist_dir(data_dir), download)
    images = np.concatenate([mnist["train"].images, mnist["test"].images])
    labels = np.concatenate([mnist["train"].labels, mnist["test"].labels])
    train_idx, test_idx = stratified_indices(labels, RESPLIT_TEST, RESPLIT_SEED)
    train_idx = train_idx[limit_indices(labels[train_idx], len(train_idx), limit, RESPLIT_SEED)]
    test_idx = test_idx[limit_indices(labels[test_idx], len(test_idx), limit, RESPLIT_SEED)]
    return Dataset(
        name="mnist-70k-resplit",
        classes=list(DIGIT_CLASSES),
        splits={"train": Split(images[train_idx], labels[train_idx]), "test": Split(images[test_idx], labels[test_idx])},
        source=mnist.source,
        meta={"protocol": {"seed": RESPLIT_SEED, "test": RESPLIT_TEST, "limit": limit}},
    )


# --------------------------------------------------------------------------------------- mnist-csv

CSV_IMAGES = "handwritten_digits_images.csv"
CSV_LABELS = "handwritten_digits_labels.csv"


@register_dataset(
    "mnist-csv",
    description="seed 004: MNIST as an images CSV + labels CSV pair (70,000 rows), MNIST's 10k test as test",
    source=f"written once from MNIST into DATA_DIR/mnist-csv/{{{CSV_IMAGES},{CSV_LABELS}}}",
    sizes="70,000 images 28x28, 10 classes; 60,000 train (validation carved by the run) / 10,000 test",
)
def load_mnist_csv(data_dir: Path | None = None, limit: int | None = None, download: bool = True,
                   cache: bool = True) -> Dataset:
    """Seed 004's files: ``handwritten_digits_images.csv`` (one row of 784 pixels 0-255 per image) and
    ``handwritten_digits_labels.csv`` (one label per row), MNIST's 60,000 training digits first, then its
    10,000 test digits; the first block is the train split (a run carves the validation split from it),
    the second the test split. ``cache`` keeps the parsed arrays in ``parsed.npz`` after the first read."""
    from glyphlab.data.formats import read_image_csv_pair, write_image_csv_pair

    limit = _check_limit(limit)
    data_dir = _mnist_dir(data_dir)
    folder = _cache_dir(data_dir, "mnist-csv", limit)
    protocol: dict[str, Any] = {"dataset": "mnist-csv", "version": 1, "seed": CSV_SEED, "limit": limit,
                                "order": "MNIST train then MNIST test"}
    meta_path = folder / "protocol.json"
    n_train = None
    if meta_path.is_file():
        try:
            n_train = json.loads(meta_path.read_text()).get("n_train")
        except (OSError, json.JSONDecodeError):
            n_train = None
    if n_train is None or not _fresh(folder, {**protocol, "n_train": n_train}, [CSV_IMAGES, CSV_LABELS]):
        mnist = _load_mnist(data_dir, download)
        parts = []
        for split in ("train", "test"):
            s = mnist[split]
            parts.append(s.take(limit_indices(s.labels, len(s), limit, CSV_SEED)))
        n_train = len(parts[0])
        both = Split(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
        with atomic_path(folder / CSV_IMAGES) as images_tmp, atomic_path(folder / CSV_LABELS) as labels_tmp:
            write_image_csv_pair(images_tmp, labels_tmp, both)
        _write_protocol(folder, {**protocol, "n_train": n_train})
    both = _read_cached(folder, [CSV_IMAGES, CSV_LABELS], lambda: {"all": read_image_csv_pair(
        folder / CSV_IMAGES, folder / CSV_LABELS, header=False, classes=DIGIT_CLASSES)}, cache)["all"]
    if not 0 < n_train < len(both):
        raise DataError(f"{meta_path}: n_train={n_train} does not fit the {len(both)} rows of {folder / CSV_IMAGES}; "
                        "delete the folder to regenerate it")
    idx = np.arange(len(both))
    return Dataset(
        name="mnist-csv",
        classes=list(DIGIT_CLASSES),
        splits={"train": both.take(idx[:n_train]), "test": both.take(idx[n_train:])},
        source=str(folder),
        meta={"protocol": {**protocol, "n_train": n_train},
              "files": {"images": str(folder / CSV_IMAGES), "labels": str(folder / CSV_LABELS)}},
    )


# ----------------------------------------------------------------------------------------- glyphs36

#: fonts whose ASCII slots hold symbols, or that have only a few glyphs, are never used
_FONT_EXCLUDE = re.compile(r"(Sym|NonUni|LastResort|cmex|cmsy|cmmi|Display|Math|ExtraLight)", re.IGNORECASE)


def glyphs36_class_counts(total: int = GLYPHS_TOTAL, singleton: int = 30, low: int = 102, high: int = 3291,
                          n_classes: int = 36, seed: int = GLYPHS_SEED) -> np.ndarray:
    """Per-class image counts shaped like seed 001's (the report shows them only as a bar chart): class
    ``singleton`` (30, as in the report) has one image, the other 35 run from ``low`` to ``high`` along a
    power curve ``low + (high - low) * t**p`` (t evenly spaced in [0, 1]) whose exponent is solved so the
    counts sum to ``total``; the counts are then dealt to the classes in a fixed seeded order."""
    n = n_classes - 1
    target = total - 1
    t = np.linspace(0.0, 1.0, n)
    lo_p, hi_p = 0.01, 50.0
    for _ in range(200):  # bisection on the exponent: the sum falls as p grows
        p = (lo_p + hi_p) / 2
        s = np.sum(low + (high - low) * t**p)
        lo_p, hi_p = (p, hi_p) if s > target else (lo_p, p)
    counts = np.floor(low + (high - low) * t**p).astype(np.int64)
    counts[-1], counts[0] = high, low
    short = target - int(counts.sum())
    inner = np.arange(1, n - 1)
    counts[inner[np.argsort(-(t[inner] ** p - np.floor(t[inner] ** p)))][: abs(short)]] += np.sign(short)
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n_classes, dtype=np.int64)
    others = [c for c in range(n_classes) if c != singleton]
    out[others] = counts[order]
    out[singleton] = 1
    assert out.sum() == total
    return out


def font_files(which: str = "all") -> list[Path]:
    """TrueType fonts to render with: matplotlib's own (``bundled``), plus the system's (``all``).

    Deduplicated by file name (the DejaVu files often exist twice) and sorted, so one machine always gets the
    same list; symbol, math and display fonts are left out."""
    import matplotlib
    from matplotlib import font_manager

    if which not in ("all", "bundled"):
        raise DataError(f"glyphs36: fonts must be 'all' or 'bundled', got {which!r}")
    paths = sorted(Path(matplotlib.get_data_path(), "fonts", "ttf").glob("*.ttf"))
    if which == "all":
        paths += sorted(Path(p) for p in font_manager.findSystemFonts(fontext="ttf"))
    seen: dict[str, Path] = {}
    for p in paths:
        if p.suffix.lower() == ".ttf" and not _FONT_EXCLUDE.search(p.name) and p.name.lower() not in seen:
            seen[p.name.lower()] = p
    return sorted(seen.values(), key=lambda p: p.name.lower())


def _fit_glyph(mask: np.ndarray, size: int, box: float) -> np.ndarray | None:
    """Crop the ink of ``mask`` and scale it (keeping aspect) into a ``box * size`` square, centred."""
    from PIL import Image

    ys, xs = np.nonzero(mask > 0.2)
    if len(ys) < 4:
        return None
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    f = box * size / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    img = Image.fromarray((crop * 255).astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS)
    out = np.zeros((size, size), dtype=np.float32)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = np.asarray(img, dtype=np.float32) / 255.0
    return np.clip(out, 0, 1)


@lru_cache(maxsize=8)
def glyph_templates(size: int = 56, fonts: str = "all") -> tuple[np.ndarray, tuple[str, ...]]:
    """Clean renders (n_fonts, 62, size, size) of 0-9, A-Z, a-z, each glyph scaled into 70% of the square.

    A font is kept only when all 62 characters render to distinct, non-empty glyphs (so a font that maps
    ASCII to boxes or symbols is dropped)."""
    from PIL import Image, ImageDraw, ImageFont

    chars = ALNUM_CLASSES + [chr(ord("a") + i) for i in range(26)]
    big = 4 * size
    templates, names = [], []
    for path in font_files(fonts):
        try:
            font = ImageFont.truetype(str(path), int(big * 0.6))
        except OSError:
            continue
        glyphs = []
        for ch in chars:
            canvas = Image.new("L", (big, big), 0)
            ImageDraw.Draw(canvas).text((big // 6, big // 8), ch, fill=255, font=font)
            g = _fit_glyph(np.asarray(canvas, dtype=np.float32) / 255.0, size, 0.7)
            if g is None:
                break
            glyphs.append(g)
        if len(glyphs) != len(chars):
            continue
        stack = np.stack(glyphs)
        flat = (stack > 0.5).reshape(len(chars), -1)
        if len({row.tobytes() for row in flat[:36]}) < 30:  # boxes or one repeated symbol
            continue
        templates.append(stack)
        names.append(path.name)
    if not templates:
        raise DataError("glyphs36: no usable TrueType font found (matplotlib's DejaVu fonts should always be there)")
    return np.stack(templates).astype(np.float32), tuple(names)


def _upsample_matrix(k: int, size: int) -> np.ndarray:
    """(size, k) linear interpolation from a k-point coarse grid to ``size`` points."""
    pos = np.linspace(0, k - 1, size)
    i0 = np.clip(np.floor(pos).astype(int), 0, k - 2)
    f = pos - i0
    u = np.zeros((size, k), dtype=np.float32)
    u[np.arange(size), i0] = 1 - f
    u[np.arange(size), i0 + 1] = f
    return u


def render_glyphs(labels: np.ndarray, index: np.ndarray, size: int = 56, seed: int = GLYPHS_SEED,
                  fonts: str = "all", lowercase: float = 0.3, total: int = GLYPHS_TOTAL) -> np.ndarray:
    """Binary images for the glyphs ``index`` (positions in the full set of ``total``) with classes ``labels``.

    Every random draw of glyph ``i`` depends only on (seed, i), so a limited subset holds exactly the images
    the full set has at those positions. Per glyph: a font; lowercase for a letter with probability
    ``lowercase`` (the classes are case-insensitive, as EMNIST merged); a random affine map (rotation +-12
    degrees, shear +-0.25, scale 0.8-1.15 per axis, shift +-8% of the side) composed with an elastic field
    (a coarse 4x4 random displacement grid, up to ~2.5% of the side, interpolated); a stroke-width change
    (grey erosion or dilation, 3x3, for about 45% of glyphs); Gaussian pixel noise and sparse speckles; then
    binarisation at 0.5."""
    templates, _ = glyph_templates(size, fonts)
    n_fonts = len(templates)
    labels = np.asarray(labels, dtype=np.int64)
    index = np.asarray(index, dtype=np.int64)
    # all per-glyph parameters for the whole set, drawn once (cheap), then picked by index
    rng = np.random.default_rng([seed, 36_001])
    font = rng.integers(0, n_fonts, total)[index]
    lower = (rng.random(total) < lowercase)[index]
    rot = np.deg2rad(rng.uniform(-12, 12, total))[index]
    shear = rng.uniform(-0.25, 0.25, total)[index]
    scale = rng.uniform(0.8, 1.15, (total, 2))[index]
    shift = rng.uniform(-0.08, 0.08, (total, 2))[index] * size
    coarse = rng.normal(0.0, 0.025 * size, (total, 2, 4, 4)).astype(np.float32)[index]
    stroke = rng.choice([-1, 0, 1], total, p=[0.2, 0.55, 0.25])[index]
    sigma = rng.uniform(0.0, 0.25, total)[index]
    speckle = rng.uniform(0.0, 0.002, total)[index]

    char = labels.copy()
    letter = labels >= 10
    char[letter & lower] += 26  # a-z follow A-Z in the templates
    c = (size - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(size) - c, np.arange(size) - c, indexing="ij")
    yy, xx = yy.ravel().astype(np.float32), xx.ravel().astype(np.float32)
    up = _upsample_matrix(4, size)
    out = np.empty((len(index), size, size), dtype=np.float32)
    chunk = 2048
    for s in range(0, len(index), chunk):
        sl = slice(s, s + chunk)
        m = len(index[sl])
        # forward map A = R(rot) @ Shear @ diag(scale); sample the template at A^-1 (p - shift) (+ elastic)
        m_cos, m_sin = np.cos(rot[sl]), np.sin(rot[sl])
        r = np.stack([np.stack([m_cos, -m_sin], -1), np.stack([m_sin, m_cos], -1)], -2)  # (m, 2, 2) on (y, x)
        h = np.zeros((m, 2, 2))
        h[:, 0, 0] = h[:, 1, 1] = 1.0
        h[:, 1, 0] = shear[sl]  # x moves by shear * y
        a = r @ h @ (np.eye(2)[None] * scale[sl][:, :, None])
        inv = np.linalg.inv(a).astype(np.float32)
        py = yy[None] - shift[sl, 0:1].astype(np.float32)
        px = xx[None] - shift[sl, 1:2].astype(np.float32)
        src_y = inv[:, 0, 0:1] * py + inv[:, 0, 1:2] * px + c
        src_x = inv[:, 1, 0:1] * py + inv[:, 1, 1:2] * px + c
        field = np.einsum("hk,mdkl,wl->mdhw", up, coarse[sl], up).reshape(m, 2, -1)
        src_y += field[:, 0]
        src_x += field[:, 1]
        imgs = bilinear_sample(templates[font[sl], char[sl]], src_y, src_x)
        for op, fn in ((1, ndimage.grey_dilation), (-1, ndimage.grey_erosion)):
            pick = np.flatnonzero(stroke[sl] == op)
            if len(pick):
                changed = fn(imgs[pick], size=(1, 3, 3))
                if op == -1:  # never erode a glyph away: keep the original when too little ink is left
                    keep = (changed > 0.5).reshape(len(pick), -1).sum(1) >= 0.25 * (imgs[pick] > 0.5).reshape(
                        len(pick), -1).sum(1)
                    changed[~keep] = imgs[pick][~keep]
                imgs[pick] = changed
        for j, i in enumerate(index[sl]):
            g = np.random.default_rng([seed, 36_002, int(i)])
            noise = g.normal(0.0, sigma[s + j], (size, size)).astype(np.float32)
            flips = g.random((size, size)) < speckle[s + j]
            imgs[j] = np.where(flips, 1.0 - imgs[j], imgs[j] + noise)
        out[sl] = (imgs > 0.5).astype(np.float32)
    return out


def glyphs36_splits(labels: np.ndarray, sizes: tuple[int, int, int] = GLYPHS_SPLIT,
                    seed: int = GLYPHS_SEED) -> dict[str, np.ndarray]:
    """Seed 001's split (train / val / test), stratified; classes too small to stratify (the single-image
    class) go to train, so the held-out splits are exactly stratified and their sizes exact."""
    n_train, n_val, n_test = sizes
    if n_train + n_val + n_test != len(labels):
        raise DataError(f"glyphs36: split sizes {sizes} do not add up to {len(labels)} images")
    counts = np.bincount(labels)
    small = np.flatnonzero(counts[labels] < 3)
    big = np.flatnonzero(counts[labels] >= 3)
    rest, test = stratified_indices(labels[big], n_test, seed)
    rest_train, val = stratified_indices(labels[big][rest], n_val, seed)
    return {"train": np.sort(np.concatenate([small, big[rest][rest_train]])), "val": np.sort(big[rest][val]),
            "test": np.sort(big[test])}


@register_dataset(
    "glyphs36",
    description="seed 001: generated binary digits and letters (0-9, A-Z) from TrueType fonts, 36 imbalanced classes",
    source="rendered with matplotlib's and the system's TrueType fonts, distorted, binarised (seeded)",
    sizes="30,134 images 56x56, 36 classes (one with a single image); 22,634 train / 2,500 val / 5,000 test",
)
def load_glyphs36(data_dir: Path | None = None, limit: int | None = None, size: int = 56, fonts: str = "all",
                  lowercase: float = 0.3, seed: int = GLYPHS_SEED) -> Dataset:
    """Seed 001's dataset, generated. ``limit`` keeps that many images per split before rendering;
    ``size`` is the image side; ``fonts`` is ``all`` (matplotlib's + the system's; the default) or ``bundled``
    (only matplotlib's, the same on every machine); ``lowercase`` is the share of letters drawn lowercase.
    Nothing is written to ``data_dir``."""
    limit = _check_limit(limit)
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 256:
        raise DataError(f"glyphs36: size must be a whole number of pixels in [16, 256], got {size!r}")
    if not 0.0 <= float(lowercase) <= 1.0:
        raise DataError(f"glyphs36: lowercase must be a share in [0, 1], got {lowercase!r}")
    counts = glyphs36_class_counts(seed=GLYPHS_SEED)
    labels = np.random.default_rng([seed, 36_000]).permutation(np.repeat(np.arange(36), counts))
    parts = glyphs36_splits(labels, seed=seed)
    splits = {}
    for name, idx in parts.items():
        idx = idx[limit_indices(labels[idx], len(idx), limit, seed, min_per_class=2)]
        splits[name] = Split(render_glyphs(labels[idx], idx, size=size, seed=seed, fonts=fonts,
                                           lowercase=float(lowercase)), labels[idx])
    _, font_names = glyph_templates(size, fonts)
    return Dataset(
        name="glyphs36",
        classes=list(ALNUM_CLASSES),
        splits=splits,
        source="generated (glyphlab.data.seeds.render_glyphs)",
        meta={"generator": {"seed": seed, "size": size, "fonts": list(font_names), "lowercase": float(lowercase),
                            "limit": limit, "class_counts": counts.tolist()}},
    )


# ------------------------------------------------------------------------------------------- emnist

EMNIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
#: MD5 of NIST's gzip.zip as torchvision pins it (torchvision.datasets.EMNIST.md5, the digest the field checks
#: this file against). glyphlab could not download the 562 MB file to pin a SHA-256 of its own; a user who has
#: one passes it as the dataset option ``sha256=...`` and it is checked instead.
EMNIST_ZIP_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
EMNIST_FILES = {
    "train": ("emnist-byclass-train-images-idx3-ubyte", "emnist-byclass-train-labels-idx1-ubyte"),
    "test": ("emnist-byclass-test-images-idx3-ubyte", "emnist-byclass-test-labels-idx1-ubyte"),
}


def _find_emnist(folder: Path, stem: str) -> Path | None:
    from glyphlab.data.mnist import find_idx_file

    return find_idx_file(stem, (folder, folder / "gzip"))  # NIST's zip unpacks into gzip/


def _emnist_download(folder: Path, sha256: str | None) -> None:
    from glyphlab.data.mnist import _download

    expected, algorithm = (sha256.lower(), "sha256") if sha256 else (EMNIST_ZIP_MD5, "md5")
    wanted = [s for pair in EMNIST_FILES.values() for s in pair]
    zpath = folder / "gzip.zip"
    if not zpath.is_file():
        try:
            _download([EMNIST_URL], zpath, expected, progress=True, algorithm=algorithm)
        except DataError as e:
            raise DataError(f"{e}\nOr place {', '.join(w + '.gz' for w in wanted)} in {folder} yourself.") from None
    try:
        with zipfile.ZipFile(zpath) as zf:
            for stem in wanted:
                member = f"gzip/{stem}.gz"
                write_bytes(folder / f"{stem}.gz", zf.read(member))
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{zpath}: not NIST's EMNIST gzip.zip ({e}); delete it and try again") from None


def emnist_to_36(labels: np.ndarray) -> np.ndarray:
    """byclass labels (0-9 digits, 10-35 A-Z, 36-61 a-z) -> 36 case-insensitive classes."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() > 61):
        raise DataError(f"EMNIST byclass labels must be in 0..61, got {labels.min()}..{labels.max()}")
    return np.where(labels >= 36, labels - 26, labels)


@register_dataset(
    "emnist",
    description="EMNIST byclass, merged case-insensitively to 36 classes (0-9, A-Z), 56x56 binary",
    source=f"local DATA_DIR/emnist/emnist-byclass-*-idx*-ubyte(.gz), or NIST's {EMNIST_URL} (MD5 as pinned by torchvision, or a SHA-256 you give)",
    sizes="814,255 images, 36 classes; 697,932 train / 116,323 test (resized 28 -> 56, binarised)",
)
def load_emnist(data_dir: Path | None = None, limit: int | None = None, size: int = 56, download: bool = True,
                sha256: str | None = None, threshold: float = 0.5) -> Dataset:
    """EMNIST byclass. Its IDX images are stored transposed (column-major); they are turned upright,
    resized from 28 to ``size`` (bilinear), then binarised at ``threshold``. ``limit`` is applied before."""
    from glyphlab.data.mnist import read_idx

    limit = _check_limit(limit)
    folder = _mnist_dir(data_dir) / "emnist"
    stems = [s for pair in EMNIST_FILES.values() for s in pair]
    if any(_find_emnist(folder, s) is None for s in stems):
        if not download:
            raise DataError(f"EMNIST byclass files not found in {folder}: place "
                            f"{', '.join(s + '.gz' for s in stems)} there, or allow downloading")
        _emnist_download(folder, sha256)
    splits = {}
    for split, (img_stem, lab_stem) in EMNIST_FILES.items():
        img_path, lab_path = _find_emnist(folder, img_stem), _find_emnist(folder, lab_stem)
        labels = emnist_to_36(read_idx(lab_path))
        images = read_idx(img_path)
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"{img_path}: images {images.shape} do not fit labels {labels.shape}")
        keep = limit_indices(labels, len(labels), limit, 0)
        imgs = np.ascontiguousarray(images[keep].transpose(0, 2, 1), dtype=np.float32) / 255.0
        if imgs.shape[1] != size:
            f = size / imgs.shape[1]
            imgs = ndimage.zoom(imgs, (1, f, f), order=1, grid_mode=True, mode="grid-constant")
        splits[split] = Split((imgs > threshold).astype(np.float32), labels[keep])
    return Dataset(name="emnist", classes=list(ALNUM_CLASSES), splits=splits, source=str(folder),
                   meta={"emnist": {"subset": "byclass", "merged": "case-insensitive", "size": size, "limit": limit}})
