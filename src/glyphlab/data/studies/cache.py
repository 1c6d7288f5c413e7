"""What every seed protocol shares: ``limit`` (a stratified subset chosen before anything expensive), the MNIST
source most of them draw from, and the cache of generated files in ``data_dir/NAME/`` (``limit-N/`` with a
limit), written atomically (:mod:`glyphlab.fileio`) and regenerated when ``protocol.json`` differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.mnist import load_mnist
from glyphlab.data.registry import default_data_dir
from glyphlab.data.splits import stratified_indices
from glyphlab.errors import DataError
from glyphlab.fileio import atomic_open, write_json

DIGIT_CLASSES = [str(i) for i in range(10)]
ALNUM_CLASSES = DIGIT_CLASSES + [chr(ord("A") + i) for i in range(26)]
PARSED = "parsed.npz"


def check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DataError(f"limit must be a positive whole number of images per split, got {limit!r}")
    return int(limit)


def limit_indices(
    labels: np.ndarray | None, n: int, limit: int | None, seed: int, min_per_class: int = 0
) -> np.ndarray:
    """Sorted indices of ``limit`` of ``n`` items, stratified by label where labels are given.

    ``min_per_class`` first reserves that many items of every class that has them (so a few hundred images of
    a long-tailed dataset still hold every class often enough for, e.g., an SVM's 3-fold calibration); the
    rest is a stratified draw. Classes with a single member cannot be stratified; with a limit they are left
    out (without one, everything is kept).
    """
    if limit is None or limit >= n:
        return np.arange(n)
    if labels is None:
        return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    ok = np.flatnonzero(counts[labels] >= 2)
    if limit >= len(ok):
        return ok
    reserved = np.zeros(0, dtype=np.int64)
    if min_per_class > 0:
        rng = np.random.default_rng([seed, 1])
        groups = [rng.permutation(ok[labels[ok] == c])[:min_per_class] for c in np.unique(labels[ok])]
        reserved = np.sort(np.concatenate(groups))[:limit] if groups else reserved
        if len(reserved) >= limit:
            return np.sort(rng.permutation(reserved)[:limit])
        ok = np.setdiff1d(ok, reserved)
        left = np.bincount(labels[ok], minlength=len(counts))
        ok = ok[left[labels[ok]] >= 2]
        if limit - len(reserved) >= len(ok):
            return np.sort(np.concatenate([reserved, ok]))
    _, held = stratified_indices(labels[ok], int(limit - len(reserved)), seed)
    return np.sort(np.concatenate([reserved, ok[held]]))


def mnist_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def load_mnist_quietly(data_dir: Path, download: bool) -> Dataset:
    return load_mnist(data_dir, download=download, progress=False)


def all_mnist(data_dir: Path | None, download: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The 70,000 MNIST digits, its training digits then its test digits, as (images, labels, source): the pool
    the seed studies' protocols (mnist-rot, mnist-back-rand, mnist-70k-resplit) draw their splits from."""
    mnist = load_mnist_quietly(mnist_dir(data_dir), download)
    images = np.concatenate([mnist["train"].images, mnist["test"].images])
    labels = np.concatenate([mnist["train"].labels, mnist["test"].labels])
    return images, labels, mnist.source


def cache_dir(data_dir: Path, name: str, limit: int | None) -> Path:
    base = data_dir / name
    return base / f"limit-{limit}" if limit else base


def cache_is_fresh(folder: Path, protocol: dict[str, Any], files: list[str]) -> bool:
    meta = folder / "protocol.json"
    if not meta.is_file() or not all((folder / f).is_file() for f in files):
        return False
    try:
        return json.loads(meta.read_text()) == protocol
    except (OSError, json.JSONDecodeError):
        return False


def write_protocol(folder: Path, protocol: dict[str, Any]) -> None:
    write_json(folder / "protocol.json", protocol)


def _stamp(folder: Path, files: list[str]) -> list[list[int]]:
    return [[(folder / f).stat().st_size, (folder / f).stat().st_mtime_ns] for f in files]


def read_cached(folder: Path, files: list[str], read: Callable[[], dict[str, Split]], cache: bool) -> dict[str, Split]:
    """``read()`` parses the CSV files (every first load does); with ``cache`` the parsed arrays are kept in
    ``parsed.npz`` beside them and used while the CSVs' sizes and modification times are unchanged (parsing
    tens of thousands of 784-column rows takes most of a minute)."""
    path = folder / PARSED
    stamp = _stamp(folder, files)
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["stamp"])) == stamp:
                    names = json.loads(str(z["splits"]))
                    return {
                        n: Split(
                            z[f"{n}_images"].astype(np.float32) / 255.0,
                            z[f"{n}_labels"] if f"{n}_labels" in z.files else None,
                        )
                        for n in names
                    }
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # unreadable cache: parse the CSVs again
    splits = read()
    if cache:
        arrays: dict[str, Any] = {"stamp": json.dumps(stamp), "splits": json.dumps(list(splits))}
        for n, sp in splits.items():
            arrays[f"{n}_images"] = np.rint(sp.images * 255).astype(np.uint8)
            if sp.labels is not None:
                arrays[f"{n}_labels"] = sp.labels
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **arrays)
    return splits
