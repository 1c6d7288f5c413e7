"""The ``eda`` step: a dataset's class counts, sample grid, mean image per class and pixel histogram as PNGs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EdaSettings:
    """A dataset name or path (with its reader's options), the variants applied first, and the output folder."""

    dataset: str = "digits"
    out: Path = Path("eda")
    variants: str = ""
    seed: int = 0
    data_dir: str | Path | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)


def eda(settings: EdaSettings) -> list[Path]:
    """Write the PNGs; returns their paths."""
    from glyphlab.data.eda import write_eda
    from glyphlab.data.registry import resolve_dataset

    ds = resolve_dataset(settings.dataset, settings.data_dir, **settings.dataset_options)
    if settings.variants:
        from glyphlab.data.variants import apply_variants

        ds = apply_variants(ds, settings.variants, seed=settings.seed)
    return write_eda(ds, settings.out)
