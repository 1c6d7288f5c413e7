"""Readers and writers for the file formats handwritten-character data comes in.

* 785-column CSV: 784 pixels then the label in the last column; 784 columns when unlabeled
  (:func:`read_csv785`, :func:`write_csv785`).
* An images CSV (N x 784 pixels) plus a labels CSV (one label per row) (:func:`read_image_csv_pair`,
  :func:`write_image_csv_pair`).
* Larochelle et al.'s ``.amat`` text: whitespace-separated floats in [0, 1], 784 pixels then the label
  (:func:`read_amat`, :func:`write_amat`).
* A folder of image files, one sub-folder per class (:func:`read_image_folder`, :func:`write_image_folder`);
  every file goes through :mod:`glyphlab.data.images`, the one image path that predicting and serving use too.

Pixel ranges of tables are read, not guessed: values all in [0, 1] are used as they are, whole numbers up
to 255 are divided by 255, and anything else (floats above 1, values above 255, negatives) is an error that
names the file, line and column, unless ``pixel_max`` says the range. The range used is returned with the
split (``read_*_range``) and recorded by :func:`load_path` in ``meta["pixel_range"]``.

:func:`load_path` picks the reader from the path. Every malformed input is a :class:`DataError` naming the
file, the 1-based line number and the problem; nothing is ever skipped silently.

Images need not be 28x28: a row of ``s*s`` pixels is read as an ``s x s`` image. ``transposed=True``
transposes each image (some MNIST variants store images column-major); writers take the same option so
that ``write(..., transposed=True)`` then ``read(..., transposed=True)`` round-trips.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

import numpy as np
from PIL import Image

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.images import DecodeLimits, ImageConfig, Preprocessing, prepare_file
from glyphlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Largest image (in pixels) the folder reader decodes: anything bigger is treated as a decompression bomb.
MAX_IMAGE_PIXELS = 50_000_000
# Largest image file (in bytes) the folder reader reads.
MAX_IMAGE_BYTES = 256_000_000
P = ParamSpec("P")


# ------------------------------------------------------------------------------------ text tables


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _cells(line: str, delimiter: str | None) -> list[str]:
    return [c.strip().strip('"') for c in line.split(delimiter)] if delimiter else line.split()


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _looks_like_header(line: str, delimiter: str | None) -> bool:
    cells = _cells(line, delimiter)
    non_numeric = sum(not _is_number(c) for c in cells)
    return non_numeric > len(cells) / 2  # a data row with one bad cell is not a header


def _parse_table(path: Path, delimiter: str | None, header: bool | None) -> tuple[np.ndarray, int]:
    """Parse a numeric table; return (float64 array (rows, cols), 1-based line number of the first row)."""
    lines = _read_lines(path)
    if not lines:
        raise DataError(f"{path}: the file is empty")
    if header is None:
        header = _looks_like_header(lines[0], delimiter)
    first = 2 if header else 1
    body = lines[1:] if header else lines
    if not body:
        raise DataError(f"{path}: no data rows (only a header line)")
    for i, line in enumerate(body):
        if not line.strip():
            raise DataError(f"{path}: line {i + first}: empty line inside the data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.loadtxt(body, delimiter=delimiter, dtype=np.float64, ndmin=2, comments=None)
    except (ValueError, UserWarning) as e:
        _locate_bad_line(path, body, first, delimiter)
        raise DataError(f"{path}: cannot parse ({e})") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: line {r + first}, column {c + 1}: value {body[r] and arr[r, c]} is not a finite number"
        )
    return arr, first


def _locate_bad_line(path: Path, body: list[str], first: int, delimiter: str | None) -> None:
    ncols = len(_cells(body[0], delimiter))
    for i, line in enumerate(body):
        cells = _cells(line, delimiter)
        if len(cells) != ncols:
            raise DataError(
                f"{path}: line {i + first}: expected {ncols} columns (as on line {first}), got {len(cells)}"
            )
        for j, cell in enumerate(cells):
            if not _is_number(cell):
                shown = cell if len(cell) <= 20 else cell[:20] + "..."
                raise DataError(f"{path}: line {i + first}, column {j + 1}: non-numeric cell {shown!r}")


def _side(n_pixels: int, path: Path, what: str) -> int:
    side = math.isqrt(n_pixels)
    if side * side != n_pixels or side == 0:
        raise DataError(f"{path}: {n_pixels} {what} is not a square image (expected e.g. 784 = 28x28)")
    return side


@dataclass(frozen=True)
class PixelRange:
    """The range a table's pixels were read in: divided by ``pixel_max`` into [0, 1]."""

    pixel_max: float
    detected: bool  #: found from the data (True) or given as ``pixel_max`` (False)

    def to_dict(self) -> dict[str, Any]:
        return {"pixel_max": self.pixel_max, "detected": self.detected, "text": self.describe()}

    def describe(self) -> str:
        how = "detected" if self.detected else "pixel_max given"
        if self.pixel_max == 1:
            return f"pixels in [0, 1], used as read ({how})"
        top = f"{self.pixel_max:g}"
        return f"pixels 0-{top}, divided by {top} ({how})"


_RANGE_HELP = (
    "pixels must be in [0, 1] or whole numbers 0-255; pass --dataset-option pixel_max=MAX "
    "(Python: pixel_max=MAX) if they run from 0 to MAX"
)
_CHUNK_ROWS = 4096  # rows checked at a time, so a 70,000-row table needs no second full-size temporary


def _first_bad(pixels: np.ndarray, test) -> tuple[int, int] | None:
    for start in range(0, len(pixels), _CHUNK_ROWS):
        bad = test(pixels[start : start + _CHUNK_ROWS])
        if bad.any():
            r, c = np.argwhere(bad)[0]
            return int(r) + start, int(c)
    return None


def _pixel_range(pixels: np.ndarray, path: Path, first: int, col0: int, pixel_max: float | None) -> PixelRange:
    """Check the pixels against ``pixel_max``, or detect the range: max <= 1 is [0, 1]; whole numbers up to 255
    are 0-255; anything else (floats above 1, values above 255, negatives) is an error naming the first cell."""

    def where(rc):
        return f"{path}: line {rc[0] + first}, column {rc[1] + col0 + 1}"

    if pixel_max is not None:
        if not pixel_max > 0:
            raise DataError(f"{path}: pixel_max must be a positive number, got {pixel_max!r}")
        bad = _first_bad(pixels, lambda p: (p < 0) | (p > pixel_max))
        if bad:
            raise DataError(f"{where(bad)}: pixel value {pixels[bad]:g} is outside [0, {pixel_max:g}] (pixel_max)")
        return PixelRange(float(pixel_max), detected=False)
    bad = _first_bad(pixels, lambda p: p < 0)
    if bad:
        raise DataError(f"{where(bad)}: pixel value {pixels[bad]:g} is negative; {_RANGE_HELP}")
    top = float(pixels.max()) if pixels.size else 0.0
    if top <= 1.0:
        return PixelRange(1.0, detected=True)
    bad = _first_bad(pixels, lambda p: (p > 255) | (p != np.round(p)))
    if bad:
        # which reading was meant? mostly fractional values are [0, 1] floats (the offender is the first value
        # above 1); mostly whole numbers are 0-255 (the offender is the first fraction or value above 255)
        nonzero = pixels[pixels > 0]
        floats = np.count_nonzero(nonzero != np.round(nonzero)) > len(nonzero) / 2
        if floats:
            bad = _first_bad(pixels, lambda p: p > 1)
            why = "is above 1, but the file's fractional values are not whole numbers 0-255 either"
        else:
            why = (
                f"is not a whole number 0-255, and the file's values go up to {top:g}, so they are not in [0, 1] either"
            )
        raise DataError(f"{where(bad)}: pixel value {pixels[bad]:g} fits no pixel range: it {why}; " + _RANGE_HELP)
    return PixelRange(255.0, detected=True)


def _check_labels(
    labels: np.ndarray, path: Path, first: int, column: int | None, classes: Sequence[str] | None
) -> np.ndarray:
    where = (lambda r: f"line {r + first}, column {column}") if column else (lambda r: f"line {r + first}")
    frac = labels != np.round(labels)
    if frac.any():
        r = int(np.argmax(frac))
        raise DataError(f"{path}: {where(r)}: label {labels[r]:g} is not a whole number")
    bad = labels < 0
    if classes is not None:
        bad |= labels >= len(classes)
    if bad.any():
        r = int(np.argmax(bad))
        allowed = f"0..{len(classes) - 1} ({len(classes)} classes)" if classes is not None else ">= 0"
        raise DataError(f"{path}: {where(r)}: label {labels[r]:g} is outside the class list (allowed: {allowed})")
    return labels.astype(np.int64)


def _images_from_rows(pixels: np.ndarray, path: Path, pixel_max: float, transposed: bool) -> np.ndarray:
    side = _side(pixels.shape[1], path, "pixel columns")
    images = (pixels / pixel_max).astype(np.float32).reshape(-1, side, side)
    return np.ascontiguousarray(images.transpose(0, 2, 1)) if transposed else images


def _rows_from_images(images: np.ndarray, pixel_max: float, transposed: bool) -> np.ndarray:
    imgs = images.transpose(0, 2, 1) if transposed else images
    return np.asarray(imgs, dtype=np.float64).reshape(len(imgs), -1) * pixel_max


def _table_split(
    path: Path,
    delimiter: str | None,
    header: bool | None,
    labeled: bool | None,
    label_column: int,
    pixel_max: float | None,
    transposed: bool,
    classes: Sequence[str] | None,
) -> tuple[Split, PixelRange]:
    arr, first = _parse_table(path, delimiter, header)
    ncols = arr.shape[1]
    if labeled is None:  # s*s columns: unlabeled; s*s + 1: labeled (both cannot be squares)
        labeled = math.isqrt(ncols) ** 2 != ncols
    if labeled:
        if ncols < 2:
            raise DataError(f"{path}: a labeled file needs pixel columns and a label column, got {ncols} column")
        col = label_column % ncols
        labels = _check_labels(arr[:, col], path, first, col + 1, classes)
        pixels = np.delete(arr, col, axis=1)
        col0 = 1 if col == 0 else 0
    else:
        labels, pixels, col0 = None, arr, 0
    rng = _pixel_range(pixels, path, first, col0, pixel_max)
    return Split(_images_from_rows(pixels, path, rng.pixel_max, transposed), labels), rng


def _split_only(read_range: Callable[P, tuple[Split, PixelRange]], name: str) -> Callable[P, Split]:
    """The reader ``name`` that returns the split alone: one signature per format, declared once on the
    ``*_range`` reader that :func:`load_path` uses (it records the range), so the two cannot drift apart."""

    def read(*args: P.args, **kwargs: P.kwargs) -> Split:
        return read_range(*args, **kwargs)[0]

    read.__name__ = read.__qualname__ = name
    read.__doc__ = f"The split alone, read as :func:`{read_range.__name__}` reads it (see there for the options)."
    read.__signature__ = inspect.signature(read_range).replace(return_annotation="Split")  # type: ignore[attr-defined]
    return read


# ------------------------------------------------------------------------------------------ CSV 785


def read_csv785_range(
    path: str | Path,
    *,
    transposed: bool = False,
    header: bool | None = None,
    labeled: bool | None = None,
    label_column: int = -1,
    pixel_max: float | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[Split, PixelRange]:
    """Read a pixel CSV: ``s*s`` pixel columns plus, when labeled, a label column; return the split and the
    pixel range it was read in (:func:`read_csv785` returns the split alone).

    ``labeled=None`` infers it from the column count (785 labeled, 784 unlabeled); ``header=None`` detects a
    header row; ``label_column`` is -1 (last, e.g. mnist-back-rand) or 0 (first, Kaggle style).
    ``pixel_max=None`` detects the pixel range.
    """
    return _table_split(Path(path), ",", header, labeled, label_column, pixel_max, transposed, classes)


read_csv785 = _split_only(read_csv785_range, "read_csv785")


def write_csv785(
    path: str | Path,
    split: Split,
    *,
    transposed: bool = False,
    header: bool = False,
    label_column: int = -1,
    pixel_max: float = 255.0,
) -> Path:
    """Write a split as a pixel CSV, pixels rounded to integers 0..pixel_max; no label column if unlabeled."""
    path = Path(path)
    rows = np.rint(_rows_from_images(split.images, pixel_max, transposed))
    names = [f"pixel{i}" for i in range(rows.shape[1])]
    if split.labels is not None:
        col = 0 if label_column == 0 else rows.shape[1]
        rows = np.insert(rows, col, split.labels, axis=1)
        names.insert(col, "label")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=",".join(names) if header else "", comments="")
    return path


# ------------------------------------------------------------------------------ images + labels pair


def read_image_csv_pair_range(
    images_path: str | Path,
    labels_path: str | Path,
    *,
    transposed: bool = False,
    header: bool | None = None,
    pixel_max: float | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[Split, PixelRange]:
    """Read an images CSV (N rows x s*s pixels; range detected unless ``pixel_max``) and a labels CSV; return
    the split and the pixel range the images were read in (:func:`read_image_csv_pair` returns the split alone).
    """
    images_path, labels_path = Path(images_path), Path(labels_path)
    split, rng = _table_split(images_path, ",", header, False, -1, pixel_max, transposed, None)
    arr, first = _parse_table(labels_path, ",", header)
    if arr.shape[1] != 1:
        raise DataError(f"{labels_path}: line {first}: expected one label per row, got {arr.shape[1]} columns")
    if len(arr) != len(split):
        raise DataError(f"{labels_path} has {len(arr)} labels but {images_path} has {len(split)} images")
    labels = _check_labels(arr[:, 0], labels_path, first, None, classes)
    return Split(split.images, labels), rng


read_image_csv_pair = _split_only(read_image_csv_pair_range, "read_image_csv_pair")


def write_image_csv_pair(
    images_path: str | Path,
    labels_path: str | Path,
    split: Split,
    *,
    transposed: bool = False,
    header: bool = False,
    pixel_max: float = 255.0,
) -> None:
    if split.labels is None:
        raise DataError("cannot write a labels file for an unlabeled split")
    write_csv785(images_path, Split(split.images, None), transposed=transposed, header=header, pixel_max=pixel_max)
    Path(labels_path).parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(labels_path, split.labels, fmt="%d", header="label" if header else "", comments="")


# --------------------------------------------------------------------------------------------- amat


def read_amat_range(
    path: str | Path,
    *,
    transposed: bool = False,
    labeled: bool | None = None,
    pixel_max: float | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[Split, PixelRange]:
    """Read a Larochelle ``.amat`` file: per line ``s*s`` floats in [0, 1], then the label (if labeled); return
    the split and the pixel range it was read in (:func:`read_amat` returns the split alone).

    The mnist-rotation(-back-image) files store each image column-major: pass ``transposed=True``. The pixel
    range is detected like a CSV's unless ``pixel_max`` is given.
    """
    return _table_split(Path(path), None, False, labeled, -1, pixel_max, transposed, classes)


read_amat = _split_only(read_amat_range, "read_amat")


def write_amat(path: str | Path, split: Split, *, transposed: bool = False) -> Path:
    path = Path(path)
    rows = _rows_from_images(split.images, 1.0, transposed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = ["%.9g"] * rows.shape[1]  # 9 significant digits: float32 values round-trip exactly
    if split.labels is not None:
        rows = np.column_stack([rows, split.labels])
        fmt.append("%d")
    np.savetxt(path, rows, fmt=fmt, delimiter=" ")
    return path


# ------------------------------------------------------------------------------------- image folder


IMAGE_OPTIONS = (
    "preprocess",
    "size",
    "polarity",
    "invert",
    "normalise_contrast",
    "crop_to_ink",
    "box",
    "keep_aspect",
    "centre_by_mass",
    "resample",
)


def image_folder_files(root: Path) -> tuple[list[Path], list[tuple[Path, int]], list[str]]:
    """The class folders of ``root`` (sorted), every (image file, label) in reading order, and the ignored files.

    The order is the folder reader's: classes by name, files by path within each class; callers that list
    per-file results (``glyphlab evaluate`` on a folder, tests) rely on it.
    """
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if not class_dirs:
        raise DataError(
            f"{root}: no class sub-folders; put the images of each class in their own "
            f"sub-folder (e.g. {root}/A/img1.png, {root}/B/img2.png)"
        )
    found: list[tuple[Path, int]] = []
    ignored: list[str] = []
    for label, d in enumerate(class_dirs):
        used = 0
        for f in sorted(p for p in d.rglob("*") if p.is_file()):
            if any(part.startswith(".") for part in f.relative_to(d).parts) or f.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(str(f.relative_to(root)))
                continue
            found.append((f, label))
            used += 1
        if used == 0:
            raise DataError(f"{d}: class folder '{d.name}' has no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
    return class_dirs, found, ignored


def folder_limits() -> DecodeLimits:
    """The decoding limits for a user's own image files (a dataset folder): far above an upload's."""
    return DecodeLimits(
        max_bytes=MAX_IMAGE_BYTES, max_pixels=min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)
    )


def read_image_folder(
    path: str | Path,
    size: int | Sequence[int] = (28, 28),
    *,
    preprocess: str = "mnist",
    config: ImageConfig | None = None,
    limit: int | None = None,
    seed: int = 0,
    name: str | None = None,
    **image_options: Any,
) -> Dataset:
    """Read ``path/<class>/<image>`` files into a Dataset with one ``train`` split.

    Every file goes through :func:`glyphlab.data.images.prepare_image` with one :class:`ImageConfig`:
    ``config``, or the ``preprocess`` preset (``mnist``: polarity detected, cropped to the ink, fitted into a
    20 px box and centred by mass in 28x28, scaled to ``size``; ``as-given``: resized only) with any of its
    fields changed by keyword (``polarity``, ``crop_to_ink``, ``box``, ``centre_by_mass``, ``resample``,
    ``keep_aspect``, ``normalise_contrast``; ``invert=True`` is ``polarity="dark-on-light"``). The config is
    recorded in ``meta["preprocessing"]``, so a model trained on the folder is served the same way.

    Class names are the sub-folder names, sorted. Hidden files and files without an image suffix
    (``IMAGE_SUFFIXES``) are ignored and counted in ``meta``; a corrupt image is an error; blank images (no
    ink) are kept and listed. ``limit`` keeps that many images (stratified by class, seeded) before decoding.
    """
    from glyphlab.data.studies.cache import check_limit, limit_indices

    root = Path(path)
    if config is None:
        config = ImageConfig.from_options(preprocess, size=size, **image_options)
    elif image_options:
        raise DataError(f"pass either config or image options ({', '.join(image_options)}), not both")
    elif isinstance(config, Mapping):
        config = ImageConfig.from_dict(config)
    elif not isinstance(config, ImageConfig):
        raise DataError(f"config must be an ImageConfig or its to_dict(), got {config!r}")
    class_dirs, found, ignored = image_folder_files(root)
    limit = check_limit(limit)
    all_labels = np.asarray([lab for _, lab in found], dtype=np.int64)
    keep = limit_indices(all_labels, len(found), limit, seed)
    limits = folder_limits()
    images, n_inverted, blank = [], 0, []
    for i in keep:
        f = found[i][0]
        prepared = prepare_file(f, config, limits)
        images.append(prepared.pixels)
        n_inverted += prepared.inverted
        if prepared.no_ink:
            blank.append(str(f.relative_to(root)))
    return Dataset(
        name=name or root.name,
        classes=[d.name for d in class_dirs],
        splits={"train": Split(np.stack(images), all_labels[keep])},
        source=str(root),
        meta={
            "image_folder": {
                "size": list(config.canvas),
                "inverted": n_inverted,
                "ignored_files": ignored,
                "blank_files": blank,
                "limit": limit,
            },
            "preprocessing": Preprocessing.files(config).to_dict(),
        },
    )


def write_image_folder(path: str | Path, split: Split, classes: Sequence[str], *, ink_dark: bool = False) -> Path:
    """Write each image as ``path/<class>/<index>.png`` (8-bit grayscale).

    ``ink_dark=True`` writes dark ink on white paper; :func:`read_image_folder` reads either back.
    """
    from PIL import Image

    if split.labels is None:
        raise DataError("cannot write an unlabeled split as a class-per-folder tree")
    root = Path(path)
    for c in classes:
        if not c or "/" in c or "\\" in c or c in (".", ".."):
            raise DataError(f"class name {c!r} cannot be used as a folder name")
    width = max(6, len(str(len(split))))
    pixels = np.rint(np.clip(split.images, 0, 1) * 255).astype(np.uint8)
    if ink_dark:
        pixels = 255 - pixels
    for i, (img, lab) in enumerate(zip(pixels, split.labels)):
        d = root / classes[int(lab)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(d / f"{i:0{width}d}.png")
    return root


# ------------------------------------------------------------------------------------------ dispatch


def _default_classes(splits: dict[str, Split]) -> list[str]:
    top = max((int(s.labels.max()) for s in splits.values() if s.labels is not None and len(s.labels)), default=-1)
    return [str(i) for i in range(max(top + 1, 1))]


#: the options each kind of path takes (``--dataset-option KEY=VALUE``); anything else is refused by name
FOLDER_OPTIONS = ("limit", *IMAGE_OPTIONS, "config")
CSV_OPTIONS = ("limit", "transposed", "header", "labeled", "label_column", "pixel_max", "labels_path")
AMAT_OPTIONS = ("limit", "transposed", "labeled", "pixel_max")
MNIST_FOLDER_OPTIONS = ("limit",)


def _check_options(path: Path, kind: str, opts: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise DataError(
            f"{path}: {kind} take(s) no option {', '.join(map(repr, unknown))}; the options are: {', '.join(allowed)}"
        )


def _read_file(path: Path, opts: dict[str, Any]) -> tuple[Split, PixelRange]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        _check_options(path, "CSV files", opts, CSV_OPTIONS + ("classes",))
        labels_path = opts.pop("labels_path", None)
        if labels_path is not None:
            return read_image_csv_pair_range(path, labels_path, **opts)
        return read_csv785_range(path, **opts)
    if suffix == ".amat":
        _check_options(path, ".amat files", opts, AMAT_OPTIONS + ("classes",))
        return read_amat_range(path, **opts)
    raise DataError(f"{path}: unknown data file type '{path.suffix}' (expected .csv, .amat or a folder)")


def load_path(
    path: str | Path,
    *,
    test_path: str | Path | None = None,
    classes: Sequence[str] | None = None,
    name: str | None = None,
    limit: int | None = None,
    **opts: Any,
) -> Dataset:
    """Load a dataset from a path, choosing the reader from what it is.

    * a folder holding the four MNIST IDX files (directly or in ``mnist/``): MNIST, not downloaded;
    * another folder: :func:`read_image_folder` (options :data:`FOLDER_OPTIONS`);
    * ``.csv``: :func:`read_csv785`, or :func:`read_image_csv_pair` with ``labels_path=...``
      (options :data:`CSV_OPTIONS`);
    * ``.amat``: :func:`read_amat` (options :data:`AMAT_OPTIONS`).

    For files the result has a ``train`` split and, with ``test_path`` (same format, may be unlabeled), a
    ``test`` split; the pixel range each file was read in is ``meta["pixel_range"]``. ``limit`` keeps that
    many images per split (stratified by label, seeded). An option the reader does not take is an error.
    """
    from glyphlab.data.studies.cache import check_limit, limit_indices

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    limit = check_limit(limit)
    if path.is_dir():
        from glyphlab.data import mnist

        if all(mnist._find(path, stem) for stem in mnist.CHECKSUMS):
            _check_options(path, "MNIST folders", opts, MNIST_FOLDER_OPTIONS)
            from glyphlab.data.builtin import load_mnist_dataset

            return load_mnist_dataset(path, download=False, limit=limit)
        if classes is not None:
            raise DataError(f"{path}: a folder's classes are its sub-folder names; do not pass classes")
        _check_options(path, "image folders", opts, FOLDER_OPTIONS)
        return read_image_folder(path, name=name, limit=limit, **opts)
    file_opts = dict(opts)
    if classes is not None:
        file_opts["classes"] = classes
    read: dict[str, tuple[Split, PixelRange]] = {"train": _read_file(path, dict(file_opts))}
    if test_path is not None:
        test_opts = {k: v for k, v in file_opts.items() if k != "labels_path"}
        read["test"] = _read_file(Path(test_path), test_opts)
        if read["test"][0].images.shape[1:] != read["train"][0].images.shape[1:]:
            raise DataError(
                f"{test_path}: images of shape {read['test'][0].images.shape[1:]} do not match "
                f"{path} ({read['train'][0].images.shape[1:]})"
            )
    splits = {k: s.take(limit_indices(s.labels, len(s), limit, 0)) if limit else s for k, (s, _) in read.items()}
    ranges = {k: r.to_dict() for k, (_, r) in read.items()}
    return Dataset(
        name=name or path.stem,
        classes=list(classes) if classes is not None else _default_classes(splits),
        splits=splits,
        source=str(path) + (f" + {test_path}" if test_path else ""),
        meta={
            "format": path.suffix.lower().lstrip("."),
            "read_options": {k: str(v) for k, v in {**opts, "limit": limit}.items() if v is not None},
            "pixel_range": ranges,
        },
    )
