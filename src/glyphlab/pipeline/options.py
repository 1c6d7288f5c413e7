"""Settings typed as text (``--param svm.C=10``, ``--dataset-option limit=300``) into the values the use
cases take, parsed once here for the CLI and for recipes alike."""

from __future__ import annotations

from typing import Any

from glyphlab.errors import GlyphlabError
from glyphlab.models.registry import parse_params, parse_value

__all__ = ["parse_dataset_options", "parse_params"]


def parse_dataset_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items -> a dict of typed values (numbers, booleans, lists as the registry parses them)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GlyphlabError(f"--dataset-option '{item}' must look like KEY=VALUE")
        out[key.strip()] = parse_value(value)
    return out
