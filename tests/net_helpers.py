"""Loopback helpers for tests that start a server in a child process (glyphlab serve, mlflow server, mlflow
models serve): a free port, and waiting until the server answers while failing fast if it died."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(model_dir: Path, port: int, *options: str, python: str = sys.executable) -> list[str]:
    """``glyphlab serve MODEL_DIR --port PORT OPTIONS...`` as a child process's argv, run by ``python`` (the test's
    own interpreter, or another environment's) through the CLI's entry function."""
    return [
        python,
        "-c",
        "from glyphlab.cli import main; main()",
        "serve",
        str(model_dir),
        "--port",
        str(port),
        *options,
    ]


def url_answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 (a refused or hanging connection is a no)."""
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


def wait_until_up(
    ready: Callable[[], bool], proc: subprocess.Popen, log: Path, timeout: float, what: str, poll: float = 0.3
) -> None:
    """Poll ``ready()`` until it is true; fail with the log's tail if ``proc`` exits, or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what} did not answer in {timeout:g} s"
        time.sleep(poll)
