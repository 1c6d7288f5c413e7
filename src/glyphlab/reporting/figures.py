"""Figures the HTML report draws itself, from the run folder alone (test_images.npz, dataset.json, predictions).

Every function returns PNG bytes. matplotlib's object API on an Agg canvas: no pyplot state, no GUI.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

DPI = 96
MAX_CLASSES_SHOWN = 40  # image grids show at most this many classes; the bar chart shows all
_PALETTE = [
    "#4269d0",
    "#efb118",
    "#ff725c",
    "#6cc5b0",
    "#3ca951",
    "#ff8ab7",
    "#a463f2",
    "#97bbf5",
    "#9c6b4e",
    "#9498a0",
]


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def class_distribution(classes: Sequence[str], counts: dict[str, Sequence[int]], title: str = "") -> bytes:
    """Grouped bars: images per class in each split (``dataset.json``'s ``class_counts``)."""
    n = len(classes)
    splits = [s for s in ("train", "val", "test") if s in counts] + [
        s for s in counts if s not in ("train", "val", "test")
    ]
    fig = Figure(figsize=(min(max(6.5, 0.28 * n * max(1, len(splits)) ** 0.5 + 3), 14), 3.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)
    width = 0.84 / max(1, len(splits))
    for j, split in enumerate(splits):
        c = np.asarray(counts[split], dtype=float)
        ax.bar(
            x + (j - (len(splits) - 1) / 2) * width,
            c,
            width,
            label=f"{split} ({int(c.sum()):,})",
            color=_PALETTE[j % len(_PALETTE)],
            linewidth=0,
        )
    ax.set_xticks(x, list(classes), rotation=0 if n <= 24 else 90, fontsize=8 if n <= 40 else 6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("class", fontsize=9)
    ax.set_ylabel("images", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _style(ax)
    ax.legend(title="split", fontsize=8, title_fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return png_bytes(fig)


def _mosaic(tiles: list[list[np.ndarray | None]], h: int, w: int) -> np.ndarray:
    """Rows of equally sized tiles into one float image; NaN marks gaps and missing tiles."""
    gap = max(1, h // 7)
    rows, cols = len(tiles), max((len(r) for r in tiles), default=0)
    grid = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, dtype=np.float32)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile is not None:
                grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return grid


def _row_labels(ax, labels: Sequence[str], h: int) -> None:
    gap = max(1, h // 7)
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(len(labels))], list(labels), fontsize=8)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)


def _imshow_mosaic(ax, grid: np.ndarray, vmax: float = 1.0) -> None:
    import matplotlib

    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="#eef0f4")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")


def _tile_inches(h: int) -> float:
    return 0.42 if h <= 12 else 0.5


def sample_grid(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[str], per_class: int = 10, seed: int = 0
) -> bytes:
    """A row of random test images per class (at most MAX_CLASSES_SHOWN classes)."""
    rng = np.random.default_rng(seed)
    shown = list(range(min(len(classes), MAX_CLASSES_SHOWN)))
    h, w = images.shape[1:3]
    tiles = []
    for c in shown:
        idx = np.flatnonzero(labels == c)
        idx = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else idx
        tiles.append([images[i] / 255.0 for i in idx] + [None] * (per_class - len(idx)))
    grid = _mosaic(tiles, h, w)
    t = _tile_inches(h)
    fig = Figure(figsize=(per_class * t + 0.5, len(shown) * t * h / w + 0.2), layout="constrained")
    ax = fig.add_subplot()
    _imshow_mosaic(ax, grid)
    _row_labels(ax, [classes[c] for c in shown], h)
    return png_bytes(fig)


def mean_images(images: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> bytes:
    """The mean test image of each class, in rows of up to 10."""
    shown = list(range(min(len(classes), MAX_CLASSES_SHOWN)))
    h, w = images.shape[1:3]
    cols = min(len(shown), max(5, int(np.ceil(np.sqrt(len(shown))))))  # squarish: 10 classes as 5 × 2
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(cols * 1.05, rows * 1.2 * h / w), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= len(shown):
            continue
        sel = labels == shown[k]
        if sel.any():
            ax.imshow(
                images[sel].astype(np.float32).mean(axis=0) / 255.0,
                cmap="magma",
                vmin=0,
                vmax=1,
                interpolation="bilinear",
            )
        ax.set_title(f"{classes[shown[k]]}  (n={int(sel.sum())})", fontsize=7.5)
    return png_bytes(fig)


def confident_mistakes(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    k: int = 16,
    cols: int = 8,
) -> tuple[bytes | None, int]:
    """The ``k`` wrong predictions the model was surest of, titled "true → pred (p)".

    ``images`` are already aligned with the predictions. Returns (PNG or None, number of mistakes).
    """
    wrong = np.flatnonzero(y_true != y_pred)
    if not len(wrong):
        return None, 0
    conf = proba[wrong, y_pred[wrong]]
    top = wrong[np.argsort(-conf, kind="stable")[:k]]
    cols = min(cols, len(top))
    rows = -(-len(top) // cols)
    h, w = images.shape[1:3]
    fig = Figure(figsize=(cols * 1.05, rows * 1.25 * h / w), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, top):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(
            f"{classes[y_true[i]]} → {classes[y_pred[i]]} ({proba[i, y_pred[i]]:.2f})", fontsize=7.5, color="#b3261e"
        )
    return png_bytes(fig), int(len(wrong))


def learning_curves(history: list[dict[str, float]], title: str = "") -> bytes | None:
    """Loss and accuracy per epoch (train and validation) from history.csv rows."""
    if not history:
        return None
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    fig = Figure(figsize=(8.5, 3.0), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        for prefix, color in (("train_", _PALETTE[0]), ("val_", _PALETTE[2])):
            ys = [r.get(prefix + key) for r in history]
            if any(y is not None and np.isfinite(y) for y in ys):
                ax.plot(
                    epochs,
                    [np.nan if y is None else y for y in ys],
                    marker="o",
                    ms=3,
                    lw=1.5,
                    color=color,
                    label=prefix.rstrip("_").replace("val", "validation"),
                )
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        _style(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return png_bytes(fig)


def embedding_scatter(xy: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str = "") -> bytes:
    """A 2-D embedding coloured by class, each class's label written at its median, with a legend."""
    import matplotlib

    n = len(classes)
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    colors = [cmap(i % 20) if n <= 20 else cmap(i / max(1, n - 1)) for i in range(n)]
    fig = Figure(figsize=(8.2, 6.2), layout="constrained")
    ax = fig.add_subplot()
    for c in range(n):
        sel = labels == c
        if not sel.any():
            continue
        ax.scatter(
            xy[sel, 0],
            xy[sel, 1],
            s=12 if len(xy) < 1000 else 7,
            color=colors[c],
            alpha=0.75,
            linewidths=0,
            label=classes[c],
        )
        mx, my = np.median(xy[sel], axis=0)
        ax.text(
            mx,
            my,
            classes[c],
            fontsize=11,
            weight="bold",
            ha="center",
            va="center",
            color="black",
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=colors[c], alpha=0.8, lw=1),
        )
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_color("#cccccc")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.legend(
        title="class",
        fontsize=9,
        title_fontsize=9,
        markerscale=2.0,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        ncols=1 if n <= 20 else 2,
    )
    return png_bytes(fig)
