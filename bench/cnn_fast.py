"""Time to 99 % MNIST test accuracy: ``glyphlab run --models cnn-fast`` against a bare PyTorch net (issue 19).

    python bench/cnn_fast.py                      # 3 seeds, full MNIST (~1-2 min per seed on an idle 2-core CPU)
    python bench/cnn_fast.py --seeds 0 --limit 6000   # a quick check on 6,000 training images

The anchor is the issue's bare PyTorch net, trained here in the same process for every seed: three
conv3x3 + BN + ReLU + maxpool blocks (16, 32, 64), a linear head, AdamW, one-cycle to 1e-2, label smoothing
0.1, batch 128, channels_last, inputs normalised by the training mean/std, one epoch on the 60,000 training
images. Its time is the training loop alone (optimiser construction included, data already in memory).

glyphlab's figure is what its leaderboard reports: ``train s`` of ``glyphlab run --dataset mnist --models
cnn-fast --seed S`` run as a separate process, i.e. ``model.fit`` with the run's validation split, per-epoch
checkpoint, history and progress bar (54,000 training images, 6,000 validation). Anchor and glyphlab runs
alternate seed by seed, so both see the same machine load. Besides wall seconds the table gives CPU seconds
(``time.process_time``), which other jobs on a shared CPU inflate less; the load average is printed with
every row.

Each seed is run in every precision of ``--precisions`` (default fp32 and bf16, issue 31): the anchor under
``torch.autocast("cpu", dtype=torch.bfloat16)`` around its forward pass, glyphlab with ``--param precision=bf16``;
the table gives each precision's row and its speed against fp32 (same seed, same process, alternating).
``--anchor-width 64,128,256`` times the issue's wide anchor, where bf16 pays most. The CPU's bf16 flags are
printed with the table: without avx512_bf16 or AMX, bf16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401  imported before timing, as glyphlab's engine does (torch.optim needs it)
import torch.nn as nn
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from serving_common import cpu_model  # bench/ is on sys.path when a bench runs as a script

from glyphlab.data.mnist import read_idx
from glyphlab.models.torch.loop import configure_threads, cpu_flags, cpu_has_bf16

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = (HERE / ".." / ".." / "shared" / "data").resolve()


def load_mnist_arrays(data_dir: Path) -> tuple[np.ndarray, ...]:
    mnist = data_dir / "mnist"

    def read(stem: str) -> np.ndarray:
        for name in (f"{stem}.gz", stem):
            if (mnist / name).exists():
                return read_idx(mnist / name)
        sys.exit(f"no {stem}[.gz] in {mnist}: pass --data-dir (the folder holding mnist/)")

    return (
        read("train-images-idx3-ubyte").astype(np.float32) / 255.0,
        read("train-labels-idx1-ubyte").astype(np.int64),
        read("t10k-images-idx3-ubyte").astype(np.float32) / 255.0,
        read("t10k-labels-idx1-ubyte").astype(np.int64),
    )


def anchor_net(width: tuple[int, int, int] = (16, 32, 64)) -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]

    a, b, c = width
    net = nn.Sequential(*block(1, a), *block(a, b), *block(b, c), nn.Flatten(), nn.Linear(c * 3 * 3, 10))
    return net.to(memory_format=torch.channels_last)


def train_anchor(
    seed: int,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    precision: str = "fp32",
    width: tuple[int, int, int] = (16, 32, 64),
) -> dict[str, float]:
    """The issue's bare PyTorch baseline, one epoch; returns wall and CPU seconds of training and test accuracy.
    ``precision`` bf16: the forward pass and loss under CPU autocast (weights and optimiser fp32)."""
    amp = torch.bfloat16 if precision == "bf16" else None
    torch.manual_seed(seed)
    mean, std = float(xtr.mean()), float(xtr.std())
    x = ((torch.from_numpy(xtr).unsqueeze(1) - mean) / std).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(ytr)
    net = anchor_net(width)
    bs = 128
    steps = math.ceil(len(x) / bs)
    t0, c0 = time.perf_counter(), time.process_time()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    net.train()
    perm = torch.randperm(len(x))
    for b in range(steps):
        idx = perm[b * bs : (b + 1) * bs]
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(net(x[idx]).float(), y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    net.eval()
    with torch.inference_mode():
        xt = ((torch.from_numpy(xte).unsqueeze(1) - mean) / std).contiguous(memory_format=torch.channels_last)
        acc = float((net(xt).argmax(1).numpy() == yte).mean())
    return {"wall": wall, "cpu": cpu, "acc": acc}


def run_glyphlab(seed: int, data_dir: Path, model: str, limit: int | None, params: list[str]) -> dict[str, float]:
    """``glyphlab run`` in its own process; the leaderboard's train s (and CPU s) and test accuracy."""
    with tempfile.TemporaryDirectory(prefix="cnn-fast-bench.") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "glyphlab.cli",
            "run",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data_dir),
            "--models",
            model,
            "--seed",
            str(seed),
            "--out",
            tmp,
            "--no-report",
        ]
        if limit:
            cmd += ["--variant", f"subset:{limit}"]
        for p in params:
            cmd += ["--param", p]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"glyphlab run failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        metrics = json.loads((Path(tmp) / "models" / model / "metrics.json").read_text())
    return {
        "wall": float(metrics["train_seconds"]),
        "cpu": float(metrics.get("train_cpu_seconds", math.nan)),
        "acc": float(metrics["accuracy"]),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder holding mnist/ (as glyphlab run's)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--limit", type=int, default=0, help="train on this many images only (a quick check)")
    ap.add_argument("--model", default="cnn-fast")
    ap.add_argument("--param", action="append", default=[], help="passed to glyphlab run (key=value)")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated fp32, bf16; the first is the reference")
    ap.add_argument(
        "--anchor-width", default="16,32,64", help="the anchor's three widths (the issue's wide one: 64,128,256)"
    )
    ap.add_argument("--no-glyphlab", action="store_true", help="time the anchor only")
    args = ap.parse_args(argv)
    threads = configure_threads()
    xtr, ytr, xte, yte = load_mnist_arrays(args.data_dir)
    if args.limit:
        xtr, ytr = xtr[: args.limit], ytr[: args.limit]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    width = tuple(int(w) for w in args.anchor_width.split(","))
    console = Console(width=220)
    table = Table(
        title=f"Time to 99 % MNIST test accuracy: glyphlab run --models {args.model} vs a bare PyTorch net "
        f"(widths {'-'.join(map(str, width))}), {' vs '.join(precisions)} ({threads} torch thread(s))"
    )
    for col in (
        "what",
        "seed",
        "precision",
        "anchor s",
        "glyphlab s",
        "ratio",
        "anchor acc",
        "glyphlab acc",
        "anchor CPU s",
        "glyphlab CPU s",
        "CPU ratio",
        f"anchor speed vs {precisions[0]} (CPU s)",
        f"glyphlab speed vs {precisions[0]} (CPU s)",
        "load 1 min",
    ):
        table.add_column(col, justify="left" if col in ("what", "precision") else "right")
    for prec in precisions:  # warm-up (first-call costs, in each precision), untimed
        train_anchor(0, xtr[:2048], ytr[:2048], xte[:256], yte[:256], prec, width)
    nan = {"wall": math.nan, "cpu": math.nan, "acc": math.nan}
    rows: dict[str, list[tuple[dict, dict]]] = {p: [] for p in precisions}
    for seed in seeds:
        for prec in precisions:  # alternating, so both precisions see the same machine load
            a = train_anchor(seed, xtr, ytr, xte, yte, prec, width)
            g = (
                nan
                if args.no_glyphlab
                else run_glyphlab(
                    seed, args.data_dir, args.model, args.limit or None, [*args.param, f"precision={prec}"]
                )
            )
            rows[prec].append((a, g))
            ra, rg = rows[precisions[0]][-1]
            table.add_row(
                f"{args.model} vs anchor",
                str(seed),
                prec,
                f"{a['wall']:.2f}",
                f"{g['wall']:.2f}",
                f"{g['wall'] / a['wall']:.2f}",
                f"{a['acc']:.4f}",
                f"{g['acc']:.4f}",
                f"{a['cpu']:.2f}",
                f"{g['cpu']:.2f}",
                f"{g['cpu'] / a['cpu']:.2f}",
                f"{ra['cpu'] / a['cpu']:.2f}x",
                f"{rg['cpu'] / g['cpu']:.2f}x",
                f"{os.getloadavg()[0]:.1f}",
            )
    ref_a = np.mean([a["cpu"] for a, _ in rows[precisions[0]]])
    ref_g = np.mean([g["cpu"] for _, g in rows[precisions[0]]])
    for prec in precisions:
        r = rows[prec]
        aw, gw = np.mean([a["wall"] for a, _ in r]), np.mean([g["wall"] for _, g in r])
        ac, gc = np.mean([a["cpu"] for a, _ in r]), np.mean([g["cpu"] for _, g in r])
        gacc = [g["acc"] for _, g in r]
        table.add_row(
            "mean",
            f"{len(r)} seeds",
            prec,
            f"{aw:.2f}",
            f"{gw:.2f}",
            f"{gw / aw:.2f}",
            f"{np.mean([a['acc'] for a, _ in r]):.4f}",
            f"{np.mean(gacc):.4f} ± {np.std(gacc):.4f}",
            f"{ac:.2f}",
            f"{gc:.2f}",
            f"{gc / ac:.2f}",
            f"{ref_a / ac:.2f}x",
            f"{ref_g / gc:.2f}x",
            f"{os.getloadavg()[0]:.1f}",
            style="bold",
        )
    console.print(table)
    flags = cpu_flags()
    shown = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx512f", "avx2") if f in flags]
    console.print(
        f"CPU: {cpu_model()} ({os.cpu_count()} cores); flags: {' '.join(shown) or 'unknown'} (native bf16: "
        f"{'yes' if cpu_has_bf16() else 'no'}); load average {os.getloadavg()}; torch {torch.__version__}; "
        f"training images: {len(xtr):,} (anchor), {'subset ' + str(args.limit) if args.limit else '54,000 + 6,000 validation'} "
        f"(glyphlab). Speeds vs {precisions[0]} are CPU-second ratios (less inflated by other jobs than wall)."
    )


if __name__ == "__main__":
    main()
