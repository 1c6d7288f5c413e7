"""What glyphlab offers: the built-in datasets and the registered models, as rows built once here for
``glyphlab datasets`` / ``glyphlab models`` (tables) and ``gl.list_datasets`` / ``gl.list_models`` (DataFrames)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetRow:
    name: str
    sizes: str
    description: str
    source: str


@dataclass(frozen=True)
class ModelRow:
    """A registered model; ``extra`` names the extra to install when this install cannot build it."""

    name: str
    family: str
    description: str
    parameters: str
    extra: str = ""


def dataset_rows(pattern: str = "*") -> list[DatasetRow]:
    """The built-in datasets whose name matches ``pattern`` (``"mnist*"``), by name."""
    from glyphlab.data.registry import list_datasets

    return [
        DatasetRow(d.name, d.sizes, d.description, d.source)
        for d in list_datasets()
        if fnmatch.fnmatch(d.name, pattern)
    ]


def model_rows(pattern: str = "*", missing: bool = False) -> list[ModelRow]:
    """The registered models whose name matches ``pattern`` (``"cnn*"``) with their defaults, by name; with
    ``missing`` also the optional ones this install lacks, each with the extra that brings it."""
    from glyphlab.models.registry import list_models, missing_models

    rows = [
        ModelRow(m.name, m.family, m.description, ", ".join(f"{k}={v}" for k, v in m.cls.defaults.items()))
        for m in list_models()
    ]
    if missing:
        rows += [ModelRow(n, "", f"needs glyphlab[{e}]", "", e) for n, e in missing_models().items()]
    return sorted((r for r in rows if fnmatch.fnmatch(r.name, pattern)), key=lambda r: r.name)
