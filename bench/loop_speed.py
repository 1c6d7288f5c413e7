"""glyphlab's training loop against a bare PyTorch loop, images/s on every net glyphlab ships (issue 19).

    python bench/loop_speed.py                         # every torch net, 12,000 MNIST images, 1 epoch, 3 rounds
    python bench/loop_speed.py --nets resnet-small --limit 6000 --rounds 5

For each net the SAME module (glyphlab's ``build_module`` with the model's defaults, one epoch) is trained
by :func:`glyphlab.models.torch.trainer.train` and by a bare loop (randperm + slices, the same torch optimiser,
learning-rate schedule, label smoothing and batch size; no validation, no checkpoint, no progress bar),
alternating round by round so both see the same machine load; the table gives medians. glyphlab is timed
twice: as ``glyphlab run`` calls it (a 10 % validation split evaluated every epoch, a checkpoint and
history.csv in a run folder, the progress events drawn by the CLI's console observer) and without validation
(the loop's own overhead).
Images/s counts training images only. CPU seconds (``time.process_time``) are given beside wall seconds:
on a shared CPU other jobs inflate them less.

Every net is timed in each of ``--precisions`` (default fp32 and bf16; issue 31), in the same rounds: the bare
loop under the same ``torch.autocast`` as glyphlab's, one row per precision with its test accuracy (2,000 MNIST
test images, after the timed no-validation run) and its speed against fp32. The CPU's bf16 flags are printed:
without avx512_bf16 or AMX, bf16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401  glyphlab's engine imports it too; neither side pays it while timed
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_fast import DEFAULT_DATA, cpu_model, load_mnist_arrays  # noqa: E402  (a sibling bench script)

from glyphlab.console import ConsoleObserver  # noqa: E402
from glyphlab.events import observing  # noqa: E402
from glyphlab.models.registry import create_model  # noqa: E402
from glyphlab.models.torch.augment import augment_batch  # noqa: E402
from glyphlab.models.torch.loop import (
    autocast_dtype,
    configure_threads,
    cpu_flags,
    loss_and_accuracy,  # noqa: E402
    lr_at,
    make_optimizer,
)
from glyphlab.models.torch.params import train_config  # noqa: E402
from glyphlab.models.torch.trainer import train  # noqa: E402

NETS = ("mlp", "cnn-small", "cnn-deep", "resnet-small", "cnn-fast", "rot-cnn")


def build(name: str, x: np.ndarray, precision: str = "fp32"):
    """A fresh module and loop config for net ``name`` (its defaults, one epoch), seeded as glyphlab seeds it."""
    model = create_model(name, epochs=1, progress=True, precision=precision)
    model.classes_ = [str(i) for i in range(10)]
    model.input_shape_ = tuple(x.shape[1:])
    torch.manual_seed(int(model.params["seed"]))
    module = model.build_module(model.input_shape_, 10)
    module.norm.mean.fill_(float(x.mean()))
    module.norm.std.fill_(float(x.std()))
    return module, train_config(model.params, epochs=1, patience=None)


def bare_loop(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg) -> None:
    """The minimal loop: tensors in memory, randperm + slices, the same optimiser, schedule, loss and (when the
    net's defaults augment, as rot-cnn's do) the same augmentation call."""
    xt, yt = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)
    opt = make_optimizer(module.parameters(), cfg)  # one torch.optim constructor per name, nothing else
    n, bs = len(xt), int(cfg.batch_size)
    steps = math.ceil(n / bs)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    aug_gen = torch.Generator().manual_seed(int(cfg.seed) + 1)
    aug = cfg.augment if (cfg.augment is not None and cfg.augment.active) else None
    amp = autocast_dtype(torch.device("cpu"), cfg.precision)
    module.train()
    step = 0
    for _ in range(int(cfg.epochs)):
        perm = torch.randperm(n, generator=gen)
        for b in range(steps):
            idx = perm[b * bs : (b + 1) * bs]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps * int(cfg.epochs), cfg)
            xb = xt[idx] if aug is None else augment_batch(xt[idx], aug, aug_gen)
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(module(xb).float(), yt[idx], label_smoothing=float(cfg.label_smoothing))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1


def timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder holding mnist/")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--limit", type=int, default=12000, help="training images (a 10 %% validation split is added)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16 (the first is the reference)"
    )
    args = ap.parse_args(argv)
    threads = configure_threads()
    xtr, ytr, xte, yte = load_mnist_arrays(args.data_dir)
    n = args.limit
    x, y, xv, yv = xtr[:n], ytr[:n], xtr[-(n // 10) :], ytr[-(n // 10) :]
    xt, yt = torch.from_numpy(xte[:2000]).unsqueeze(1), torch.from_numpy(yte[:2000])
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    console = Console(width=220)
    table = Table(
        title=f"Training loop: glyphlab vs bare PyTorch, {n:,} images, 1 epoch, median of {args.rounds} "
        f"alternating rounds ({threads} torch thread(s)), {' vs '.join(precisions)}"
    )
    for col in (
        "net",
        "precision",
        "bare s",
        "glyphlab s",
        "glyphlab s (no val)",
        "images/s ratio",
        "ratio (no val)",
        "CPU ratio (no val)",
        f"speed vs {precisions[0]} (no val)",
        "test acc",
        "load 1 min",
    ):
        table.add_column(col, justify="left" if col in ("net", "precision") else "right")
    for name in [s.strip() for s in args.nets.split(",") if s.strip()]:
        try:
            build(name, x)
        except Exception as exc:  # an optional family (rot-cnn needs e2cnn) that is not installed
            console.print(f"[yellow]{name}: skipped ({exc})[/]")
            continue
        for prec in precisions:  # warm-up on a slice (first-call costs of the ops, in each precision), untimed
            module, cfg = build(name, x, prec)
            bare_loop(module, x[:512], y[:512], cfg)
            train(build(name, x, prec)[0], x[:512], y[:512], n_classes=10, config=cfg)
        times = {p: {"bare": [], "full": [], "noval": []} for p in precisions}
        acc: dict[str, float] = {}
        for _ in range(args.rounds):
            for prec in precisions:  # alternating, so every precision sees the same machine load
                module, cfg = build(name, x, prec)
                times[prec]["bare"].append(timed(lambda: bare_loop(module, x, y, cfg)))
                with tempfile.TemporaryDirectory() as tmp, observing(ConsoleObserver(console)):  # bar and lines
                    module, cfg = build(name, x, prec)
                    times[prec]["full"].append(
                        timed(
                            lambda: train(
                                module, x, y, xv, yv, n_classes=10, config=cfg, run_dir=tmp, fingerprint="bench"
                            )
                        )
                    )
                module, cfg = build(name, x, prec)
                times[prec]["noval"].append(timed(lambda: train(module, x, y, n_classes=10, config=cfg)))
                acc[prec] = loss_and_accuracy(module, xt, yt, 1000)[1]  # fp32 inference, as predict does
        med = {
            p: {k: (float(np.median([w for w, _ in v])), float(np.median([c for _, c in v]))) for k, v in t.items()}
            for p, t in times.items()
        }
        ref = med[precisions[0]]["noval"][0]
        for prec in precisions:
            m = med[prec]
            table.add_row(
                name,
                prec,
                f"{m['bare'][0]:.2f}",
                f"{m['full'][0]:.2f}",
                f"{m['noval'][0]:.2f}",
                f"{m['bare'][0] / m['full'][0]:.3f}",
                f"{m['bare'][0] / m['noval'][0]:.3f}",
                f"{m['bare'][1] / m['noval'][1]:.3f}",
                f"{ref / m['noval'][0]:.2f}x",
                f"{acc[prec]:.4f}",
                f"{os.getloadavg()[0]:.1f}",
            )
    console.print(table)
    flags = cpu_flags()
    bf16 = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx512f", "avx2") if f in flags]
    console.print(
        f"CPU: {cpu_model()} ({os.cpu_count()} cores); flags: {' '.join(bf16) or 'unknown'}; load average "
        f"{os.getloadavg()}; torch {torch.__version__}. Ratios are bare seconds / glyphlab seconds (= glyphlab's "
        f"images/s as a share of the bare loop's, in the same precision); speed vs {precisions[0]} = its "
        "glyphlab seconds / this row's."
    )


if __name__ == "__main__":
    main()
