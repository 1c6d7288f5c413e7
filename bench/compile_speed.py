"""Does ``torch.compile`` pay for glyphlab's networks on this CPU? Eager against compiled, fp32 and bf16 (issue 31).

    python bench/compile_speed.py [--nets cnn-small,cnn-fast,resnet-small] [--steps 60] [--threads 1]

For each net (glyphlab's ``build_module`` with the model's defaults) and precision, the same seeded module is
trained for ``--steps`` steps of batch 128 on MNIST-sized inputs (random images: the speed of a step does not
depend on the pixels), eager and through ``torch.compile`` (inductor, which generates C++ for the CPU),
and inference is timed on a batch of 1,000. The compiled side's first steps include the compilation: reported
apart as "compile s" (the first step), then both sides' median step time over the rest. Eager and compiled steps
alternate so a change in the machine's load hits both; the CPU, its bf16 flags and the load average
are printed. "max |diff|": the largest difference of logits between the two modules after the same steps on
the same batches (how far compiled training drifts from eager).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_fast import cpu_model  # noqa: E402  (a sibling bench script)

from glyphlab.models.registry import create_model  # noqa: E402


def module_for(name: str) -> torch.nn.Module:
    model = create_model(name, epochs=1)
    model.classes_ = [str(i) for i in range(10)]
    model.input_shape_ = (28, 28)
    torch.manual_seed(0)
    return model.build_module((28, 28), 10)


def step_times(
    modules: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int, precision: str
) -> dict[str, list[float]]:
    """Seconds of each of ``steps`` training steps (forward under autocast for bf16, backward, AdamW) of every
    module, the modules' steps alternated so the machine's load hits each alike."""
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in modules.items()}
    times: dict[str, list[float]] = {k: [] for k in modules}
    for i in range(steps):
        xb, yb = x[(i * 128) % len(x) :][:128], y[(i * 128) % len(y) :][:128]
        for k, module in modules.items():
            module.train()
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = F.cross_entropy(module(xb).float(), yb)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            times[k].append(time.perf_counter() - t)
    return times


def infer_seconds(module: torch.nn.Module, x: torch.Tensor, rounds: int = 5) -> float:
    module.eval()
    best = float("inf")
    with torch.inference_mode():
        module(x)  # warm-up (and, compiled, the compilation of the eval graph)
        for _ in range(rounds):
            t = time.perf_counter()
            module(x)
            best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="cnn-small,cnn-fast,resnet-small")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1024, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (1024,), generator=gen)
    table = Table(title=f"torch {torch.__version__}: eager vs torch.compile, {args.threads} thread(s)")
    for col in ("net", "precision", "compile s", "eager step ms", "compiled step ms", "train ratio",
                "eager infer ms", "compiled infer ms", "infer ratio", "max |diff|"):  # fmt: skip
        table.add_column(col, justify="right")
    for name in args.nets.split(","):
        for precision in args.precisions.split(","):
            base = module_for(name)
            eager, compiled_src = copy.deepcopy(base), copy.deepcopy(base)
            compiled = torch.compile(compiled_src)
            times = step_times({"compiled": compiled, "eager": eager}, x, y, args.steps, precision)
            c_times, e_times = times["compiled"], times["eager"]
            compile_s = c_times[0]
            e_step, c_step = statistics.median(e_times[5:]), statistics.median(c_times[5:])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                e_inf, c_inf = infer_seconds(eager, x), infer_seconds(compiled, x)
                with torch.inference_mode():
                    diff = float((eager(x[:256]).float() - compiled(x[:256]).float()).abs().max())
            table.add_row(
                name, precision, f"{compile_s:.1f}", f"{e_step * 1e3:.1f}", f"{c_step * 1e3:.1f}",
                f"{e_step / c_step:.2f}x", f"{e_inf * 1e3:.1f}", f"{c_inf * 1e3:.1f}", f"{e_inf / c_inf:.2f}x",
                f"{diff:.1e}",
            )  # fmt: skip
            torch._dynamo.reset()
    console = Console(width=160)
    console.print(table)
    console.print(f"{cpu_model()}; load average {os.getloadavg()[0]:.1f}")
    console.print("ratio = eager time / compiled time (above 1: compiled is faster); steps after the first five")


if __name__ == "__main__":
    main()
