"""Named datasets. A loader is a function ``(data_dir, **options) -> Dataset``; registering one is one line."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from glyphlab.data.dataset import Dataset
from glyphlab.errors import DataError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., Dataset]
    description: str
    source: str
    sizes: str


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, description: str, source: str, sizes: str):
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = DatasetSpec(name, fn, description, source, sizes)
        return fn

    return deco


def default_data_dir() -> Path:
    """``GLYPHLAB_DATA`` if set, else a per-user cache folder."""
    env = os.environ.get("GLYPHLAB_DATA")
    return Path(env) if env else Path(user_cache_dir("glyphlab")) / "data"


def load_dataset(name: str, data_dir: str | Path | None = None, **options) -> Dataset:
    _ensure_builtin()
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset '{name}'. Known: {', '.join(sorted(DATASETS))}. Run `glyphlab datasets` to list them."
        )
    check_options(name, options)
    path = Path(data_dir) if data_dir else default_data_dir()
    return DATASETS[name].loader(path, **options)


def dataset_options(name: str) -> list[str]:
    """The options (``--dataset-option KEY=VALUE``) a registered dataset's loader takes."""
    _ensure_builtin()
    params = inspect.signature(DATASETS[name].loader).parameters
    return [
        p
        for p in list(params)[1:]
        if params[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def check_options(name: str, options: dict) -> None:
    """Refuse, by name, an option the dataset's loader does not take (instead of a TypeError traceback)."""
    params = inspect.signature(DATASETS[name].loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"dataset '{name}' takes no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(allowed) or 'none'}"
        )


def list_datasets() -> list[DatasetSpec]:
    _ensure_builtin()
    return [DATASETS[k] for k in sorted(DATASETS)]


def _ensure_builtin() -> None:
    # Importing the modules registers their datasets.
    from glyphlab.data import (
        builtin,  # noqa: F401
        studies,  # noqa: F401
    )


def resolve_dataset(name_or_path: str, data_dir: str | Path | None = None, **options) -> Dataset:
    """A registered name, or a path to a file or folder in one of the formats glyphlab reads."""
    _ensure_builtin()
    if name_or_path in DATASETS:
        return load_dataset(name_or_path, data_dir, **options)
    if Path(name_or_path).exists():
        from glyphlab.data.formats import load_path

        return load_path(Path(name_or_path), **options)
    raise DataError(
        f"'{name_or_path}' is neither a dataset name ({', '.join(sorted(DATASETS))}) nor an existing file or folder"
    )
