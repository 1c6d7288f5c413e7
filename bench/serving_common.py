"""What the serving benchmarks share: a `glyphlab serve` subprocess on loopback, its memory, the CPU model."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request

import psutil

from glyphlab.serving.workers import spreads_connections

HOST = "127.0.0.1"  # the benchmarks only ever target this machine


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and its children (uvicorn's workers); empty if it is gone."""
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def start_server(
    model: str, port: int, workers: int = 1, options: list[str] | None = None, wait_s: float = 180
) -> subprocess.Popen:
    """`glyphlab serve MODEL` on 127.0.0.1:port; returns once /health answers and every worker is up."""
    cmd = [
        sys.executable,
        "-c",
        "from glyphlab.cli import main; main()",
        "serve",
        model,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        *(options or []),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}: {(proc.stderr.read() or '')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1) as r:
                if r.status == 200 and len(process_tree(proc.pid)) > (workers if workers > 1 else 0):
                    if workers > 1 and not _all_listening(port, workers, deadline):
                        time.sleep(1.0)  # a shared socket (not Linux): give the other workers a moment
                    return proc
        except OSError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise SystemExit(f"the server did not answer /health within {wait_s:.0f} s")


def _all_listening(port: int, workers: int, deadline: float) -> bool:
    """Wait until each worker listens on its own socket (glyphlab serve on Linux); False if they share one."""
    if not spreads_connections():
        return False
    while time.monotonic() < deadline:
        listening = [
            c
            for c in psutil.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        ]
        if len(listening) >= workers:
            return True
        time.sleep(0.25)
    raise SystemExit(f"not every one of the {workers} workers listened on port {port} in time")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
