"""Where int8 pays: fp32 vs int8 ONNX for glyphlab's networks on this CPU (issue 31, item 4).

    python bench/int8.py --data-dir ../shared/data [--models cnn-small,cnn-deep,resnet-small] [--limit 12000]

For each network, trains it on an MNIST subset (``--limit`` training digits, ``--epochs``; the speed of a graph
does not depend on how well it was trained; the run is kept under ``--work`` and reused), exports it with
``glyphlab export`` (fp32) and ``glyphlab export --quantize int8`` (static int8, calibrated on the run's training
images), then times both ONNX graphs with ONNX Runtime on the 10,000 MNIST test digits at 1 and 2 threads, batch
1,000 and batch 32. Passes are interleaved (fp32, int8, fp32, int8, ...) so a change in the machine's load hits both
alike; the best of ``--rounds`` passes is kept. Prints images/s, the int8/fp32 ratio, both accuracies and the share
of test digits on which int8 and fp32 agree, with the CPU's int8 flags (VNNI, AMX) and the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")


def cpu_line() -> str:
    """The CPU's name, its int8-relevant flags and the load average, for the table's caption."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = ", ".join(f for f in FLAGS if f in flags) or "none of " + "/".join(FLAGS)
    return f"{name}, {os.cpu_count()} cores ({have}); load average {os.getloadavg()[0]:.1f}"


def trained(model: str, work: Path, data_dir: Path, limit: int, epochs: int) -> Path:
    """A run of ``model`` on ``limit`` MNIST training digits under ``work`` (reused when already there)."""
    import glyphlab as gl

    out = work / model
    folder = out / "models" / model / "model"
    if not (folder / "manifest.json").exists():
        gl.run(
            "mnist", [model], out, data_dir=data_dir, limit=limit, params={model: {"epochs": epochs}}, progress=False
        )
    return folder


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def images_per_s(sess, x: np.ndarray, batch: int) -> tuple[float, np.ndarray]:
    """One pass over ``x`` in batches of ``batch``: images/s and the predicted labels."""
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:batch]})  # warm-up
    labels = []
    t = time.perf_counter()
    for i in range(0, len(x), batch):
        labels.append(sess.run(None, {name: x[i : i + batch]})[0].argmax(1))
    return len(x) / (time.perf_counter() - t), np.concatenate(labels)


def measure(fp32: Path, int8: Path, x: np.ndarray, threads: int, batch: int, rounds: int) -> dict:
    sessions = {"fp32": session(fp32, threads), "int8": session(int8, threads)}
    best = {k: 0.0 for k in sessions}
    preds = {}
    for _ in range(rounds):
        for kind, sess in sessions.items():
            ips, preds[kind] = images_per_s(sess, x, batch)
            best[kind] = max(best[kind], ips)
    return {"best": best, "preds": preds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--models", default="cnn-small,cnn-deep,resnet-small")
    ap.add_argument("--limit", type=int, default=12000, help="MNIST training digits for each network")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("runs/bench-int8"))
    args = ap.parse_args()

    import glyphlab as gl
    from glyphlab.data.mnist import load_mnist

    test = load_mnist(args.data_dir, download=False, progress=False).splits["test"]
    x = np.ascontiguousarray(test.images, dtype=np.float32)  # (N, 28, 28) in [0, 1]: the exported graphs' input
    y = np.asarray(test.labels)
    console = Console(width=150)
    table = Table(title="fp32 vs int8 ONNX (ONNX Runtime, 10,000 MNIST test digits)", caption=cpu_line())
    for col in (
        "network",
        "threads",
        "batch",
        "fp32 img/s",
        "int8 img/s",
        "int8/fp32",
        "acc fp32",
        "acc int8",
        "agree",
    ):
        table.add_column(col, justify="right")
    for model in args.models.split(","):
        folder = trained(model, args.work, args.data_dir, args.limit, args.epochs)
        fp32 = Path(gl.export(folder, args.work / f"{model}.onnx").path)
        int8 = Path(gl.export(folder, args.work / f"{model}.int8.onnx", quantize="int8").path)
        for threads in (1, 2):
            for batch in (1000, 32):
                m = measure(fp32, int8, x, threads, batch, args.rounds)
                f, q = m["best"]["fp32"], m["best"]["int8"]
                pf, pq = m["preds"]["fp32"], m["preds"]["int8"]
                table.add_row(
                    model, str(threads), str(batch), f"{f:,.0f}", f"{q:,.0f}", f"{q / f:.2f}x",
                    f"{(pf == y).mean():.4f}", f"{(pq == y).mean():.4f}", f"{(pf == pq).mean():.4f}",
                )  # fmt: skip
        console.print(f"{model}: done ({cpu_line()})")
    console.print(table)


if __name__ == "__main__":
    main()
