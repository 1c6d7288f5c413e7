"""Speed of attributions (run by hand; prints a table): ms per image for each method, and /explanation latency.

    python bench/explain_speed.py                                   # cnn-small trained here on 2,000 MNIST digits
    python bench/explain_speed.py --model runs/RUN/models/cnn-small/model --images 100 --requests 300
    python bench/explain_speed.py --data-dir /work/shared/data      # where mnist/ lives

1. Methods: each test image is explained on its own (one call per image, as `glyphlab explain` or the server
   does it), for the predicted class and the runner-up, on one CPU thread. The anchor is one plain forward
   pass of the same image (``predict_proba``), measured in the same run: the ratio says how many forward
   passes an explanation costs, which carries across machines better than milliseconds.
2. Server: `glyphlab serve MODEL` on 127.0.0.1 (a free port, one thread), then REQUESTS sequential requests on one
   keep-alive connection (raw image/png bodies of test digits) to /prediction (the anchor) and /explanation,
   p50/p90/p99/max each. Sequential, so the figure is the cost of one explanation, not queueing.

Speed does not depend on what the weights learned; the model is trained briefly only to be a real one. The
target (issue 18) is IG on one image <= 200 ms for cnn-small on CPU.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_common import HOST, cpu_model, free_port, start_server, stop_server  # noqa: E402


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def percentiles(ms: list[float]) -> tuple[float, float, float, float]:
    a = np.asarray(ms)
    return float(np.median(a)), float(np.percentile(a, 90)), float(np.percentile(a, 99)), float(a.max())


def trained_model(args, console: Console):
    from glyphlab.data import load_dataset
    from glyphlab.models.persistence import load_model
    from glyphlab.models.registry import create_model

    ds = load_dataset("mnist", data_dir=args.data_dir) if args.data_dir else load_dataset("mnist")
    test = ds.splits["test"]
    if args.model:
        return load_model(args.model), Path(args.model), test
    tr = ds.splits["train"]
    n = args.train
    console.print(f"training cnn-small for 1 epoch on {n:,} MNIST digits (speed does not depend on the weights)")
    model = create_model("cnn-small", epochs=1, progress=False, device="cpu", patience=0)
    model.fit(tr.images[:n], tr.labels[:n], tr.images[n : n + 500], tr.labels[n : n + 500], classes=ds.classes)
    folder = Path(tempfile.mkdtemp(prefix="glyphlab-explain-bench-")) / "cnn-small"
    model.save(folder)
    return model, folder, test


def time_methods(model, images: np.ndarray, console: Console) -> list[tuple[str, list[float]]]:
    from glyphlab.evaluation.attributions import Explainer, has_captum, is_network

    explainer = Explainer(model)
    methods = ["occlusion"]
    if is_network(model) and has_captum():
        methods = ["ig", "gradcam", "occlusion"]
        if not any(m.__class__.__name__ == "Conv2d" for m in model.torch_module().modules()):
            methods.remove("gradcam")
    if model.coefficient_images() is not None:
        methods.append("coef")
    rows: list[tuple[str, list[float]]] = []
    forward = []
    for x in images:  # the anchor
        t = time.perf_counter()
        model.predict_proba(x[None])
        forward.append((time.perf_counter() - t) * 1000)
    rows.append(("forward pass (anchor)", forward))
    for m in methods:
        explainer.explain(images[:1], m)  # warm-up: Captum import, the network's copy
        ms = []
        for x in images:
            t = time.perf_counter()
            explainer.explain(x[None], m)
            ms.append((time.perf_counter() - t) * 1000)
        rows.append((m, ms))
    return rows


def png(image: np.ndarray) -> bytes:
    arr = (255 - np.asarray(image) * 255).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").resize((112, 112), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def time_server(folder: Path, images: np.ndarray, requests: int) -> dict[str, list[float]]:
    port = free_port()
    proc = start_server(str(folder), port, options=["--threads", "1", "--backend", "native"])
    try:
        bodies = [png(im) for im in images]
        out: dict[str, list[float]] = {}
        for path in ("/prediction", "/explanation"):
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            for body in bodies[:5]:  # warm-up
                conn.request("POST", path, body, {"content-type": "image/png"})
                conn.getresponse().read()
            ms = []
            for i in range(requests):
                t = time.perf_counter()
                conn.request("POST", path, bodies[i % len(bodies)], {"content-type": "image/png"})
                r = conn.getresponse()
                r.read()
                ms.append((time.perf_counter() - t) * 1000)
                if r.status != 200:
                    raise RuntimeError(f"{path} answered {r.status}")
            conn.close()
            out[path] = ms
        return out
    finally:
        stop_server(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a saved model folder (default: train cnn-small briefly on MNIST)")
    ap.add_argument("--data-dir", help="the folder holding mnist/ (default: glyphlab's data folder)")
    ap.add_argument("--train", type=int, default=2000, help="MNIST digits to train the throwaway cnn-small on")
    ap.add_argument("--images", type=int, default=50, help="test images explained one by one per method")
    ap.add_argument("--requests", type=int, default=200, help="sequential requests per endpoint (0: skip)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    console = Console()
    start_load = load()
    model, folder, test = trained_model(args, console)
    images = test.images[: args.images]
    rows = time_methods(model, images, console)
    anchor = float(np.median(rows[0][1]))
    table = Table(title=f"attributions of {model.name} {tuple(model.input_shape_)}, one image per call, 1 thread")
    for col in ("method", "ms/image p50", "p90", "max", "x forward"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, ms in rows:
        p50, p90, _, mx = percentiles(ms)
        table.add_row(name, f"{p50:.1f}", f"{p90:.1f}", f"{mx:.1f}", f"{p50 / anchor:.0f}")
    console.print(table)
    if args.requests:
        served = time_server(folder, images, args.requests)
        t2 = Table(title=f"glyphlab serve on loopback, {args.requests} sequential requests per endpoint (1 thread)")
        for col in ("endpoint", "p50 ms", "p90 ms", "p99 ms", "max ms"):
            t2.add_column(col, justify="right" if col != "endpoint" else "left")
        for path, ms in served.items():
            t2.add_row(path, *(f"{v:.1f}" for v in percentiles(ms)))
        console.print(t2)
    console.print(
        f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); load average at start {start_load}, "
        f"at end {load()}; torch {torch.__version__}"
    )


if __name__ == "__main__":
    main()
