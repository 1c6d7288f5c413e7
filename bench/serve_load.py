"""Load test of `glyphlab serve` and batch throughput of the predictor (run by hand; prints a table).

    python bench/serve_load.py MODEL                       # 30 s at 100 req/s, then batch throughput
    python bench/serve_load.py MODEL --rate 200 --duration 10 --max-requests 2000
    python bench/serve_load.py runs/RUN/models/cnn-small --dataset mnist --data-dir /work/shared/data

1. Starts `glyphlab serve MODEL` on 127.0.0.1 (only ever; a free port), measures the service time with one
   connection sending 300 requests one after the other, then sends an open-loop load: one
   single-image request (a PNG of a test image, multipart field `file`) every 1/RATE s for DURATION s,
   never more than --max-requests in all nor --max-in-flight at once. Latency is measured from each
   request's *scheduled* send time (no coordinated omission), so a server that falls behind shows it.
   The client is a minimal keep-alive HTTP/1.1 client on asyncio streams with prebuilt requests, so it
   costs a small fraction of the server's CPU (an httpx client cost more CPU than the server did).
   Reports p50/p90/p99/max latency, achieved throughput and errors (non-200 or failed connections).
2. Batch inference: the predictor on the whole test split (10,000 images for MNIST) through ONNX Runtime
   (when the model has an export; `glyphlab export MODEL` makes one) and through the model itself, in
   images/s, with the accuracy as a sanity check.

The client and the server share this machine's cores, so the numbers are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

HOST = "127.0.0.1"  # the load only ever targets this machine


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of a process and its children so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, workers: int, threads: int | None) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from glyphlab.cli import app; app()", "serve", model, "--host", HOST,
           "--port", str(port), "--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; run `glyphlab serve {model}` to see why")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.25)
    proc.terminate()
    raise SystemExit("the server did not answer /health within 120 s")


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
        payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"glyph.png\"\r\n"
                   "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        ctype = f"multipart/form-data; boundary={boundary}"
    else:
        payload, ctype = data, "image/png"
    head = (f"POST /prediction HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n").encode()
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


async def load(port: int, requests: list[bytes], rate: float, duration: float, max_requests: int,
               max_in_flight: int) -> dict:
    """Open loop: request i is due at t0 + i/rate; at most max_in_flight connections are busy at once."""
    n = min(int(rate * duration), max_requests)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(max_in_flight):
        pool.put_nowait(Connection(port))
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
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            pool.put_nowait(conn)

    tasks = []
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    lat = np.asarray(latencies) * 1000
    return {
        "sent": n, "ok": len(latencies), "errors": errors, "wall": wall,
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
    return {"n": n, "errors": errors, "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "rps": len(a) / (a.sum() / 1000)}


def batch_throughput(model: str, images: np.ndarray, labels: np.ndarray, threads: int | None) -> list[tuple]:
    from glyphlab.serving.predictor import Predictor

    rows = []
    for backend in ("onnx", "native"):
        try:
            p = Predictor(model, backend=backend, threads=threads)  # type: ignore[arg-type]
        except Exception as exc:  # no export: say so and go on
            rows.append((backend, "-", "-", str(exc).splitlines()[0][:60]))
            continue
        p.predict(images[:256])  # warm-up
        t = time.perf_counter()
        probs = p.predict(images)
        dt = time.perf_counter() - t
        acc = float((probs.argmax(1) == labels).mean())
        rows.append((p.backend, f"{len(images) / dt:,.0f}", f"{acc:.4f}", f"{len(images):,} images in {dt:.2f} s"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a saved model folder (or a run's models/NAME folder)")
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (open loop)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    ap.add_argument("--max-requests", type=int, default=5000, help="hard cap on requests sent")
    ap.add_argument("--max-in-flight", type=int, default=32, help="most requests outstanding at once "
                                                                        "(keep-alive connections)")
    ap.add_argument("--body", choices=["multipart", "raw"], default="multipart",
                    help="multipart upload (field `file`, as the drawing page sends) or a raw image/png body")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--threads", type=int, default=None, help="inference threads per worker")
    ap.add_argument("--dataset", default=None, help="test images for the load and the batch part "
                                                    "(default: mnist for 28x28 models, digits for 8x8)")
    ap.add_argument("--data-dir", default=os.environ.get("GLYPHLAB_DATA", "/work/shared/data"))
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.max_requests <= 0:
        raise SystemExit("--rate, --duration and --max-requests must be positive")

    from glyphlab.data import load_dataset
    from glyphlab.models.persistence import read_manifest

    console = Console()
    manifest = read_manifest(args.model)
    shape = tuple(manifest["input_shape"])
    name = args.dataset or ("mnist" if shape == (28, 28) else "digits")
    ds = load_dataset(name, args.data_dir if name == "mnist" else None)
    test = ds.splits["test"]
    images, labels = np.asarray(test.images, dtype=np.float32), np.asarray(test.labels)

    if not args.skip_load:
        port = free_port()
        console.print(f"starting glyphlab serve {args.model} on {HOST}:{port} ...")
        proc = start_server(args.model, port, args.workers, args.threads)
        try:
            bodies = [png(im) for im in images[:200]]
            seq = sequential(port, bodies, min(300, args.max_requests))
            n = min(int(args.rate * args.duration), args.max_requests)
            console.print(f"load: {n:,} single-image requests at {args.rate:g}/s ({args.duration:g} s), "
                          f"at most {args.max_in_flight} in flight")
            server_cpu0, client_cpu0 = cpu_seconds(proc.pid), time.process_time()
            raw = [encode_request(port, b, args.body) for b in bodies]
            res = asyncio.run(load(port, raw, args.rate, args.duration, args.max_requests, args.max_in_flight))
            server_cpu1 = cpu_seconds(proc.pid)
            res["server_cpu"] = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
            res["client_cpu"] = time.process_time() - client_cpu0
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        t = Table(title=f"HTTP load: POST /prediction ({args.body} PNG), {manifest['model']}, {args.workers} worker(s)")
        for col in ("sent", "ok", "errors", "target req/s", "achieved req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"):
            t.add_column(col, justify="right")
        errs = ", ".join(f"{k}: {v}" for k, v in res["errors"].items()) or "0"
        t.add_row(f"{res['sent']:,}", f"{res['ok']:,}", errs, f"{args.rate:g}", f"{res['throughput']:.1f}",
                  f"{res['p50']:.1f}", f"{res['p90']:.1f}", f"{res['p99']:.1f}", f"{res['max']:.1f}")
        console.print(t)
        if res.get("server_cpu") is not None:
            console.print(f"CPU during the load ({res['wall']:.1f} s wall, {os.cpu_count()} cores, load average "
                          f"{os.getloadavg()[0]:.1f}): server {res['server_cpu']:.1f} s "
                          f"({1000 * res['server_cpu'] / max(1, res['ok']):.1f} ms/request), "
                          f"load client {res['client_cpu']:.1f} s")
        console.print(f"service time, 1 connection, sequential ({seq['n']} requests, image/png body): "
                      f"p50 {seq['p50']:.1f} ms, p99 {seq['p99']:.1f} ms, {seq['rps']:.0f} req/s, "
                      f"{seq['errors']} errors")

    if not args.skip_batch:
        t = Table(title=f"batch inference: Predictor.predict on the {name} test split ({len(images):,} images)")
        for col in ("backend", "images/s", "accuracy", "note"):
            t.add_column(col)
        for row in batch_throughput(args.model, images, labels, args.threads):
            t.add_row(*row)
        console.print(t)


if __name__ == "__main__":
    main()
