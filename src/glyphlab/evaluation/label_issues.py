"""The label audit's figure: the top suspects of ``glyphlab audit``, each with its given and suggested label."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_label_issues(images: np.ndarray, given: Sequence[str], suggested: Sequence[str], scores: Sequence[float],
                      names: Sequence[str], path: Path, title: str, columns: int = 8) -> Path:
    """A grid of suspect images, each titled ``given → suggested`` with its label-quality score and its key."""
    n = len(images)
    columns = max(1, min(columns, n))  # a short list makes a small figure, not a wide empty one
    rows = max(1, math.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.45 * columns, 1.75 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(n):
        ax = axes.ravel()[k]
        ax.imshow(np.asarray(images[k], dtype=np.float32), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"given {given[k]} → {suggested[k]}\n{float(scores[k]):.2g} · {names[k]}", fontsize=7.5,
                     color="#b3261e")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no label issues found", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
