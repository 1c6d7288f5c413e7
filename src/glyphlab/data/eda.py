"""Exploratory figures for a dataset: class balance, sample images, mean images, pixel intensities.

Uses matplotlib's object API on an Agg canvas (no pyplot, no GUI, no global backend change).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from glyphlab.data.dataset import Dataset, Split

MAX_CLASSES_SHOWN = 64  # image grids show at most this many classes (the counts plot shows all)
_HIST_PIXELS = 2_000_000  # pixels sampled per split for the histogram


def _labeled_split(ds: Dataset, split: str | None) -> tuple[str, Split] | None:
    if split is not None:
        return split, ds[split]
    for name in ("train", *ds.splits):
        s = ds.splits.get(name)
        if s is not None and s.labels is not None and len(s):
            return name, s
    return None


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100, facecolor="white")
    return path


def _class_counts(ds: Dataset, out: Path) -> list[Path]:
    labeled = {k: s for k, s in ds.splits.items() if s.labels is not None}
    counts = {k: np.bincount(s.labels, minlength=ds.num_classes) for k, s in labeled.items()}
    csv_path = out / "class_counts.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", *counts, "total"])
        for i, c in enumerate(ds.classes):
            row = [int(counts[k][i]) for k in counts]
            w.writerow([c, *row, sum(row)])
    if not counts:
        return [csv_path]
    n = ds.num_classes
    fig = Figure(figsize=(min(max(6.0, 0.35 * n * max(1, len(counts)) ** 0.5 + 2), 24) + 2, 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)
    width = 0.8 / len(counts)
    for j, (k, c) in enumerate(counts.items()):
        ax.bar(x + (j - (len(counts) - 1) / 2) * width, c, width, label=f"{k} (n={int(c.sum()):,})")
    ax.set_xticks(x, ds.classes, rotation=0 if n <= 20 else 90)
    ax.set_xlabel("class")
    ax.set_ylabel("number of images")
    ax.set_title(f"{ds.name}: images per class")
    ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return [csv_path, _save(fig, out / "class_counts.png")]


def _classes_shown(ds: Dataset) -> list[int]:
    return list(range(min(ds.num_classes, MAX_CLASSES_SHOWN)))


def _samples(ds: Dataset, name: str, split: Split, out: Path, per_class: int, seed: int) -> Path:
    # One mosaic image (a row per class) drawn with a single imshow: fast even for 60 classes.
    rng = np.random.default_rng(seed)
    shown = _classes_shown(ds)
    h, w = split.images.shape[1:]
    gap = max(1, h // 8)
    # NaN = the gaps between images, drawn in light grey
    grid = np.full((len(shown) * (h + gap) - gap, per_class * (w + gap) - gap), np.nan, dtype=np.float32)
    for r, c in enumerate(shown):
        idx = np.flatnonzero(split.labels == c)
        pick = np.sort(rng.choice(idx, min(per_class, len(idx)), replace=False)) if len(idx) else []
        for j in range(per_class):
            y, x = r * (h + gap), j * (w + gap)
            grid[y : y + h, x : x + w] = split.images[pick[j]] if j < len(pick) else 0.0
    rows = len(shown)
    fig = Figure(figsize=(min(0.75 * per_class + 1.5, 14), min(0.75 * rows + 1.0, 40)), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="#d0d0d0")
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(rows)], [ds.classes[c] for c in shown])
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0, labelsize=11 if rows <= 20 else 8)
    ax.set_ylabel("class")
    for spine in ax.spines.values():
        spine.set_visible(False)
    more = f" (first {rows} of {ds.num_classes} classes)" if rows < ds.num_classes else ""
    ax.set_title(f"{ds.name} [{name}]: up to {per_class} random samples per class{more}")
    return _save(fig, out / "samples.png")


def _mean_images(ds: Dataset, name: str, split: Split, out: Path) -> Path:
    shown = _classes_shown(ds)
    cols = min(10, len(shown))
    rows = -(-len(shown) // cols)
    fig_h = 1.5 * rows + 1.0
    fig = Figure(figsize=(1.3 * cols + 0.6, fig_h))  # fixed margins: constrained layout is slow on many axes
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.95 / fig_h, hspace=0.45, wspace=0.1)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, c in enumerate(shown):
        ax = axes[i // cols, i % cols]
        sel = split.labels == c
        n = int(sel.sum())
        if n:
            ax.imshow(split.images[sel].mean(axis=0), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{ds.classes[c]}\n(n={n:,})", fontsize=9)
    fig.suptitle(f"{ds.name} [{name}]: mean image per class", y=1 - 0.15 / fig_h, va="top")
    return _save(fig, out / "mean_images.png")


def _histogram(ds: Dataset, out: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 52)
    for k, s in ds.splits.items():
        px = s.images.ravel()
        if px.size > _HIST_PIXELS:
            px = px[rng.integers(0, px.size, _HIST_PIXELS)]
        if px.size:
            ax.hist(
                px,
                bins=bins,
                histtype="step",
                linewidth=1.6,
                density=True,
                label=f"{k} (mean {s.images.mean():.3f}, std {s.images.std():.3f})",
            )
    ax.set_yscale("log")
    ax.set_xlabel("pixel intensity (0 = background, 1 = ink)")
    ax.set_ylabel("density (log scale)")
    ax.set_title(f"{ds.name}: pixel-intensity histogram")
    ax.legend(title="split")
    ax.grid(alpha=0.3)
    return _save(fig, out / "pixel_histogram.png")


def write_eda(
    ds: Dataset, out_dir: str | Path, *, split: str | None = None, per_class: int = 10, seed: int = 0
) -> list[Path]:
    """Write EDA files to ``out_dir`` and return their paths.

    ``class_counts.csv`` / ``class_counts.png`` (every labeled split), ``samples.png`` (up to ``per_class``
    random images per class) and ``mean_images.png`` (from ``split``, default the first labeled split,
    ``train`` preferred), ``pixel_histogram.png`` (every split) and ``summary.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _class_counts(ds, out)
    chosen = _labeled_split(ds, split)
    if chosen is not None and chosen[1].labels is not None and len(chosen[1]):
        paths.append(_samples(ds, chosen[0], chosen[1], out, per_class, seed))
        paths.append(_mean_images(ds, chosen[0], chosen[1], out))
    paths.append(_histogram(ds, out, seed))
    summary = out / "summary.json"
    summary.write_text(json.dumps(ds.summary(), indent=2, default=str) + "\n")
    paths.append(summary)
    return paths
