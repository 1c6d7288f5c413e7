"""Readers and writers for the file formats handwritten-character data comes in.

* 785-column CSV: 784 pixels (0-255) then the label in the last column; 784 columns when unlabeled
  (:func:`read_csv785`, :func:`write_csv785`).
* An images CSV (N x 784 pixels) plus a labels CSV (one label per row) (:func:`read_image_csv_pair`,
  :func:`write_image_csv_pair`).
* Larochelle et al.'s ``.amat`` text: whitespace-separated floats in [0, 1], 784 pixels then the label
  (:func:`read_amat`, :func:`write_amat`).
* A folder of image files, one sub-folder per class (:func:`read_image_folder`, :func:`write_image_folder`).

:func:`load_path` picks the reader from the path. Every malformed input is a :class:`DataError` naming the
file, the 1-based line number and the problem; nothing is ever skipped silently.

Images need not be 28x28: a row of ``s*s`` pixels is read as an ``s x s`` image. ``transposed=True``
transposes each image (some MNIST variants store images column-major); writers take the same option so
that ``write(..., transposed=True)`` then ``read(..., transposed=True)`` round-trips.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Largest image (in pixels) the folder reader decodes: anything bigger is treated as a decompression bomb.
MAX_IMAGE_PIXELS = 50_000_000


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
        raise DataError(f"{path}: line {r + first}, column {c + 1}: value {body[r] and arr[r, c]} is not a "
                        "finite number")
    return arr, first


def _locate_bad_line(path: Path, body: list[str], first: int, delimiter: str | None) -> None:
    ncols = len(_cells(body[0], delimiter))
    for i, line in enumerate(body):
        cells = _cells(line, delimiter)
        if len(cells) != ncols:
            raise DataError(f"{path}: line {i + first}: expected {ncols} columns (as on line {first}), "
                            f"got {len(cells)}")
        for j, cell in enumerate(cells):
            if not _is_number(cell):
                shown = cell if len(cell) <= 20 else cell[:20] + "..."
                raise DataError(f"{path}: line {i + first}, column {j + 1}: non-numeric cell {shown!r}")


def _side(n_pixels: int, path: Path, what: str) -> int:
    side = math.isqrt(n_pixels)
    if side * side != n_pixels or side == 0:
        raise DataError(f"{path}: {n_pixels} {what} is not a square image (expected e.g. 784 = 28x28)")
    return side


def _check_pixels(pixels: np.ndarray, path: Path, first: int, col0: int, pixel_max: float) -> None:
    bad = (pixels < 0) | (pixels > pixel_max)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}: line {r + first}, column {c + col0 + 1}: pixel value {pixels[r, c]:g} is "
                        f"outside [0, {pixel_max:g}]")


def _check_labels(labels: np.ndarray, path: Path, first: int, column: int | None,
                  classes: Sequence[str] | None) -> np.ndarray:
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


def _table_split(path: Path, delimiter: str | None, header: bool | None, labeled: bool | None,
                 label_column: int, pixel_max: float, transposed: bool,
                 classes: Sequence[str] | None) -> Split:
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
    _check_pixels(pixels, path, first, col0, pixel_max)
    return Split(_images_from_rows(pixels, path, pixel_max, transposed), labels)


# ------------------------------------------------------------------------------------------ CSV 785


def read_csv785(path: str | Path, *, transposed: bool = False, header: bool | None = None,
                labeled: bool | None = None, label_column: int = -1, pixel_max: float = 255.0,
                classes: Sequence[str] | None = None) -> Split:
    """Read a pixel CSV: ``s*s`` pixel columns (0..pixel_max) plus, when labeled, a label column.

    ``labeled=None`` infers it from the column count (785 labeled, 784 unlabeled); ``header=None`` detects a
    header row; ``label_column`` is -1 (last, e.g. mnist-back-rand) or 0 (first, Kaggle style).
    """
    return _table_split(Path(path), ",", header, labeled, label_column, pixel_max, transposed, classes)


def write_csv785(path: str | Path, split: Split, *, transposed: bool = False, header: bool = False,
                 label_column: int = -1, pixel_max: float = 255.0) -> Path:
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


def read_image_csv_pair(images_path: str | Path, labels_path: str | Path, *, transposed: bool = False,
                        header: bool | None = None, pixel_max: float = 255.0,
                        classes: Sequence[str] | None = None) -> Split:
    """Read an images CSV (N rows x s*s pixels) and a labels CSV (one label per row)."""
    images_path, labels_path = Path(images_path), Path(labels_path)
    split = _table_split(images_path, ",", header, False, -1, pixel_max, transposed, None)
    arr, first = _parse_table(labels_path, ",", header)
    if arr.shape[1] != 1:
        raise DataError(f"{labels_path}: line {first}: expected one label per row, got {arr.shape[1]} columns")
    if len(arr) != len(split):
        raise DataError(f"{labels_path} has {len(arr)} labels but {images_path} has {len(split)} images")
    labels = _check_labels(arr[:, 0], labels_path, first, None, classes)
    return Split(split.images, labels)


def write_image_csv_pair(images_path: str | Path, labels_path: str | Path, split: Split, *,
                         transposed: bool = False, header: bool = False, pixel_max: float = 255.0) -> None:
    if split.labels is None:
        raise DataError("cannot write a labels file for an unlabeled split")
    write_csv785(images_path, Split(split.images, None), transposed=transposed, header=header,
                 pixel_max=pixel_max)
    Path(labels_path).parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(labels_path, split.labels, fmt="%d", header="label" if header else "", comments="")


# --------------------------------------------------------------------------------------------- amat


def read_amat(path: str | Path, *, transposed: bool = False, labeled: bool | None = None,
              classes: Sequence[str] | None = None) -> Split:
    """Read a Larochelle ``.amat`` file: per line ``s*s`` floats in [0, 1], then the label (if labeled).

    The mnist-rotation(-back-image) files store each image column-major: pass ``transposed=True``.
    """
    return _table_split(Path(path), None, False, labeled, -1, 1.0, transposed, classes)


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


def _load_image(path: Path) -> np.ndarray:
    """Decode one image file to a float32 grayscale array in [0, 1] (as stored: not yet inverted)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    limit = min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > limit:
                    raise DataError(f"{path}: image of {w}x{h} pixels is larger than the {limit:,}-pixel limit "
                                    "(possible decompression bomb)")
                img.seek(0)
                img = ImageOps.exif_transpose(img) or img
                img.load()
                mode = img.mode
                if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    arr = np.asarray(Image.alpha_composite(paper, rgba).convert("L"), dtype=np.float32) / 255
                elif mode.startswith("I;16"):
                    arr = np.asarray(img, dtype=np.float32) / 65535
                elif mode in ("I", "F"):
                    arr = np.asarray(img, dtype=np.float32)
                    top = float(arr.max()) if arr.size else 1.0
                    arr = arr / (65535 if top > 255 else 255 if top > 1 else 1)
                else:
                    arr = np.asarray(img.convert("L"), dtype=np.float32) / 255
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: refused as a possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (corrupt, or not an image format Pillow knows)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(f"{path}: corrupt or truncated image ({e})") from None
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"{path}: image has no pixels")
    return np.clip(arr, 0.0, 1.0)


def _border(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])


def prepare_image(arr: np.ndarray, size: tuple[int, int] = (28, 28), invert: bool | None = None,
                  keep_aspect: bool = True) -> tuple[np.ndarray, bool]:
    """Grayscale [0,1] array -> ink-is-1 image of ``size`` (rows, cols). Returns (image, was_inverted).

    ``invert=None`` inverts when the median border pixel is > 0.5 (dark ink on light paper).
    ``keep_aspect`` pads to a square with background before resizing, so glyphs are not stretched.
    """
    from PIL import Image

    inverted = bool(np.median(_border(arr)) > 0.5) if invert is None else bool(invert)
    if inverted:
        arr = 1.0 - arr
    h, w = arr.shape
    if keep_aspect and h != w:
        side = max(h, w)
        sq = np.zeros((side, side), dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        sq[top:top + h, left:left + w] = arr
        arr = sq
    rows, cols = size
    if arr.shape != (rows, cols):
        shrinking = arr.shape[0] > rows or arr.shape[1] > cols
        method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        arr = np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((cols, rows), method))
    return np.clip(arr, 0.0, 1.0).astype(np.float32), inverted


def read_image_folder(path: str | Path, size: tuple[int, int] = (28, 28), *, invert: bool | None = None,
                      keep_aspect: bool = True, name: str | None = None) -> Dataset:
    """Read ``path/<class>/<image>`` files into a Dataset with one ``train`` split.

    Class names are the sub-folder names, sorted. Hidden files and files without an image suffix
    (``IMAGE_SUFFIXES``) are ignored and counted in ``meta["ignored_files"]``; a corrupt image is an error.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                        key=lambda d: d.name)
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders; put the images of each class in their own "
                        "sub-folder (e.g. {root}/A/img1.png, {root}/B/img2.png)")
    images, labels, ignored, n_inverted = [], [], [], 0
    for label, d in enumerate(class_dirs):
        files = sorted(p for p in d.rglob("*") if p.is_file())
        used = 0
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(d).parts) or \
                    f.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(str(f.relative_to(root)))
                continue
            img, inv = prepare_image(_load_image(f), size, invert, keep_aspect)
            images.append(img)
            labels.append(label)
            n_inverted += inv
            used += 1
        if used == 0:
            raise DataError(f"{d}: class folder '{d.name}' has no image files "
                            f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    return Dataset(
        name=name or root.name,
        classes=[d.name for d in class_dirs],
        splits={"train": Split(np.stack(images), np.asarray(labels, dtype=np.int64))},
        source=str(root),
        meta={"image_folder": {"size": list(size), "inverted": n_inverted, "ignored_files": ignored}},
    )


def write_image_folder(path: str | Path, split: Split, classes: Sequence[str], *,
                       ink_dark: bool = False) -> Path:
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
    top = max((int(s.labels.max()) for s in splits.values() if s.labels is not None and len(s.labels)),
              default=-1)
    return [str(i) for i in range(max(top + 1, 1))]


def _read_file(path: Path, opts: dict[str, Any]) -> Split:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        labels_path = opts.pop("labels_path", None)
        if labels_path is not None:
            return read_image_csv_pair(path, labels_path, **opts)
        return read_csv785(path, **opts)
    if suffix == ".amat":
        return read_amat(path, **opts)
    raise DataError(f"{path}: unknown data file type '{path.suffix}' (expected .csv, .amat or a folder)")


def load_path(path: str | Path, *, test_path: str | Path | None = None,
              classes: Sequence[str] | None = None, name: str | None = None, **opts: Any) -> Dataset:
    """Load a dataset from a path, choosing the reader from what it is.

    * a folder holding the four MNIST IDX files (directly or in ``mnist/``): MNIST, not downloaded;
    * another folder: :func:`read_image_folder` (options ``size``, ``invert``, ``keep_aspect``);
    * ``.csv``: :func:`read_csv785`, or :func:`read_image_csv_pair` with ``labels_path=...``;
    * ``.amat``: :func:`read_amat`.

    For files the result has a ``train`` split and, with ``test_path`` (same format, may be unlabeled), a
    ``test`` split. Other options go to the reader (e.g. ``transposed=True``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        from glyphlab.data import mnist

        if all(mnist._find(path, stem) for stem in mnist.CHECKSUMS):
            return mnist.load_mnist(path, download=False, progress=False)
        if classes is not None:
            raise DataError(f"{path}: a folder's classes are its sub-folder names; do not pass classes")
        return read_image_folder(path, name=name, **opts)
    file_opts = dict(opts)
    if classes is not None:
        file_opts["classes"] = classes
    splits = {"train": _read_file(path, dict(file_opts))}
    if test_path is not None:
        test_opts = {k: v for k, v in file_opts.items() if k != "labels_path"}
        splits["test"] = _read_file(Path(test_path), test_opts)
        if splits["test"].images.shape[1:] != splits["train"].images.shape[1:]:
            raise DataError(f"{test_path}: images of shape {splits['test'].images.shape[1:]} do not match "
                            f"{path} ({splits['train'].images.shape[1:]})")
    return Dataset(
        name=name or path.stem,
        classes=list(classes) if classes is not None else _default_classes(splits),
        splits=splits,
        source=str(path) + (f" + {test_path}" if test_path else ""),
        meta={"format": path.suffix.lower().lstrip("."), "read_options": {k: str(v) for k, v in opts.items()}},
    )
