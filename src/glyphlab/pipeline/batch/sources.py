"""Where a batch job's files come from, read lazily: image files, folders, lists of paths, CSVs of paths.

A folder is walked one directory at a time, each directory's names sorted (the order of ``sorted(rglob)`` on
paths), so a million files in a tree of folders never sit in memory at once and two runs see the same order;
a text list (``.txt``/``.lst``: one path a line) and a CSV (a column named ``path`` or ``file``) are streamed line
by line, their relative paths taken from the list's own folder. A path that does not exist inside a list is still
yielded: the job writes it as an error line instead of stopping.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from glyphlab.data.formats import IMAGE_SUFFIXES
from glyphlab.errors import DataError

#: suffixes of plain lists of paths (one a line)
LIST_SUFFIXES = (".txt", ".lst")
#: the columns of a CSV of paths that name a file, looked for in this order (case-insensitive)
PATH_COLUMNS = ("path", "file", "filename")


@dataclass(frozen=True)
class FileSource:
    """The files named by command-line arguments, yielded lazily and in a stable order (see the module doc)."""

    paths: tuple[str, ...]

    @classmethod
    def of(cls, paths: Sequence[str | Path]) -> FileSource:
        """Check that every argument exists (one clear line for a typo) before anything runs."""
        for p in paths:
            if not Path(p).exists():
                raise DataError(f"no such image file or folder: {p}")
        if not paths:
            raise DataError("no image files or folders given")
        return cls(tuple(str(p) for p in paths))

    def __iter__(self) -> Iterator[str]:
        for p in self.paths:
            path = Path(p)
            if path.is_dir():
                yield from walk_images(path)
            elif path.suffix.lower() == ".csv":
                yield from csv_paths(path)
            elif path.suffix.lower() in LIST_SUFFIXES:
                yield from listed_paths(path)
            else:
                yield str(path)

    def count(self, skip: frozenset[str] | set[str] = frozenset()) -> int:
        """How many files the job will see (a cheap pass: names only, no file opened), less those in ``skip``."""
        return sum(1 for f in self if f not in skip)


def walk_images(folder: Path) -> Iterator[str]:
    """Image files under ``folder``, directory by directory, names sorted; symbolic links to folders not followed."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"cannot list {folder}: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk_images(folder / entry.name)
        elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
            yield str(folder / entry.name)


def _resolved(line: str, base: Path) -> str:
    path = Path(line)
    return str(path if path.is_absolute() else base / path)


def listed_paths(listing: Path) -> Iterator[str]:
    """One path a line (blank lines and ``#`` comments skipped), relative ones taken from the list's folder."""
    with open(listing, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                yield _resolved(line, listing.parent)


def csv_paths(table: Path) -> Iterator[str]:
    """The ``path`` (or ``file``) column of a CSV with a header, relative paths taken from the CSV's folder."""
    with open(table, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        column = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
        if column is None:
            raise DataError(
                f"{table} has no column named {' or '.join(PATH_COLUMNS)} (its header: {', '.join(header) or 'none'}); "
                "name the column of image paths 'path'"
            )
        for row in reader:
            if len(row) > column and row[column].strip():
                yield _resolved(row[column].strip(), table.parent)
