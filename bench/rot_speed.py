"""rot-cnn per-epoch speed: candidate architectures against the mnist-rot recipe's network, in one process.

    python bench/rot_speed.py                         # the default candidates against the recipe's rot-cnn
    python bench/rot_speed.py --images 1920           # a longer timed epoch (more steady, slower)
    python bench/rot_speed.py --variant 'fast={"kernels": [7, 5, 3, 3]}'   # add a variant (JSON params)
    python bench/rot_speed.py --profile fast          # torch.profiler table of a few training steps of one

Each network is trained by glyphlab's own loop (``model.fit``: AdamW, one-cycle, the recipe's augmentation,
EMA) for two epochs of ``--images`` of mnist-rot's training digits (random pixels when the data is not there);
the second epoch's seconds, scaled to mnist-rot's 12,000 training images, are the per-epoch figure (the best of
``--repeat`` rounds that alternate the networks, so a burst of outside load cannot fall on one network only). The anchor
is the mnist-rot recipe's rot-cnn (C8, widths [8, 16, 32], 7/5/5/5 kernels), timed in the same run; ratio =
anchor seconds / variant seconds (2.0 = twice as fast). MMAC = multiply-adds of one image's forward pass
through the six steerable convolutions (counted from the layers' shapes). The table names the CPU and the
load average (about 2 with the CPU lock held and both threads busy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_common import cpu_model  # noqa: E402

from glyphlab.data import load_dataset  # noqa: E402
from glyphlab.errors import GlyphlabError  # noqa: E402
from glyphlab.models.registry import create_model  # noqa: E402
from glyphlab.recipes import load_recipe  # noqa: E402

MNIST_ROT_TRAIN = 12_000
#: the mnist-rot recipe's rot-cnn, read from the recipe itself, minus the epoch count (set per timing) and what
#: only changes the final fit or inference
RECIPE = {
    k: v
    for k, v in load_recipe("mnist-rot").models["rot-cnn"].params.items()
    if k not in ("epochs", "fit_on_val", "tta_rotations")
}
CANDIDATES = {
    "recipe (anchor)": {},
    "kernels 7/5/3/3, widths 8/12/32": {"kernels": [7, 5, 3, 3], "widths": [8, 12, 32]},
    "kernels 7/5/3/3, widths 6/12/32": {"kernels": [7, 5, 3, 3], "widths": [6, 12, 32]},
}


def conv_macs(model, shape=(28, 28)) -> float:
    """Multiply-adds of one image's forward pass through the steerable convolutions (millions)."""
    from e2cnn import nn as enn

    net = model.build_module(shape, 10).eval()
    total = []

    def hook(mod, _inp, out):
        t = out.tensor
        k = mod.kernel_size
        total.append(t.shape[-1] * t.shape[-2] * t.shape[1] * mod.in_type.size * k * k)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, enn.R2Conv)]
    with torch.no_grad():
        net(torch.rand(1, 1, *shape))
    for h in handles:
        h.remove()
    return sum(total) / 1e6


def training_images(images: int, data_dir: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``images`` of mnist-rot's training digits when its data is at hand, else random pixels."""
    try:
        ds = load_dataset("mnist-rot", Path(data_dir), download=False)
        return ds["train"].images[:images], ds["train"].labels[:images], "mnist-rot training digits"
    except GlyphlabError:
        rng = np.random.default_rng(seed)
        return rng.random((images, 28, 28), dtype=np.float32), np.arange(images) % 10, "random pixels"


def epoch_seconds(params: dict, x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(seconds of the second training epoch on ``x``, scaled to 12,000 images; the first epoch's, scaled)."""
    images = len(x)
    model = create_model("rot-cnn", **{**RECIPE, **params, "epochs": 2, "progress": False, "seed": seed})
    model.fit(x, y, classes=[str(i) for i in range(10)])
    first, second = (float(r["seconds"]) for r in model.history_)
    return second * MNIST_ROT_TRAIN / images, first * MNIST_ROT_TRAIN / images


def profile(params: dict, steps: int = 6) -> None:
    """torch.profiler's table of ``steps`` training steps (batch 64) after two warm-up steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    model = create_model("rot-cnn", **{**RECIPE, **params})
    net = model.build_module((28, 28), 10).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x, y = torch.rand(64, 1, 28, 28), torch.arange(64) % 10

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    with tprofile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        dt = time.perf_counter() - t0
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
    print(f"{steps} steps in {dt:.2f} s ({dt / steps * 1000:.0f} ms a step of 64 images, under the profiler)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1280, help="images in each timed epoch (default 1280: 20 steps)")
    ap.add_argument(
        "--variant", action="append", default=[], help="LABEL=JSON params (repeatable; replaces the defaults)"
    )
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the networks (the best round counts)")
    ap.add_argument("--data-dir", default=os.environ.get("GLYPHLAB_DATA", "/work/shared/data"))
    ap.add_argument("--profile", default="", help="a variant's label: print torch.profiler's table of its steps")
    args = ap.parse_args(argv)
    variants = dict(CANDIDATES)
    if args.variant:
        variants = {"recipe (anchor)": {}}
        for item in args.variant:
            label, _, js = item.partition("=")
            variants[label] = json.loads(js)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    if args.profile:
        match = [k for k in variants if k.startswith(args.profile)] or [args.profile]
        profile(variants.get(match[0], {}))
        return 0
    x, y, what = training_images(args.images, args.data_dir)
    load0 = os.getloadavg()[0]
    macs = {label: conv_macs(create_model("rot-cnn", **{**RECIPE, **params})) for label, params in variants.items()}
    times: dict[str, list[float]] = {label: [] for label in variants}
    for r in range(args.repeat):  # alternated, so a burst of outside load hits one round, not one network
        for label, params in variants.items():
            sec, first = epoch_seconds(params, x, y)
            times[label].append(sec)
            console.print(
                f"[dim]round {r + 1}: {label}: {sec:.1f} s an epoch of 12,000 (first epoch {first:.1f} s), "
                f"load {os.getloadavg()[0]:.2f}[/]"
            )
    rows = [(label, params, macs[label], min(times[label]), times[label]) for label, params in variants.items()]
    anchor = rows[0][3]
    table = Table(
        title=f"rot-cnn seconds per mnist-rot epoch (12,000 images; timed on {args.images} {what}, 2nd epoch)"
    )
    for col in ("network", "params", "MMAC/image", "s/epoch (best)", "each round", "ratio to recipe"):
        table.add_column(col, justify="left" if col in ("network", "params") else "right")
    for label, params, mmac, sec, each in rows:
        table.add_row(
            label,
            json.dumps(params),
            f"{mmac:.1f}",
            f"{sec:.1f}",
            " ".join(f"{t:.1f}" for t in each),
            f"{anchor / sec:.2f}x",
        )
    console.print(table)
    console.print(
        f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}; load average "
        f"{load0:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
