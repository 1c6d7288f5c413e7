"""Start-up of a batch worker, of ``glyphlab predict`` on one file and of ``glyphlab --help``, for one or more
glyphlab source trees, alternating, in fresh processes: wall seconds and peak RSS (issue 32's lazy registry).

A worker's start is what a spawned ``glyphlab predict`` worker does before its first chunk: import
``glyphlab.pipeline.predict``, load the model through its ``PredictTask`` and predict one file. Give the tree
before a change and after it (``git archive COMMIT src | tar -x -C /tmp/before``) to compare them in one run:

    python bench/startup.py MODEL_DIR ONE.png --src /tmp/before/src --src src [--rounds 3]

Run it under ``flock /tmp/glyphlab-cpu.lock`` on a shared machine and state the load it prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

WORKER = """
import sys
from glyphlab.pipeline.predict import PredictTask
from glyphlab.serving.predictor import Predictor
model, model_id, png = sys.argv[1:4]
rows = PredictTask(model, "auto", model_id, 3, 50_000_000, 1)([png])
assert "label" in rows[0], rows
print("torch" in sys.modules)
"""


def timed(cmd: list[str], src: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of ``cmd`` run with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": src}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed under {src}")
    return wall, usage.ru_maxrss / 1024, out.strip()


def model_id(model: str, src: str) -> str:
    code = f"from glyphlab.serving.predictor import Predictor; print(Predictor({model!r}).model_id)"
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": src}, capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("png")
    ap.add_argument("--src", action="append", required=True, help="a glyphlab src folder (repeat to compare)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    mid = model_id(args.model, args.src[-1])
    jobs = {
        "worker start": [sys.executable, "-c", WORKER, args.model, mid, args.png],
        "predict one file": [sys.executable, "-m", "glyphlab", "predict", args.model, args.png],
        "--help": [sys.executable, "-m", "glyphlab", "--help"],
    }
    print(f"load average {os.getloadavg()[0]:.1f} before")
    seen: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for src in args.src:
            for name, cmd in jobs.items():
                wall, mb, out = timed(cmd, src)
                seen.setdefault((name, src), []).append((wall, mb))
                if name == "worker start":
                    print(f"  {src}: worker start {wall:.2f} s, {mb:.0f} MB, torch imported: {out}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} after")
    base = args.src[0]
    print("| what | tree | wall s (each round) | median | ratio to the first tree | peak RSS MB |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name in jobs:
        first = statistics.median(w for w, _ in seen[(name, base)])
        for src in args.src:
            walls = [w for w, _ in seen[(name, src)]]
            med = statistics.median(walls)
            rss = max(m for _, m in seen[(name, src)])
            each = ", ".join(f"{w:.2f}" for w in walls)
            print(f"| {name} | {src} | {each} | {med:.2f} | {med / first:.2f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
