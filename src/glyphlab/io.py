"""The small file helpers every layer uses: CSV tables as lists of dicts, JSON documents.

One place, so every table glyphlab writes has the same shape (a header row, then one row per dict, in the
first row's key order unless ``fieldnames`` says otherwise) and every JSON file the same formatting.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence


def write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as a CSV table. With ``fieldnames`` the header is always written and keys outside it are
    left out; without, the columns are the first row's keys (and no rows give an empty file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        if fieldnames is None and not rows:
            return path
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames or rows[0]), extrasaction="ignore" if fieldnames else "raise")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path, missing_ok: bool = False) -> list[dict[str, str]]:
    """The rows of a CSV table as dicts of strings; ``missing_ok``: [] for a file that cannot be read."""
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        if missing_ok:
            return []
        raise


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (values JSON does not know, such as paths, as their ``str``)."""
    path = Path(path)
    path.write_text(json.dumps(obj, indent=2, default=str))
    return path
