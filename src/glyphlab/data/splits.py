"""Seeded, stratified splits. Stratification falls back to a plain shuffle for classes too small to split
(seed 001 has a class with a single image), so a split never fails on real, imbalanced data."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from glyphlab.data.dataset import Dataset, Split
from glyphlab.errors import DataError


def _stratify_or_none(labels: np.ndarray) -> np.ndarray | None:
    counts = np.bincount(labels)
    return labels if counts[counts > 0].min() >= 2 else None


def stratified_indices(labels: np.ndarray, size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, held_out) with ``size`` held out (a fraction or a count)."""
    idx = np.arange(len(labels))
    if isinstance(size, float) and not 0.0 < size < 1.0:
        raise DataError(f"a split fraction must be in (0, 1), got {size}")
    if isinstance(size, int) and not 0 < size < len(labels):
        raise DataError(f"a split count must be in (0, {len(labels)}), got {size}")
    strat = _stratify_or_none(labels)
    try:
        rest, held = train_test_split(idx, test_size=size, random_state=seed, stratify=strat)
    except ValueError:  # too few per class for the requested size: shuffle instead
        rest, held = train_test_split(idx, test_size=size, random_state=seed, stratify=None)
    return np.sort(rest), np.sort(held)


def split_off(ds: Dataset, source: str, new: str, size: float | int, seed: int) -> Dataset:
    """Carve split ``new`` out of split ``source`` (stratified, seeded)."""
    src = ds[source]
    if src.labels is None:
        raise DataError(f"cannot stratify unlabeled split '{source}'")
    rest, held = stratified_indices(src.labels, size, seed)
    splits = dict(ds.splits)
    splits[source] = src.take(rest)
    splits[new] = src.take(held)
    return ds.with_splits(splits, **{f"split_{new}_from": source, f"split_{new}_size": size})


def ensure_validation(ds: Dataset, fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Give the dataset a ``val`` split (from ``train``) unless it has one."""
    if "val" in ds.splits:
        return ds
    return split_off(ds, "train", "val", fraction, seed)


def kfold_indices(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train_idx, valid_idx) pairs, seeded."""
    if k < 2:
        raise DataError(f"k-fold needs k >= 2, got {k}")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(labels)), labels))


def merge_splits(ds: Dataset, names: list[str]) -> Split:
    """Concatenate several labeled splits (e.g. train+val for a final refit)."""
    parts = [ds[n] for n in names]
    return Split(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),  # type: ignore[arg-type]
    )
