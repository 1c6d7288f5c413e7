"""Rotated-MNIST study (seed 000): measured accuracy, macro F1 and training time beside the seed's figures.

    python bench/rotated.py                      # both parts (seed000, then mnist-rot)
    python bench/rotated.py --part seed000       # recipe seed000-rotated: logreg, cnn-small (+ rotation aug), rot-cnn
    python bench/rotated.py --part mnist-rot     # recipe mnist-rot (12k train / 50k test): rot-cnn
    python bench/rotated.py --quick              # the recipes' quick mode (a few hundred images, 1 epoch)

Options: --out DIR (run folders, default runs/bench-rotated), --data-dir (default /work/shared/data or
$GLYPHLAB_DATA), --param model.key=value (repeatable, as `glyphlab run`), --robust-limit N (test images per
angle for the robustness spread, default 2000; 0 = all), --only LABELS (run some of the recipe's models).
Each part is a normal glyphlab run folder; the robustness spread is the max-min accuracy of each model whose
label starts with rot-cnn (a recipe copy may hold several, e.g. networks over C8 and C16 and their average)
over 24 angles (0, 15, ..., 345 degrees) of the run's test images; the target is checked on `rot-cnn`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from glyphlab import render
from glyphlab.console import ConsoleObserver
from glyphlab.evaluation.robustness import robustness
from glyphlab.models.registry import parse_params
from glyphlab.pipeline.run import run
from glyphlab.recipes import load_recipe, resolve_members, to_run_config
from glyphlab.runfolder import RunFolder

#: each part is a shipped recipe: its dataset, models and settings (the README's figures come from these)
PARTS = {"seed000": "seed000-rotated", "mnist-rot": "mnist-rot"}
TARGETS = {"seed000": 0.97, "mnist-rot": 0.99}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", *PARTS], default="all")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-rotated"))
    ap.add_argument("--data-dir", default=os.environ.get("GLYPHLAB_DATA", "/work/shared/data"))
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--robust-limit", type=int, default=2000)
    ap.add_argument("--only", default="", help="comma-separated model labels of the recipe to run (default: all)")
    args = ap.parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    parts = list(PARTS) if args.part == "all" else [args.part]
    table = Table(title="rotated MNIST: measured vs seed 000" + (" (QUICK: not comparable)" if args.quick else ""))
    for col in (
        "dataset",
        "model",
        "accuracy",
        "macro F1",
        "train s",
        "seed acc",
        "seed F1",
        "rot. spread (24 angles)",
    ):
        table.add_column(col, justify="left" if col in ("dataset", "model") else "right")
    for part in parts:
        recipe = load_recipe(PARTS[part])
        cfg = to_run_config(recipe, quick=args.quick, data_dir=args.data_dir)
        for label, extra in parse_params(args.param, cfg.models).items():
            cfg.params.setdefault(label, {}).update(extra)
        if args.only:
            keep = set(args.only.split(","))
            cfg.models = [m for m in cfg.models if m.partition("=")[0] in keep]
        dataset = cfg.dataset
        out = args.out / (part + ("-quick" if args.quick else ""))
        resolve_members(cfg, out)
        t0 = time.perf_counter()
        run(cfg, out, report=False, observers=[ConsoleObserver(console)])
        console.print(f"[dim]{part}: run took {time.perf_counter() - t0:.0f} s in all[/]")
        rot_models = [label for label, _, _ in (m.partition("=") for m in cfg.models) if label.startswith("rot-cnn")]
        rob = robustness(out, [15.0 * i for i in range(24)], models=rot_models, limit=args.robust_limit or None)
        render.robustness(console, rob)
        trained = sum(float(r["train_seconds"]) for r in RunFolder(out).leaderboard_rows())
        console.print(
            f"[bold]{part}: {trained:.0f} s of training in all[/] (every model of the run; an ensemble "
            "trains nothing itself, its members' times are their own rows)"
        )
        for row in sorted(RunFolder(out).leaderboard_rows(), key=lambda r: r["model"]):
            ref = recipe.reference.get(row["model"])
            seed = (ref.get("accuracy"), ref.get("f1_macro")) if isinstance(ref, dict) else None
            spread = f"{rob.spread(row['model']):.4f}" if row["model"] in rob.models else ""
            ok = row["accuracy"] >= TARGETS[part] if row["model"] == "rot-cnn" else None
            acc = f"{row['accuracy']:.4f}" + ("" if ok is None else (" ✓" if ok else f" (target {TARGETS[part]:.2f})"))
            table.add_row(
                dataset,
                row["model"],
                acc,
                f"{row['f1_macro']:.4f}",
                f"{row['train_seconds']:.0f}",
                _fmt(seed and seed[0]),
                _fmt(seed and seed[1]),
                spread,
            )
    console.print(table)
    return 0


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else ""


if __name__ == "__main__":
    sys.exit(main())
