"""What a request's path costs when requests come in gaps, alone or several together (run by hand; one table).

    python bench/serve_cold.py MODEL                 # gaps of 3.3 ms (one of two workers at 600 req/s)
    python bench/serve_cold.py MODEL --gaps 1,3.3,10 --together 1,2,3,6

A served upload's work in one worker, without HTTP: decode and prepare a PNG of a test image
(``Predictor.prepare_bytes``), the model on the batch (``Predictor.predict``) and each answer as JSON, for
k uploads back to back. Between rounds the thread either spins (busy, never idle: nothing of this process
runs) or sleeps for the gap; the CPU time of each round (``time.thread_time``) is divided by k. The anchor
is the same round with no gap. On a machine whose caches stay this process's, the gap changes nothing; on
a VM sharing its cores with others the same work costs much more after a few milliseconds away, whether
the thread slept or spun, and several uploads done together share the refill. That is the case for
``glyphlab serve --batch-wait-ms`` (uploads are prepared inside the micro-batch, so requests that wait for
each other are decoded back to back).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from serve_load import png
from serving_common import cpu_model


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def cost_us(predictor, data: bytes, k: int, gap_s: float, how: str, rounds: int) -> float:
    """CPU microseconds per upload of rounds of k uploads, each round after a gap (spun or slept)."""

    def one_round() -> None:
        xs = np.stack([predictor.prepare_bytes(data) for _ in range(k)])
        for row in predictor.predict(xs):
            json.dumps(predictor.describe(row))

    for _ in range(20):
        one_round()
    cpu = 0.0
    for _ in range(rounds):
        if gap_s > 0:
            spin(gap_s) if how == "spin" else time.sleep(gap_s)
        c0 = time.thread_time()
        one_round()
        cpu += time.thread_time() - c0
    return 1e6 * cpu / (rounds * k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a saved model folder (or a run's models/NAME folder)")
    ap.add_argument("--gaps", default="3.3", help="gaps between rounds in ms, comma-separated")
    ap.add_argument("--together", default="1,3", help="uploads per round (k), comma-separated")
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1, help="inference threads")
    ap.add_argument("--dataset", default=None, help="the test image's dataset (default: mnist for 28x28 models)")
    ap.add_argument("--data-dir", default=os.environ.get("GLYPHLAB_DATA", "/work/shared/data"))
    args = ap.parse_args()
    try:
        gaps = [float(g) / 1000 for g in args.gaps.split(",")]
        together = [int(k) for k in args.together.split(",")]
    except ValueError:
        raise SystemExit(
            "--gaps takes milliseconds and --together whole numbers, e.g. --gaps 1,3.3 --together 1,3"
        ) from None
    if min(gaps) < 0 or min(together) < 1 or args.rounds < 1:
        raise SystemExit("gaps must be >= 0, --together and --rounds >= 1")

    from glyphlab.data import load_dataset
    from glyphlab.serving.predictor import Predictor

    predictor = Predictor(args.model, threads=args.threads)
    shape = tuple(predictor.manifest["input_shape"])
    name = args.dataset or ("mnist" if shape == (28, 28) else "digits")
    ds = load_dataset(name, args.data_dir if name == "mnist" else None)
    data = png(np.asarray(ds.splits["test"].images[0], dtype=np.float32))
    load0 = os.getloadavg()
    rows = []
    for k in together:
        anchor = cost_us(predictor, data, k, 0.0, "spin", args.rounds)
        for gap in gaps:
            for how in ("spin", "sleep"):
                value = cost_us(predictor, data, k, gap, how, args.rounds)
                doing = "spinning" if how == "spin" else "asleep"
                rows.append(
                    (
                        f"{k} upload(s) together, after {1000 * gap:g} ms {doing}: CPU µs/upload",
                        f"{k} together, no gap",
                        f"{anchor:.0f}",
                        f"{value:.0f}",
                        f"{value / anchor:.2f}x",
                    )
                )
    load1 = os.getloadavg()
    t = Table(title=f"bench/serve_cold.py, {predictor.model_id} ({predictor.backend}), one {len(data):,}-byte PNG")
    for col in ("what", "anchor", "anchor value", "glyphlab", "ratio", "CPU", "load average"):
        t.add_column(col)
    cpu = f"{cpu_model()}, {os.cpu_count()} cores"
    for row in rows:
        t.add_row(*row, cpu, f"{load0[0]:.1f} → {load1[0]:.1f}")
    Console(width=max(150, Console().width)).print(t)


if __name__ == "__main__":
    main()
