"""Figures a person reads: confusion matrices, most-confused examples, leaderboard scatter."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from glyphlab.fileio import atomic_open

# Matplotlib's object-oriented Figure, never pyplot: no global figure state and no backend switch, so a
# notebook's inline plots keep working and the figures the Interpretation returns display where they are.


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    return path


class ShownFigure(Figure):
    """A Matplotlib Figure that Jupyter shows as a PNG with no pyplot and no backend set (IPython asks objects
    for ``_repr_png_``); everything else is Matplotlib's Figure: ``savefig``, ``axes``, ``suptitle`` ..."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()


def _subplots(figsize: tuple[float, float], *args: int, **kwargs: Any):
    fig = ShownFigure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def confusion_figure(cm: np.ndarray, classes: list[str], title: str, normalized: bool) -> Figure:
    """Rows are true classes, columns predicted; each cell written on it when there are at most 20 classes."""
    n = len(classes)
    size = max(5.0, min(16.0, 0.45 * n + 2))
    fig, ax = _subplots((size, size * 0.9))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalized else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalized else "count")
    ax.set_xticks(range(n), classes, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= 20:
        thresh = cm.max() / 2 if cm.max() > 0 else 0.5
        for i in range(n):
            for j in range(n):
                v = cm[i, j]
                if v == 0:
                    continue
                text = f"{v:.2f}" if normalized else f"{int(v)}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7 if n > 10 else 8,
                    color="white" if v > thresh else "black",
                )
    return fig


def most_confused_figure(
    pairs: list[dict[str, Any]],
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    title: str,
    per_pair: int = 6,
) -> Figure:
    """One row per confused pair (``pairs`` from :func:`~glyphlab.evaluation.metrics.most_confused`)."""
    rows = max(1, len(pairs))
    fig, axes = _subplots(
        (1.0 * per_pair + 1.4, 1.0 * rows + 0.5),
        rows,
        per_pair,
        squeeze=False,
        gridspec_kw={"wspace": 0.05, "hspace": 0.12},
    )
    for r, pair in enumerate(pairs):
        idx = np.flatnonzero((y_true == pair["true_index"]) & (y_pred == pair["predicted_index"]))[:per_pair]
        for c in range(per_pair):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(idx):
                ax.imshow(images[idx[c]], cmap="gray_r", vmin=0, vmax=1)
        axes[r, 0].text(
            -0.15,
            0.5,
            f"{pair['true']} → {pair['predicted']}\n({pair['count']}×)",
            transform=axes[r, 0].transAxes,
            ha="right",
            va="center",
            fontsize=9,
        )
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - 0.45 / height, bottom=0.1 / height)
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height)
    return fig


def top_losses_figure(
    images: np.ndarray,
    true: list[str],
    predicted: list[str],
    probability: np.ndarray,
    loss: np.ndarray,
    title: str,
    columns: int = 8,
) -> Figure:
    """A grid of test images, each titled ``predicted / true / loss / probability`` (fastai's plot_top_losses)."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = _subplots((1.35 * cols, 1.55 * rows + 0.4), rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{predicted[k]} / {true[k]}\n{loss[k]:.2f} / {probability[k]:.2f}", fontsize=8)
    fig.suptitle(title + "\npredicted / true, loss / probability of the prediction", fontsize=10)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_time(
    rows: list[dict[str, Any]], path: Path, title: str = "accuracy against training time"
) -> Path:
    """Seed 004's model-selection figure, with the Pareto front (faster and more accurate) marked."""
    fig, ax = _subplots((7, 4.5))
    times = np.array([max(r["train_seconds"], 1e-3) for r in rows])
    accs = np.array([r["accuracy"] for r in rows])
    front = pareto_front(times, accs)
    for r, t, a, on in zip(rows, times, accs, front):
        ax.scatter(t, a, s=60, color="tab:orange" if on else "tab:blue", zorder=3)
        ax.annotate(r["model"], (t, a), textcoords="offset points", xytext=(6, 4), fontsize=9)
    order = np.argsort(times[front])
    ax.plot(times[front][order], accs[front][order], "--", color="tab:orange", label="Pareto front", zorder=2)
    ax.set_xscale("log")
    # plain numbers (200, not 2×10²); minor ticks labelled too when the times span less than two decades
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", framealpha=0.9)
    return save_figure(fig, path)


def pareto_front(times: np.ndarray, accs: np.ndarray) -> np.ndarray:
    """True where no other model is at least as fast and at least as accurate, and strictly better in one."""
    n = len(times)
    on = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = (times <= times[i]) & (accs >= accs[i]) & ((times < times[i]) | (accs > accs[i]))
        on[i] = not dominated.any()
    return on
