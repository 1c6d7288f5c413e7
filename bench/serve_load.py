"""Load test of `glyphlab serve` and batch throughput of the predictor (run by hand; prints one table).

    python bench/serve_load.py MODEL                          # 600 req/s for 10 s, three server configurations
    python bench/serve_load.py MODEL --int8 --threads 1       # and int8 ONNX beside fp32 ONNX and PyTorch
    python bench/serve_load.py MODEL --configs 1:1,2:32 --rate 300 --duration 20
    python bench/serve_load.py MODEL --skip-batch --configs 2:32 --duration 30 --server-args=--no-access-log

1. For each server configuration WORKERS:MICRO_BATCH in --configs (the first is the anchor; default: one
   worker without micro-batching, one with, two with), starts `glyphlab serve MODEL` on 127.0.0.1 (only
   ever; a free port), measures the service time with one connection sending 300 requests one after the
   other, then sends an open-loop load: one single-image request (a PNG of a test image, multipart field
   `file`) every 1/RATE s for DURATION s, never more than --max-requests in all nor --max-in-flight at
   once. Latency is measured from each request's *scheduled* send time (no coordinated omission), so a
   server that falls behind shows it. The client is a minimal keep-alive HTTP/1.1 client on asyncio
   streams with prebuilt requests, so it costs a small fraction of the server's CPU. Reports sustained
   requests/s, p99 latency and the server's CPU per request (all its worker processes), each beside the
   anchor's, as a ratio. Before the timed load every connection is opened and sends one request (not
   counted), so the figures are the steady state of a client that keeps its connections.
2. Batch inference on the whole test split (10,000 images for MNIST): the model itself (PyTorch), an fp32
   ONNX export and, with --int8, the int8 export (`glyphlab export --quantize int8`, calibrated on the
   model's run), passes interleaved so that a change in the machine's load hits each alike; the best of
   the passes, in images/s, with accuracy.

The client and the server share this machine's cores, so the numbers are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image
from rich.console import Console
from rich.table import Table
from serving_common import HOST, cpu_model, free_port, process_tree, start_server, stop_server

from glyphlab.serving.limits import freeze_startup_objects


def png(image: np.ndarray, scale: int = 4) -> bytes:
    arr = (255 - np.asarray(image) * 255).clip(0, 255).astype(np.uint8)  # black ink on white, like a scan
    im = Image.fromarray(arr, mode="L")
    im = im.resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def encode_request(port: int, data: bytes, body: str) -> bytes:
    """One complete HTTP/1.1 request, prebuilt so the load client spends its CPU on sockets, not encoding."""
    if body == "multipart":
        boundary = "glyphlabbench7d1f"
        payload = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="glyph.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        ctype = f"multipart/form-data; boundary={boundary}"
    else:
        payload, ctype = data, "image/png"
    head = (
        f"POST /prediction HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    return head + payload


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection (asyncio streams; Content-Length bodies only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        try:
            self.writer.write(raw)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            await self.reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(
    port: int, requests: list[bytes], rate: float, duration: float, max_requests: int, max_in_flight: int
) -> dict:
    """Open loop: request i is due at t0 + i/rate; at most max_in_flight connections are busy at once."""
    n = min(int(rate * duration), max_requests)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    conns = [Connection(port) for _ in range(max_in_flight)]
    # warm-up, not timed: every keep-alive connection opened and used once (as a long-running client's are),
    # and each worker's ONNX Runtime session has seen a few batch sizes
    await asyncio.gather(*(c.request(requests[i % len(requests)]) for i, c in enumerate(conns)))
    for c in conns:
        pool.put_nowait(c)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        conn = await pool.get()
        try:
            status = await asyncio.wait_for(conn.request(requests[i % len(requests)]), timeout=30)
            if status == 200:
                latencies.append(time.perf_counter() - scheduled)
            else:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            pool.put_nowait(conn)

    # only the requests still in flight are kept: a gather over all n tasks at the end held this client's loop
    # for ~60 ms (12,000 tasks) while the last requests' answers waited to be read, which counted as latency
    in_flight: set[asyncio.Task] = set()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    wall = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    lat = np.asarray(latencies) * 1000
    return {
        "sent": n,
        "ok": len(latencies),
        "errors": errors,
        "wall": wall,
        "throughput": len(latencies) / wall if wall else 0.0,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p90": float(np.percentile(lat, 90)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
    }


def sequential(port: int, bodies: list[bytes], n: int) -> dict:
    """Service time: one keep-alive connection, one request at a time (raw image/png bodies)."""
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    lat, errors = [], 0
    for i in range(n):
        t = time.perf_counter()
        conn.request("POST", "/prediction", body=bodies[i % len(bodies)], headers={"Content-Type": "image/png"})
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            lat.append(time.perf_counter() - t)
        else:
            errors += 1
    conn.close()
    a = np.asarray(lat) * 1000
    return {
        "n": n,
        "errors": errors,
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "rps": len(a) / (a.sum() / 1000),
    }


def images_per_s(predictor, images: np.ndarray, labels: np.ndarray, repeats: int = 3) -> tuple[float, float]:
    """(best images/s over `repeats` passes of the whole split, accuracy) of Predictor.predict."""
    predictor.predict(images[:256])  # warm-up
    best, probs = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        probs = predictor.predict(images)
        best = min(best, time.perf_counter() - t)
    return len(images) / best, float((probs.argmax(1) == labels).mean())


def batch_rows(model: str, images: np.ndarray, labels: np.ndarray, threads: int | None, int8: bool) -> list[tuple]:
    """PyTorch (the model itself), fp32 ONNX and, with int8, the int8 ONNX export: images/s and accuracy."""
    import tempfile

    from glyphlab.serving.onnx_export import export_onnx
    from glyphlab.serving.predictor import Predictor

    measured: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx")
        kinds = {"PyTorch": ("native", None), "fp32 ONNX": ("onnx", fp32)}
        if int8:
            from glyphlab.pipeline.export import run_images
            from glyphlab.serving.quantize import export_int8

            kinds["int8 ONNX"] = ("onnx", export_int8(model, run_images(model), Path(tmp) / "int8.onnx"))
        # interleaved passes, so a change in the machine's load hits every backend alike
        predictors = {k: Predictor(model, backend=b, onnx_path=path, threads=threads) for k, (b, path) in kinds.items()}
        for _ in range(2):
            for k, pr in predictors.items():
                ips, acc = images_per_s(pr, images, labels)
                measured[k] = (max(ips, measured.get(k, (0.0, 0.0))[0]), acc)
    rows = []
    if "int8 ONNX" in measured:
        rows.append(("int8 ONNX, images/s", "fp32 ONNX", measured["fp32 ONNX"], measured["int8 ONNX"]))
        rows.append(("int8 ONNX, images/s", "PyTorch", measured["PyTorch"], measured["int8 ONNX"]))
    rows.append(("fp32 ONNX, images/s", "PyTorch", measured["PyTorch"], measured["fp32 ONNX"]))
    return rows


def http_run(args, model: str, workers: int, micro_batch: int, bodies: list[bytes], console: Console) -> dict:
    """One server configuration: sequential service time, then the open-loop load; with server CPU per request."""
    port = free_port()
    options = ["--micro-batch", str(micro_batch)] + (["--threads", str(args.threads)] if args.threads else [])
    options += args.server_args.split()
    proc = start_server(model, port, workers, options)
    try:
        seq = sequential(port, bodies, min(300, args.max_requests))
        raw = [encode_request(port, b, args.body) for b in bodies]
        # this client holds torch, the data and the predictor: a full collection of its ~10^6 objects stalls
        # its sending for tens of ms, which would be counted as the server's latency; freeze them first
        freeze_startup_objects()
        server_cpu0, client_cpu0 = tree_cpu_seconds(proc.pid), time.process_time()
        # uvloop (the serve extra's) when present: the client's CPU per request is taken from the same two cores
        res = _run_loop(load(port, raw, args.rate, args.duration, args.max_requests, args.max_in_flight))
        res["server_cpu"] = tree_cpu_seconds(proc.pid) - server_cpu0
        res["client_cpu"] = time.process_time() - client_cpu0
        res["seq"] = seq
        res["load"] = os.getloadavg()[0]
    finally:
        stop_server(proc)
    errs = ", ".join(f"{k}: {v}" for k, v in res["errors"].items()) or "0 errors"
    console.print(
        f"  {workers} worker(s), micro-batch {micro_batch}: {res['throughput']:.0f} req/s of "
        f"{args.rate:g} offered, p50 {res['p50']:.1f} / p99 {res['p99']:.1f} ms, {errs}; "
        f"server {1000 * res['server_cpu'] / max(1, res['ok']):.2f} ms CPU/request, load client "
        f"{1000 * res['client_cpu'] / max(1, res['ok']):.2f}; sequential "
        f"{seq['p50']:.1f} ms p50 ({seq['rps']:.0f} req/s); load average {res['load']:.1f}"
    )
    return res


def _run_loop(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and its live children (uvicorn workers) so far."""
    total = 0.0
    for q in process_tree(pid):
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def parse_configs(text: str) -> list[tuple[int, int]]:
    """'1:1,1:32,2:32' -> [(workers, micro_batch), ...]; the first is the anchor."""
    try:
        out = [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item]
        if not out or any(len(c) != 2 or min(c) < 1 for c in out):
            raise ValueError
        return out  # type: ignore[return-value]
    except ValueError:
        raise SystemExit(f"--configs takes WORKERS:MICRO_BATCH pairs, e.g. 1:1,1:32,2:32; got {text!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a saved model folder (or a run's models/NAME folder)")
    ap.add_argument("--rate", type=float, default=600.0, help="requests per second offered (open loop)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load per configuration")
    ap.add_argument("--max-requests", type=int, default=10000, help="hard cap on requests sent per configuration")
    ap.add_argument(
        "--max-in-flight", type=int, default=64, help="most requests outstanding at once (keep-alive connections)"
    )
    ap.add_argument(
        "--body",
        choices=["multipart", "raw"],
        default="multipart",
        help="multipart upload (field `file`, as the drawing page sends) or a raw image/png body",
    )
    ap.add_argument(
        "--configs",
        default="1:1,1:32,2:32",
        help="server configurations WORKERS:MICRO_BATCH, the first is the anchor (default: one "
        "worker without micro-batching; one with; two with)",
    )
    ap.add_argument("--threads", type=int, default=None, help="inference threads per worker")
    ap.add_argument(
        "--server-args",
        default="",
        help="more `glyphlab serve` options for every configuration, e.g. '--no-access-log'",
    )
    ap.add_argument(
        "--int8",
        action="store_true",
        help="also quantize to int8 (calibrated on the model's run) and time it beside fp32 ONNX and PyTorch",
    )
    ap.add_argument(
        "--dataset",
        default=None,
        help="test images for the load and the batch part (default: mnist for 28x28 models, digits for 8x8)",
    )
    ap.add_argument("--data-dir", default=os.environ.get("GLYPHLAB_DATA", "/work/shared/data"))
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.max_requests <= 0:
        raise SystemExit("--rate, --duration and --max-requests must be positive")
    configs = parse_configs(args.configs)

    from glyphlab.data import load_dataset
    from glyphlab.models.persistence import read_manifest

    console = Console(width=max(170, Console().width))  # the table is wide; keep it readable in a log
    manifest = read_manifest(args.model)
    shape = tuple(manifest["input_shape"])
    name = args.dataset or ("mnist" if shape == (28, 28) else "digits")
    ds = load_dataset(name, args.data_dir if name == "mnist" else None)
    test = ds.splits["test"]
    images, labels = np.asarray(test.images, dtype=np.float32), np.asarray(test.labels)
    load0 = os.getloadavg()
    rows: list[tuple[str, str, str, str, str]] = []

    if not args.skip_load:
        bodies = [png(im) for im in images[:200]]
        console.print(
            f"HTTP load: POST /prediction ({args.body} PNG of a test digit), {manifest['model']}, "
            f"{args.rate:g} req/s for {args.duration:g} s per configuration, at most "
            f"{args.max_in_flight} in flight"
        )
        results = [(c, http_run(args, args.model, c[0], c[1], bodies, console)) for c in configs]
        (aw, ab), anchor = results[0]
        for (w, b), res in results[1:]:
            label = f"{w} worker(s), micro-batch {b}"
            a_what = f"{aw} worker(s), micro-batch {ab}"
            rows.append(
                (
                    f"{label}: req/s sustained",
                    a_what,
                    f"{anchor['throughput']:.0f}",
                    f"{res['throughput']:.0f}",
                    f"{res['throughput'] / max(1e-9, anchor['throughput']):.2f}x",
                )
            )
            rows.append(
                (
                    f"{label}: p99 ms",
                    a_what,
                    f"{anchor['p99']:.1f}",
                    f"{res['p99']:.1f}",
                    f"{res['p99'] / max(1e-9, anchor['p99']):.2f}x",
                )
            )
            a_cpu = 1000 * anchor["server_cpu"] / max(1, anchor["ok"])
            r_cpu = 1000 * res["server_cpu"] / max(1, res["ok"])
            rows.append(
                (
                    f"{label}: server CPU ms/request",
                    a_what,
                    f"{a_cpu:.2f}",
                    f"{r_cpu:.2f}",
                    f"{r_cpu / max(1e-9, a_cpu):.2f}x",
                )
            )

    accuracies: dict[str, str] = {}
    if not args.skip_batch:
        for what, anchor_name, (a_ips, a_acc), (g_ips, g_acc) in batch_rows(
            args.model, images, labels, args.threads, args.int8
        ):
            rows.append((what, anchor_name, f"{a_ips:,.0f}", f"{g_ips:,.0f}", f"{g_ips / a_ips:.2f}x"))
            accuracies[what + anchor_name] = f"{g_acc:.4f} vs {a_acc:.4f}"

    load1 = os.getloadavg()
    t = Table(title=f"bench/serve_load.py, {manifest['model']}, {name} test split ({len(images):,} images)")
    for col in ("what", "anchor", "anchor value", "glyphlab", "ratio", "accuracy", "CPU", "load average"):
        t.add_column(col)
    cpu = f"{cpu_model()}, {os.cpu_count()} cores"
    for what, anchor_name, a, g, ratio in rows:
        t.add_row(
            what,
            anchor_name,
            a,
            g,
            ratio,
            accuracies.get(what + anchor_name, "-"),
            cpu,
            f"{load0[0]:.1f} → {load1[0]:.1f}",
        )
    console.print(t)


if __name__ == "__main__":
    main()
