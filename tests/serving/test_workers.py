"""Several workers, each on its own SO_REUSEPORT socket: connections spread over them, a dead one is replaced."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

import psutil
import pytest
from net_helpers import free_port, serve_command
from serving_helpers import drawn_one, png_bytes, stop_server

from glyphlab.serving.workers import reuseport_sockets, spreads_connections

pytestmark = pytest.mark.skipif(not spreads_connections(), reason="SO_REUSEPORT balancing is Linux's")


def test_connections_spread_over_the_sockets():
    socks = reuseport_sockets("127.0.0.1", 0, 2)
    try:
        port = socks[0].getsockname()[1]
        assert socks[1].getsockname()[1] == port
        for s in socks:
            s.listen(128)
            s.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        time.sleep(0.2)
        accepted = []
        for s in socks:
            n = 0
            while True:
                try:
                    s.accept()[0].close()
                    n += 1
                except BlockingIOError:
                    break
            accepted.append(n)
        for c in clients:
            c.close()
        # the kernel hashes each connection to a socket: both get a share (a 1-in-10^9 chance of fewer than 10)
        assert sum(accepted) == 64 and min(accepted) >= 10, accepted
    finally:
        for s in socks:
            s.close()


def _listening_pids(port: int, supervisor: int) -> set[int]:
    """The supervisor's child processes listening on ``port`` (the supervisor holds every socket too, and a dead
    worker's socket stays listening, its connections waiting for the replacement, so it is left out)."""
    pids = set()
    for child in psutil.Process(supervisor).children():
        try:
            if any(
                c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                for c in child.net_connections(kind="tcp")
            ):
                pids.add(child.pid)
        except psutil.Error:  # exited meanwhile
            pass
    return pids


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_serve_and_a_dead_one_is_replaced(logreg_dir):
    port = free_port()
    proc = subprocess.Popen(
        serve_command(logreg_dir, port, "--workers", "2", "--no-access-log"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _wait(
            lambda: len(_listening_pids(port, proc.pid)) == 2 and _listening_pids(port, proc.pid),
            120,
            "two listening workers",
        )
        body = png_bytes(drawn_one())

        def predict() -> int:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/prediction", data=body, headers={"Content-Type": "image/png"}
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status

        assert [predict() for _ in range(10)] == [200] * 10
        # issue 29 (3): a second server on the same port would have shared it (SO_REUSEPORT) and answered with
        # its own model at random; it is refused in one line, before its model is read
        second = subprocess.run(
            serve_command(logreg_dir, port, "--workers", "2"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2 and f"127.0.0.1:{port}: something already listens" in second.stdout, second
        assert "Traceback" not in second.stdout + second.stderr
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        now = _wait(
            lambda: (p := _listening_pids(port, proc.pid)) and len(p) == 2 and victim not in p and p,
            120,
            "the killed worker's replacement",
        )
        assert len(now & first) == 1
        # the replacement may still be loading the model: connections the kernel hashes to its socket wait for
        # it in the backlog (hence the long timeout) instead of failing
        assert [predict() for _ in range(10)] == [200] * 10
    finally:
        stop_server(proc, timeout=20)
