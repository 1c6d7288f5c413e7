"""MNIST from the canonical IDX files, downloaded once and verified on every use.

Files are looked for in ``data_dir`` and ``data_dir/"mnist"`` (gzipped or not). Missing files are
downloaded from each mirror in turn into a temporary file in the destination folder, verified, and only
then moved into place (:func:`glyphlab.fileio.atomic_path`), so a partial or corrupt download never lands in the cache.

Checksums are SHA-256 digests of the *uncompressed* IDX bytes: gzip output depends on the compressor
(and its timestamp), so the same data compressed by two tools differs; the uncompressed bytes do not.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.errors import DataError
from glyphlab.events import TaskAdvanced, TaskEnded, TaskStarted, emit, watched
from glyphlab.fileio import atomic_path

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# SHA-256 of the uncompressed IDX files (the bytes inside the .gz).
CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type byte -> numpy dtype (multi-byte types are big-endian).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {np.dtype(v).newbyteorder("=").str if v.itemsize > 1 else v.str: k for k, v in _IDX_DTYPES.items()}

_CHUNK = 1 << 20
_TIMEOUT_S = 60


# --------------------------------------------------------------------------------------- IDX format


def _open(path: Path):
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_bytes(path: Path) -> bytes:
    try:
        with _open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"{path}: cannot decompress ({e}); the file is corrupt or truncated — delete it and download it again"
        ) from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes: magic ``0x00 0x00 <type> <ndim>``, ndim big-endian uint32 dims, then the data."""
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes, the header needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: not an IDX file (bad magic number 0x{data[:4].hex()}; "
            "expected 0x0000 then type and dimension bytes)"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{name}: unknown IDX data type 0x{code:02x} in magic number 0x{data[:4].hex()}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, needs {header} for {ndim} dims)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise DataError(
            f"{name}: truncated IDX file: header says {dims} of {dtype.name} "
            f"({expected} data bytes) but only {got} are present"
        )
    if got > expected:
        raise DataError(f"{name}: IDX file has {got - expected} unexpected trailing bytes after {dims} of {dtype.name}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a native-endian numpy array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX; gzipped when the name ends with ``.gz`` (mtime 0, so output is reproducible)."""
    path = Path(path)
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=").str if arr.dtype.itemsize > 1 else arr.dtype.str
    if key not in _DTYPE_CODES:
        raise DataError(f"IDX cannot store dtype {arr.dtype} (use uint8, int8, int16, int32, float32, float64)")
    code = _DTYPE_CODES[key]
    if arr.ndim == 0 or arr.ndim > 255:
        raise DataError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    payload = (
        bytes([0, 0, code, arr.ndim])
        + np.asarray(arr.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(filename=path.stem, mode="wb", fileobj=raw, mtime=0) as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


# --------------------------------------------------------------------------------- verify, download


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the uncompressed content of ``path`` (decompressed on the fly when gzipped)."""
    path = Path(path)
    h = hashlib.sha256()
    try:
        with _open(path) as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot decompress ({e}); the file is corrupt or truncated") from None
    return h.hexdigest()


def find_idx_file(stem: str, folders: Iterable[Path]) -> Path | None:
    """The first ``stem.gz`` or ``stem`` found in ``folders``, in order."""
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _find(data_dir: Path, stem: str) -> Path | None:
    return find_idx_file(stem, (data_dir, data_dir / "mnist"))


def _raw_digest(path: Path, algorithm: str) -> str:
    """Digest of the file's bytes as stored (no decompression): for archives pinned by their own digest."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_checked(urls: Iterable[str], dest: Path, expected: str, progress: bool, algorithm: str = "sha256") -> None:
    """Try each URL; land the file at ``dest`` only once its checksum matches.

    ``algorithm="sha256"`` checks the uncompressed content (:func:`file_sha256`, as MNIST's digests are
    pinned); another name (``"md5"``) checks the raw bytes with that hashlib algorithm."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            with atomic_path(dest) as tmp:  # an exception inside leaves dest as it was
                with open(tmp, "wb") as out:
                    _fetch(url, out, progress, dest.name)
                got = file_sha256(tmp) if algorithm == "sha256" else _raw_digest(tmp, algorithm)
                if got != expected:
                    raise DataError(f"checksum mismatch (got {algorithm} {got}, expected {expected})")
            return
        except DataError as e:
            errors.append(f"{url}: {e}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            errors.append(f"{url}: {e}")
    raise DataError(
        f"could not download {dest.name}:\n  "
        + "\n  ".join(errors)
        + f"\nCheck the network, or place the file in {dest.parent} yourself."
    )


def _fetch(url: str, out, progress: bool, label: str) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "glyphlab"})
    with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        task = f"download {label}"
        if not (progress and watched()):
            shutil.copyfileobj(resp, out, _CHUNK)
            n = out.tell()
        else:
            emit(TaskStarted(task, task, total=total))
            try:
                n = 0
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    n += len(chunk)
                    emit(TaskAdvanced(task, n))
            finally:
                emit(TaskEnded(task))
        if total is not None and n != total:
            raise DataError(f"incomplete download: {n} of {total} bytes")


def ensure_mnist(
    data_dir: str | Path,
    mirrors: Iterable[str] = MIRRORS,
    download: bool = True,
    progress: bool = False,
    verify: bool = True,
) -> dict[str, Path]:
    """Make sure the four MNIST files are present and verified; return ``{stem: path}``.

    Raises :class:`DataError` when a file is missing and ``download`` is False, when every mirror fails,
    or when a file already on disk does not match its checksum. ``verify=False`` leaves the check of files
    already on disk to the caller (:func:`load_mnist` checks the bytes it parses, so each file is decompressed
    once); downloads are always checked.
    """
    data_dir = Path(data_dir)
    mirrors = list(mirrors)
    paths: dict[str, Path] = {}
    for stem, expected in CHECKSUMS.items():
        found = _find(data_dir, stem)
        if found is None:
            if not download:
                raise DataError(
                    f"MNIST file {stem}(.gz) not found in {data_dir} or {data_dir / 'mnist'}; "
                    "download it or allow downloading"
                )
            dest = data_dir / "mnist" / (stem + ".gz")
            download_checked([m.rstrip("/") + "/" + stem + ".gz" for m in mirrors], dest, expected, progress)
            found = dest
        elif verify:
            try:
                got = file_sha256(found)
            except DataError as e:
                raise DataError(f"{e}. Delete {found} and run again to re-download it.") from None
            _check_digest(found, got, expected)
        paths[stem] = found
    return paths


def _check_digest(path: Path, got: str, expected: str) -> None:
    if got != expected:
        raise DataError(
            f"{path}: checksum mismatch (sha256 of its content is {got}, expected "
            f"{expected}); the file is corrupt or not the canonical MNIST file. "
            f"Delete it and run again to re-download it."
        )


def _read_verified(path: Path, stem: str) -> np.ndarray:
    """Decompress once, check the bytes' SHA-256 against the canonical digest, then parse those same bytes."""
    data = _read_bytes(path)
    _check_digest(path, hashlib.sha256(data).hexdigest(), CHECKSUMS[stem])
    return parse_idx(data, str(path))


def load_mnist(
    data_dir: str | Path, download: bool = True, mirrors: Iterable[str] = MIRRORS, progress: bool = True
) -> Dataset:
    """MNIST as a :class:`Dataset`: train 60,000 / test 10,000, 28x28, classes "0".."9"."""
    paths = ensure_mnist(data_dir, mirrors=mirrors, download=download, progress=progress, verify=False)
    splits = {}
    for split, (img_stem, lab_stem) in FILES.items():
        images = _read_verified(paths[img_stem], img_stem)
        labels = _read_verified(paths[lab_stem], lab_stem)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{paths[img_stem]}: images {images.shape} do not fit labels {labels.shape}")
        splits[split] = Split(images.astype(np.float32) / 255.0, labels.astype(np.int64))
    return Dataset(
        name="mnist",
        classes=[str(i) for i in range(10)],
        splits=splits,
        source=str(paths["train-images-idx3-ubyte"].parent),
        meta={"mnist_files": {k: str(v) for k, v in paths.items()}},
    )
