"""The label audit's figure: the top suspects of ``glyphlab audit``, each with its given and suggested label."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glyphlab.evaluation.plots import ShownFigure, save_figure  # the Figure API: no pyplot, no backend switch


def plot_label_issues(
    images: np.ndarray,
    given: Sequence[str],
    suggested: Sequence[str],
    scores: Sequence[float],
    names: Sequence[str],
    path: Path,
    title: str,
    columns: int = 8,
) -> Path:
    """A grid of suspect images, each titled ``given → suggested`` with its label-quality score and its key."""
    n = len(images)
    columns = max(1, min(columns, n))  # a short list makes a small figure, not a wide empty one
    rows = max(1, math.ceil(n / columns))
    fig = ShownFigure(figsize=(1.45 * columns, 1.75 * rows + 0.5))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(n):
        ax = axes.ravel()[k]
        ax.imshow(np.asarray(images[k], dtype=np.float32), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(
            f"given {given[k]} → {suggested[k]}\n{float(scores[k]):.2g} · {names[k]}", fontsize=7.5, color="#b3261e"
        )
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no label issues found", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
