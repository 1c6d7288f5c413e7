"""Writing files so that a reader never sees half of one: the one atomic-write helper glyphlab uses.

Every file is written to a temporary name in the same folder and moved over the target with
:func:`os.replace` (atomic on POSIX and Windows within one file system), so a process killed mid-write
leaves the previous file or none, never a truncated one. The temporary file is removed when the writer
fails. Files get the mode an ordinary ``open`` would give (0644 under the usual umask), not ``mkstemp``'s 0600:
a run folder or a model mounted into a container is read by another user.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks (manifests and done.json list files by it)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def current_umask() -> int:
    """The process's umask, read from /proc where it says (changing the umask to read it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(directory: str | Path) -> None:
    """Folders 0755 and files 0644 (as the umask allows) throughout ``directory``: ``tempfile.mkdtemp`` makes
    0700 folders and ``mkstemp`` 0600 files, which another user (the Docker image's non-root uid reading a
    mounted model) cannot read. Nothing becomes writable by others that the umask would not allow."""
    mask = current_umask()
    os.chmod(directory, 0o777 & ~mask)
    for root, dirs, files in os.walk(directory):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~mask)


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (``kwargs`` go to :func:`open`, e.g. ``newline=""`` for CSV). NumPy's
    ``savez`` and Matplotlib's ``savefig`` accept the file object, so one helper serves every format.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for writers that want a name, not a file object (e.g. ONNX export).

    The temporary name keeps ``path``'s suffix, so writers that pick a format by suffix still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # the writer may have replaced the file: set the mode last
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON; objects JSON does not know (paths, dates) become strings."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # NumPy and torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    """Atomically write ``rows`` with a header (``columns``, else the first row's keys); no rows: an empty file."""
    with atomic_open(path, "w", newline="") as fh:
        if rows or columns:
            writer = csv.DictWriter(fh, fieldnames=columns or list(rows[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return Path(path)
