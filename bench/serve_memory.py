"""Peak memory of `glyphlab serve` under N concurrent large JSON requests (run by hand; prints a table).

    python bench/serve_memory.py MODEL                          # 150 concurrent 4.8 MB batches, defaults
    python bench/serve_memory.py MODEL --requests 50 --serve-option=--max-concurrency=2
    python bench/serve_memory.py MODEL --workers 2

Starts `glyphlab serve MODEL` on 127.0.0.1 only (a free port), waits until it is idle, then opens N
connections at once, each sending one JSON batch of pixel images (one bar of ink each) of about --mb megabytes
(`{"images": [...]}`, under the 5 MB default body limit). The server's resident memory (the process
and its worker children, sampled every 20 ms) is reported at rest, at its peak and 3 s after the last
answer, with the count of each status: every answer should be a 200 or a 503 carrying Retry-After.
Bounded: N <= 1000 requests, one attempt each, and --timeout seconds in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections import Counter

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table
from serving_common import HOST, cpu_model, free_port, process_tree, start_server, stop_server


def rss(pid: int) -> int:
    """Resident bytes of a process and all its children (uvicorn workers)."""
    total = 0
    for q in process_tree(pid):
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def rss_by_kind(pid: int) -> Counter:
    """Resident bytes of the process tree by kind of mapping (/proc/PID/smaps, Linux): ``heap`` (glibc's main
    arena, [heap]), ``anon`` (anonymous mappings: other arenas' heaps, allocations above the mmap threshold,
    Python's object arenas, ONNX Runtime's and torch's own pools, thread stacks) and ``files`` (code and data
    of the libraries, the model's mapped files). Empty where /proc is not."""
    kinds: Counter = Counter()
    for q in process_tree(pid):
        try:
            kind = "anon"
            with open(f"/proc/{q.pid}/smaps") as f:
                for line in f:
                    parts = line.split()
                    if parts and "-" in parts[0] and not parts[0].endswith(":"):  # a mapping: "a-b perms ... path"
                        name = parts[5] if len(parts) > 5 else ""
                        kind = "heap" if name == "[heap]" else "files" if name.startswith("/") else "anon"
                    elif parts and parts[0] == "Rss:":
                        kinds[kind] += int(parts[1]) * 1024
        except OSError:
            pass
    return kinds


class Sampler(threading.Thread):
    """Samples rss(pid) every `every` seconds; `peak` is the largest seen."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop = pid, every, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(self.every)


def json_batch(mb: float, side: int, seed: int = 0) -> bytes:
    """A JSON batch of side x side images, about `mb` megabytes (full-precision floats): each a faint random
    background (below 0.03) with one bar of ink, so that every image is a glyph the model classifies (random
    noise all over is refused as blank or as several glyphs, and would never reach the model)."""
    rng = np.random.default_rng(seed)

    def image() -> np.ndarray:
        im = rng.random((side, side)) * 0.03
        col = int(rng.integers(side // 4, side - side // 4))
        im[side // 8 : side - side // 8, col : col + max(1, side // 10)] = 1.0
        return im

    one = len(json.dumps(image().tolist())) + 2
    n = max(1, round(mb * 1e6 / one))
    return json.dumps({"images": [image().tolist() for _ in range(n)]}).encode()


async def one_request(port: int, raw: bytes, timeout: float) -> tuple[str, float]:
    """('200' | '503+Retry-After' | '503' | 'HTTP n' | error name, seconds) for one request on its own connection."""
    t = time.perf_counter()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
        if status == 503:
            ok = headers.get("retry-after", "").isdigit()
            return ("503+Retry-After" if ok else "503 without Retry-After"), time.perf_counter() - t
        return ("200" if status == 200 else f"HTTP {status}"), time.perf_counter() - t
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return type(exc).__name__, time.perf_counter() - t
    finally:
        if writer is not None:
            writer.close()


async def flood(port: int, body: bytes, n: int, timeout: float) -> list[tuple[str, float]]:
    head = (
        f"POST /prediction HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    raw = head + body
    return await asyncio.gather(*(one_request(port, raw, timeout) for _ in range(n)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a saved model folder (or a run's models/NAME folder)")
    ap.add_argument("--requests", type=int, default=150, help="concurrent requests (at most 1000)")
    ap.add_argument("--mb", type=float, default=4.8, help="size of each JSON body in MB")
    ap.add_argument("--side", type=int, default=64, help="side of each random image in the batch")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole flood")
    ap.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="an option passed to glyphlab serve, e.g. --serve-option=--max-concurrency=4",
    )
    args = ap.parse_args()
    if not 1 <= args.requests <= 1000 or args.mb <= 0 or args.timeout <= 0:
        raise SystemExit("--requests must be in 1..1000, --mb and --timeout positive")

    console = Console()
    body = json_batch(args.mb, args.side)
    port = free_port()
    console.print(
        f"starting glyphlab serve {args.model} on {HOST}:{port} ({args.workers} worker(s), "
        f"options: {' '.join(args.serve_option) or 'defaults'}) ..."
    )
    proc = start_server(args.model, port, args.workers, args.serve_option)
    try:
        time.sleep(1.0)
        at_rest, kinds0 = rss(proc.pid), rss_by_kind(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        results = asyncio.run(asyncio.wait_for(flood(port, body, args.requests, args.timeout), args.timeout + 30))
        wall = time.perf_counter() - t0
        time.sleep(3.0)
        after, kinds1 = rss(proc.pid), rss_by_kind(proc.pid)
        sampler.stop.set()
        sampler.join()
        load1 = os.getloadavg()
    finally:
        stop_server(proc)

    counts = Counter(status for status, _ in results)
    ok_lat = sorted(s for status, s in results if status == "200")
    mib = 1 << 20
    t = Table(
        title=f"{args.requests} concurrent {len(body) / 1e6:.1f} MB JSON batches → glyphlab serve, "
        f"{args.workers} worker(s)"
    )
    for col in ("what", "value"):
        t.add_column(col)
    t.add_row("RSS at rest (anchor)", f"{at_rest / mib:,.0f} MiB")
    t.add_row("peak RSS", f"{sampler.peak / mib:,.0f} MiB ({sampler.peak / max(1, at_rest):.2f}x at rest)")
    t.add_row("RSS 3 s after the last answer", f"{after / mib:,.0f} MiB")
    for kind in ("heap", "anon", "files"):
        t.add_row(f"  of which {kind}: at rest / after", f"{kinds0[kind] / mib:,.0f} / {kinds1[kind] / mib:,.0f} MiB")
    t.add_row("answers", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if ok_lat:
        t.add_row("latency of 200s (p50 / max)", f"{np.percentile(ok_lat, 50):.1f} s / {ok_lat[-1]:.1f} s")
    t.add_row("wall", f"{wall:.1f} s")
    t.add_row("CPU", f"{cpu_model()}, {os.cpu_count()} cores")
    t.add_row("load average (before / after)", f"{load0[0]:.1f} / {load1[0]:.1f}")
    console.print(t)
    bad = {k: v for k, v in counts.items() if k not in ("200", "503+Retry-After")}
    if bad:
        console.print(f"[red]answers other than 200 or 503 with Retry-After: {bad}[/]")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
