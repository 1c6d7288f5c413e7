"""Batch prediction at scale (issue 32): files/s and peak memory for N generated small PNGs, three ways.

One run times the same job (``glyphlab.pipeline.predict.predict``: lazy folder walk, chunks of 256, rows to a
JSON-lines file as they come) on

- one process (``workers=1``),
- every local core (``workers`` = the usable cores: spawned processes, each loading the model once),
- a local Dask cluster (``cluster="local"``: a LocalCluster of one single-threaded worker process per core),

each in a fresh child process, and prints files/s and the ratio to one process (over the whole job, and after
the first chunk is written, i.e. without the start-up: processes, imports, model loads), and memory: the client's own
peak RSS, the largest worker's (any other process of the tree: Dask's nannies and scheduler too), and the peak
of the summed RSS over the whole process tree, all sampled with psutil every 0.2 s. The model is a logistic regression on scikit-learn's digits with its ONNX export (what
``glyphlab serve`` would use); the images are those digits, upscaled to 32x32 and shifted, written once as PNGs
into folders of 1,000 under ``--dir`` (kept for the next run with the same ``--n``).

    python bench/predict_scale.py [--n 10000] [--dir /tmp/glyphlab-predict-scale] [--modes one,cores,dask]

Run it under ``flock /tmp/glyphlab-cpu.lock`` on a shared machine; ``--n 1000000`` needs ~4 GB of disk and runs
for hours on a loaded 2-core machine, so there it runs under ``nice`` without the lock, and the load average
sampled during each mode is printed beside its figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from serving_common import cpu_model, process_tree  # bench/ is on sys.path when a bench runs as a script

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
MODES = {"one": {"workers": 1}, "cores": {"workers": CORES}, "dask": {"workers": CORES, "cluster": "local"}}
PER_FOLDER = 1_000


def make_images(folder: Path, n: int) -> None:
    """``n`` PNGs of digits (32x32, dark ink on white, shifted by up to 3 pixels), 1,000 per sub-folder."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    marker = folder / f".complete-{n}"
    if marker.exists():
        return
    digits = load_digits().images / 16.0
    rng = np.random.default_rng(0)
    encoded: dict[tuple[int, int, int], bytes] = {}  # 1,797 digits x 64 shifts: a million files, ~115,000 encodes

    def png(k: int, dy: int, dx: int) -> bytes:
        if (k, dy, dx) not in encoded:
            canvas = np.zeros((32, 32))
            canvas[dy : dy + 24, dx : dx + 24] = np.kron(digits[k], np.ones((3, 3)))
            buf = io.BytesIO()
            Image.fromarray((255 - canvas * 255).astype(np.uint8)).save(buf, "PNG")
            encoded[(k, dy, dx)] = buf.getvalue()
        return encoded[(k, dy, dx)]

    for i in range(n):
        sub = folder / f"{i // PER_FOLDER:05d}"
        if i % PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        dy, dx = rng.integers(0, 32 - 24, size=2)
        (sub / f"{i:07d}.png").write_bytes(png(i % len(digits), int(dy), int(dx)))
    marker.touch()


def make_model(folder: Path) -> Path:
    """A logistic regression on the digits, saved with its ONNX export beside it (once)."""
    from glyphlab.data.registry import resolve_dataset
    from glyphlab.models.registry import create_model
    from glyphlab.serving.onnx_export import export_onnx

    target = folder / "model-logreg"
    if (target / "model.onnx").exists():
        return target
    ds = resolve_dataset("digits")
    train = ds.splits["train"]
    model = create_model("logreg")
    model.fit(train.images, train.labels, classes=ds.classes)
    model.save(target)
    export_onnx(target)
    return target


def child(mode: str, model: str, images: str, out: str) -> None:
    """One timed job in this process; prints a JSON line of its figures."""
    from glyphlab.events import BatchProgress, observing
    from glyphlab.pipeline.predict import PredictSettings, predict

    first: list[tuple[float, int]] = []  # (when, rows) of the first chunk written: the start-up's end

    class FirstChunk:
        def on_event(self, event) -> None:
            if isinstance(event, BatchProgress) and not first:
                first.append((time.perf_counter(), event.done))

    t0 = time.perf_counter()
    with observing(FirstChunk()):
        result = predict(PredictSettings(model, [images], out=out, **MODES[mode]))
    end = time.perf_counter()
    seconds = end - t0
    (t_first, n_first) = first[0]
    steady = (result.written - n_first) / (end - t_first) if end > t_first else 0.0
    figures = {"written": result.written, "failed": result.failed, "seconds": seconds, "executor": result.executor}
    print(json.dumps({**figures, "first_row_s": t_first - t0, "steady": steady}))


def timed(mode: str, model: Path, images: Path, out: Path) -> dict:
    """Run :func:`child` in a fresh process, sampling (every 0.2 s) its own RSS, the largest of its descendants' and
    the tree's sum, and (every 5 s) the machine's 1-minute load average: on a shared machine the figures mean little
    without it. (Not ``ru_maxrss``: Linux keeps a process's high-water mark across ``exec``, so a spawned child's
    would count the pages of the process that forked it.)"""
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", mode, "--model", str(model), "--images", str(images), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = {"client": 0, "worker": 0, "tree": 0}
    loads: list[float] = []

    def sample() -> None:
        last_load = 0.0
        while proc.poll() is None:
            if time.monotonic() - last_load >= 5:
                loads.append(os.getloadavg()[0])
                last_load = time.monotonic()
            total = 0
            for p in process_tree(proc.pid):
                try:
                    rss = p.memory_info().rss
                except Exception:  # a process that ended between the listing and the look
                    continue
                total += rss
                which = "client" if p.pid == proc.pid else "worker"
                peak[which] = max(peak[which], rss)
            peak["tree"] = max(peak["tree"], total)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed with exit code {proc.returncode}")
    load = {"load_min": min(loads), "load_mean": sum(loads) / len(loads), "load_max": max(loads)} if loads else {}
    memory = {f"{k}_mb": v / 2**20 for k, v in peak.items()}
    return {**json.loads(stdout.strip().splitlines()[-1]), **memory, **load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/glyphlab-predict-scale"))
    ap.add_argument("--modes", default="one,cores,dask")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--images", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.model, args.images, args.out)
    images = args.dir / f"images-{args.n}"
    t0 = time.perf_counter()
    make_images(images, args.n)
    print(f"{args.n:,} PNGs in {images} ({time.perf_counter() - t0:.0f} s to make or find)")
    model = make_model(args.dir)
    load = os.getloadavg()[0]
    rows = []
    for mode in args.modes.split(","):
        r = timed(mode, model, images, args.dir / f"rows-{mode}.jsonl")
        rows.append((mode, r))
        print(f"  {mode}: {r['written']:,} rows in {r['seconds']:.1f} s, {json.dumps(r)}", flush=True)
    first = dict(rows).get("one", rows[0][1])  # ratios to one process, in whatever order the modes ran
    base = first["written"] / first["seconds"]
    base_steady = first["steady"]
    print(f"\n{cpu_model()}, {os.cpu_count()} CPUs, load average {load:.1f} before / {os.getloadavg()[0]:.1f} after")
    print(
        "| mode | executor | files | s | files/s | ratio | first row s | files/s after | ratio after "
        "| client peak MB | largest worker MB | tree peak MB | load during (min-max, mean) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, r in rows:
        rate = r["written"] / r["seconds"]
        print(
            f"| {mode} | {r['executor'].split(' at ')[0]} | {r['written']:,} | {r['seconds']:.1f} | {rate:,.0f} "
            f"| {rate / base:.2f} | {r['first_row_s']:.1f} | {r['steady']:,.0f} | {r['steady'] / base_steady:.2f} "
            f"| {r['client_mb']:.0f} | {r['worker_mb']:.0f} | {r['tree_mb']:.0f} "
            f"| {r.get('load_min', 0):.1f}-{r.get('load_max', 0):.1f}, {r.get('load_mean', 0):.1f} |"
        )
    same = {
        (args.dir / f"rows-{m}.jsonl").read_bytes() == (args.dir / f"rows-{rows[0][0]}.jsonl").read_bytes()
        for m, _ in rows
    }
    print(f"identical outputs across modes: {same == {True}}")


if __name__ == "__main__":
    main()
