"""The image files a command is given: files and folders of files, in the one list every step reads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from glyphlab.errors import GlyphlabError


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Each path a file, or a folder whose image files (by suffix, sorted) are taken; an error names what is
    missing, so that a typo is one line and not an empty result."""
    from glyphlab.data.formats import IMAGE_SUFFIXES  # local: numpy and Pillow load only for steps that read images

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise GlyphlabError(f"no such image file or folder: {p}")
    if not files:
        raise GlyphlabError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return files
