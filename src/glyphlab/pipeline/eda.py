"""The ``eda`` step: a dataset's class counts, sample grid, mean image per class and pixel histogram as PNGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glyphlab.data.spec import DataSpec


@dataclass
class EdaSettings(DataSpec):
    """The data (a dataset name or path, its reader's options, the variants applied first) and the output folder."""

    out: Path = Path("eda")


def eda(settings: EdaSettings) -> list[Path]:
    """Write the PNGs; returns their paths."""
    from glyphlab.data.eda import write_eda

    return write_eda(settings.load(), settings.out)
