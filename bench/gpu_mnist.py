"""The GPU path, once (issue 31): time to 99 % MNIST with cnn-fast in fp32 / bf16 / fp16, and recipe candidates.

    python bench/gpu_mnist.py --data-dir ../shared/data              # on a machine with a CUDA GPU
    python bench/gpu_mnist.py --data-dir ../shared/data --quick      # a smoke run (also on a CPU: --device cpu)

Everything is glyphlab's own loop (``model.fit``, which moves the training tensors to the device once and
slices batches there), timed from ``fit``'s call to its return (module built, data copied to the device,
training; no validation split): the leaderboard's ``train s``. Test accuracy on the 10,000 MNIST test digits.

1. ``cnn-fast`` (defaults: one epoch, batch 128, AdamW one-cycle to 1e-2) for seeds 0-2 in every precision.
2. The issue's bare anchor net (three conv3x3+BN+ReLU+maxpool blocks, 16-32-64) with the data on the device, the
   reference glyphlab's loop is measured against (train_mnist_fast's 0.76 s on a GTX 1660 Ti is the outside one).
3. cnn-fast at batch 512 (fewer, larger steps: a GPU this size is bound by per-step overhead at batch 128).
4. Candidates for ``glyphlab recipe mnist-10min`` in bf16, as long as ``--budget`` seconds last.

Rows are printed as they finish and written to ``--json``, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_fast import DEFAULT_DATA, anchor_net, load_mnist_arrays  # noqa: E402  (a sibling bench script)

from glyphlab.models.registry import create_model  # noqa: E402

AUG = {"augment": True, "rotation": 10.0, "shift": 0.08, "scale": [0.9, 1.1]}
#: recipe candidates: (label, model, params); each trained on all 60,000 training digits, bf16
CANDIDATES = [
    ("resnet-small aug 12 ep (the CPU's best single run, 0.9960)", "resnet-small", {**AUG, "epochs": 12, "lr": 4e-3}),
    (
        "resnet-small [64,128,256] blocks [1,1,1] aug 15 ep ema ls",
        "resnet-small",
        {
            **AUG,
            "epochs": 15,
            "lr": 4e-3,
            "width": [64, 128, 256],
            "blocks": [1, 1, 1],
            "ema": 0.999,
            "label_smoothing": 0.1,
        },
    ),
    (
        "cnn-fast [64,128,256] aug 15 ep ema ls",
        "cnn-fast",
        {**AUG, "epochs": 15, "width": [64, 128, 256], "ema": 0.999, "label_smoothing": 0.1},
    ),
    (
        "resnet-small [64,128,256] blocks [1,1,1] aug 30 ep ema ls",
        "resnet-small",
        {
            **AUG,
            "epochs": 30,
            "lr": 4e-3,
            "width": [64, 128, 256],
            "blocks": [1, 1, 1],
            "ema": 0.999,
            "label_smoothing": 0.1,
        },
    ),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fit_glyphlab(name: str, params: dict, x, y, xte, yte, device: torch.device) -> dict:
    model = create_model(name, device=str(device), progress=False, **params)
    sync(device)
    t0 = time.perf_counter()
    model.fit(x, y)
    sync(device)
    seconds = time.perf_counter() - t0
    acc = float((model.predict_proba(xte).argmax(1) == yte).mean())
    return {"seconds": round(seconds, 3), "acc": acc, "precision": model.precision_, "epochs": params.get("epochs", 1)}


def fit_anchor(seed: int, precision: str, x, y, xte, yte, device: torch.device) -> dict:
    """The bare anchor, data normalised and on the device before the clock starts."""
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.manual_seed(seed)
    mean, std = float(x.mean()), float(x.std())
    xt = ((torch.from_numpy(x).unsqueeze(1) - mean) / std).to(device).contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(y).to(device)
    net = anchor_net().to(device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    bs, steps = 128, math.ceil(len(xt) / 128)
    sync(device)
    t0 = time.perf_counter()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    perm = torch.randperm(len(xt), device=device)
    for b in range(steps):
        idx = perm[b * bs : (b + 1) * bs]
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(net(xt[idx]).float(), yt[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        sched.step()
    sync(device)
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.inference_mode():
        xe = (
            ((torch.from_numpy(xte).unsqueeze(1) - mean) / std).to(device).contiguous(memory_format=torch.channels_last)
        )
        acc = float((net(xe).argmax(1).cpu().numpy() == yte).mean())
    return {"seconds": round(seconds, 3), "acc": acc, "precision": precision}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for the whole script; later parts are skipped")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="6,000 training images, one seed, short candidates")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: pass --device cpu for a smoke run")
        info.update(
            gpu=torch.cuda.get_device_name(0),
            bf16=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(),
            tf32_conv=torch.backends.cudnn.allow_tf32,
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    print(json.dumps(info), flush=True)
    xtr, ytr, xte, yte = load_mnist_arrays(args.data_dir)
    if args.quick:
        xtr, ytr = xtr[:6000], ytr[:6000]
    precisions = ["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"]
    seeds = [0] if args.quick else [0, 1, 2]
    rows: list[dict] = []

    def record(part: str, label: str, **row) -> None:
        rows.append({"part": part, "label": label, **row})
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))

    def left() -> float:
        return args.budget - (time.perf_counter() - start)

    for p in precisions:  # warm-up: CUDA context, cuDNN handles and kernel choices (untimed)
        fit_glyphlab("cnn-fast", {"precision": p}, xtr[:4096], ytr[:4096], xte[:512], yte[:512], device)
        fit_anchor(0, p, xtr[:4096], ytr[:4096], xte[:512], yte[:512], device)
    for seed in seeds:
        for p in precisions:
            record(
                "cnn-fast",
                "cnn-fast defaults (1 epoch, batch 128)",
                seed=seed,
                **fit_glyphlab("cnn-fast", {"precision": p, "seed": seed}, xtr, ytr, xte, yte, device),
            )
            record(
                "anchor",
                "bare anchor 16-32-64 (1 epoch, batch 128, data on the device)",
                seed=seed,
                **fit_anchor(seed, p, xtr, ytr, xte, yte, device),
            )
    for seed in seeds:
        for p in precisions:
            if left() < 60:
                break
            record(
                "cnn-fast-bs512",
                "cnn-fast batch 512, 2 epochs",
                seed=seed,
                **fit_glyphlab(
                    "cnn-fast",
                    {"precision": p, "seed": seed, "batch_size": 512, "epochs": 2},
                    xtr,
                    ytr,
                    xte,
                    yte,
                    device,
                ),
            )
    for label, name, params in CANDIDATES:
        per_epoch = [r["seconds"] / r["epochs"] for r in rows if r["part"] == "candidate" and "seconds" in r]
        need = (max(per_epoch) if per_epoch else 3.0) * params["epochs"] * 1.5
        if left() < need:
            record("candidate", label, skipped=f"{left():.0f} s left, ~{need:.0f} s needed")
            continue
        p = {**params, "precision": "bf16" if device.type == "cuda" or "bf16" in precisions else "fp32"}
        if args.quick:
            p["epochs"] = 1
        record("candidate", label, seed=0, **fit_glyphlab(name, p, xtr, ytr, xte, yte, device))
    print(f"done in {time.perf_counter() - start:.1f} s; load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
