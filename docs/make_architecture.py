"""Draw docs/architecture.svg from the layers tests/test_layers.py checks (one list for the test and the picture).

    python docs/make_architecture.py        # from the repository root; needs matplotlib (glyphlab's core)
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: a small file, searchable words
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
from test_layers import LAYERS  # noqa: E402

#: what each layer is for, in a few words
ROLE = {
    "base": "errors, the extras table, atomic file writes, the version",
    "data": "readers, one Dataset, images, variants, splits",
    "models": "the registry, estimators, networks, the training loop, saved model folders",
    "runs": "the run folder: every file name, leaderboard, finished models",
    "evaluation": "metrics, plots, interpretation, attributions, robustness",
    "services": "HTML reports, the HTTP server and ONNX, trackers, reading strings",
    "use cases": "one function per step: settings in, a typed result out",
    "api": "import glyphlab as gl: the use cases for notebooks",
    "cli": "the glyphlab command: parses options, calls the use cases, renders results",
}


def short(module: str) -> str:
    return module.removeprefix("glyphlab.") if module != "glyphlab" else "glyphlab/__init__"


def draw(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 0.78 * len(LAYERS) + 0.4))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, len(LAYERS) * 1.0)
    ax.axis("off")
    top = len(LAYERS) - 1
    for i, (name, modules) in enumerate(reversed(LAYERS)):
        y = top - i
        colour = plt.cm.Blues(0.25 + 0.6 * (top - i) / top)
        ax.add_patch(FancyBboxPatch((0.2, y + 0.12), 8.6, 0.66, boxstyle="round,pad=0.02", fc=colour, ec="#1f3b5c"))
        ax.text(0.4, y + 0.56, name, fontsize=11, weight="bold", va="center")
        ax.text(2.0, y + 0.56, ", ".join(short(m) for m in modules), fontsize=8.5, va="center", family="monospace")
        ax.text(2.0, y + 0.3, ROLE.get(name, ""), fontsize=8, va="center", style="italic", color="#222")
        if i < top:
            ax.add_patch(
                FancyArrowPatch((9.3, y + 0.3), (9.3, y - 0.3), arrowstyle="-|>", mutation_scale=14, color="#1f3b5c")
            )
    ax.text(9.3, top + 0.72, "imports", fontsize=8, ha="center")
    ax.set_title("glyphlab's layers: a module imports its own layer and those below, never above", fontsize=10)
    fig.savefig(out, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


if __name__ == "__main__":
    draw(ROOT / "docs" / "architecture.svg")
    print(f"wrote {ROOT / 'docs' / 'architecture.svg'}")
