"""Training speed and accuracy of glyphlab's torch nets on real MNIST, against a minimal plain-PyTorch loop.

    python bench/train_speed.py            # time-to-99 % (resnet-small) and seed 004's cnn-small recipe
    python bench/train_speed.py --quick    # a 1-epoch smoke run on 10,000 images
    python bench/train_speed.py --long     # adds the best-accuracy-in-10-minutes resnet-small recipe

For every glyphlab case the SAME architecture (the module glyphlab builds) is also trained by a bare loop
(randperm + slicing, the same optimiser and one-cycle schedule, no validation, no checkpoints, no progress
bar) in the same run; the table gives glyphlab's images/s as a ratio of the bare loop's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from glyphlab.data.mnist import read_idx
from glyphlab.models.registry import create_model
from glyphlab.models.torch.loop import TrainConfig, configure_threads, lr_at

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = (HERE / ".." / ".." / "shared" / "data" / "mnist").resolve()


def find(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (data_dir / name).exists():
            return data_dir / name
    sys.exit(f"no {stem}[.gz] in {data_dir}: pass --data-dir pointing at the MNIST IDX files")


def load(data_dir: Path):
    xtr = read_idx(find(data_dir, "train-images-idx3-ubyte")).astype(np.float32) / 255.0
    ytr = read_idx(find(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
    xte = read_idx(find(data_dir, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    yte = read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    return xtr, ytr, xte, yte


def plain_loop(
    module: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    weight_decay: float,
    schedule: str,
    seed: int,
) -> float:
    """The minimal loop: tensors in memory, randperm + slices, optimiser step. Returns wall seconds."""
    torch.manual_seed(seed)
    xt = torch.from_numpy(x).unsqueeze(1)
    yt = torch.from_numpy(y)
    opt_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[optimizer]
    opt = opt_cls(module.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(xt)
    steps = math.ceil(n / batch_size)
    cfg = TrainConfig(lr=lr, schedule=schedule)
    module.train()
    t0 = time.perf_counter()
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n)
        for b in range(steps):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, epochs * steps, cfg)
            loss = F.cross_entropy(module(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return time.perf_counter() - t0


@torch.inference_mode()
def accuracy(module, x, y) -> float:
    module.eval()
    correct = 0
    for i in range(0, len(x), 2048):
        correct += int(
            (module(torch.from_numpy(x[i : i + 2048]).unsqueeze(1)).argmax(1).numpy() == y[i : i + 2048]).sum()
        )
    return correct / len(x)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="1 epoch on 10,000 images: a smoke run")
    ap.add_argument("--long", action="store_true", help="also the best-accuracy-within-10-minutes case")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated model names or case labels to run, e.g. cnn-small or 'resnet-small long (aug; 10 min)'",
    )
    ap.add_argument("--no-plain", action="store_true", help="skip the plain-PyTorch reference runs")
    args = ap.parse_args(argv)
    console = Console()
    threads = configure_threads()
    xtr, ytr, xte, yte = load(args.data_dir)
    # glyphlab gets a 5,000-image validation split (monitored every epoch); the plain loop trains on the same 55,000
    xva, yva, xtr, ytr = xtr[-5000:], ytr[-5000:], xtr[:-5000], ytr[:-5000]
    if args.quick:
        xtr, ytr = xtr[:10000], ytr[:10000]

    cases = [
        ("resnet-small (time to 99%)", "resnet-small", {}),
        (
            "cnn-small (seed 004 recipe)",
            "cnn-small",
            dict(epochs=10, batch_size=200, lr=1e-3, optimizer="adam", schedule="none", patience=0),
        ),
    ]
    if args.long:
        cases.append(("resnet-small long (aug; 10 min)", "resnet-small", LONG_PARAMS))
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c[1] in keep or c[0] in keep]
    if args.quick:
        cases = [(label, name, {**p, "epochs": 1}) for label, name, p in cases]

    table = Table(title=f"MNIST training speed ({threads} torch threads, {len(xtr):,} training images)")
    for col in ("model", "epochs", "wall s", "images/s", "test acc", "vs plain"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for label, name, params in cases:
        model = create_model(name, progress=True, **params)
        t0 = time.perf_counter()
        model.fit(xtr, ytr, xva, yva)
        wall = time.perf_counter() - t0
        epochs = len(model.history_)
        ips = len(xtr) * epochs / wall
        acc = model.score(xte, yte)
        ratio = ""
        row_plain = None
        if not args.no_plain:
            p = model.params
            torch.manual_seed(int(p["seed"]))
            module = model.build_module((28, 28), 10)
            module.norm.mean.fill_(model.mean_)
            module.norm.std.fill_(model.std_)
            pw = plain_loop(
                module,
                xtr,
                ytr,
                epochs=epochs,
                batch_size=int(p["batch_size"]),
                lr=float(p["lr"]),
                optimizer=p["optimizer"],
                weight_decay=float(p["weight_decay"]),
                schedule=p["schedule"],
                seed=int(p["seed"]),
            )
            pips = len(xtr) * epochs / pw
            ratio = f"{ips / pips:.2f}"
            row_plain = (
                "  plain PyTorch, same net",
                str(epochs),
                f"{pw:.1f}",
                f"{pips:,.0f}",
                f"{accuracy(module, xte, yte):.4f}",
                "1.00",
            )
        table.add_row(label, str(epochs), f"{wall:.1f}", f"{ips:,.0f}", f"{acc:.4f}", ratio)
        if row_plain:
            table.add_row(*row_plain, style="dim")
    console.print(table)


#: resnet-small's setting for best accuracy within 10 minutes on a 2-core CPU (augmentation + more epochs)
LONG_PARAMS = dict(epochs=12, augment=True, rotation=10.0, shift=0.08, scale=[0.9, 1.1], lr=4e-3, patience=0)

if __name__ == "__main__":
    main()
