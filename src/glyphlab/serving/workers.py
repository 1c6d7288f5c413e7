"""Run the server's uvicorn workers, each on its own listening socket where Linux can spread connections.

uvicorn's ``workers=N`` shares one listening socket between its worker processes: whichever worker wakes
first accepts every connection waiting (uvloop accepts until the backlog is empty), and a keep-alive
connection stays with the worker that accepted it. 64 client connections opened at once split 40/24,
41/23 and 44/20 between two workers (measured), so one worker got two thirds of the requests and its
queue made the p99. On Linux each worker here listens on its own ``SO_REUSEPORT`` socket bound to the
same address, and the kernel hashes every new connection to one of them, so the split is even on
average. Elsewhere (no load-balancing ``SO_REUSEPORT``) it is uvicorn's own shared socket.

The supervisor is uvicorn's (health pings, a dead worker replaced, signals); only which socket a worker
gets differs: worker i always listens on socket i, which the supervisor keeps open, so connections the
kernel sends there while worker i is being replaced wait in its backlog.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from glyphlab.errors import GlyphlabError

log = logging.getLogger("uvicorn.error")


def spreads_connections() -> bool:
    """Whether this platform balances connections over SO_REUSEPORT sockets (Linux >= 3.9)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`GlyphlabError` (one line naming the port) if ``host:port`` cannot be bound alone.

    Sockets with ``SO_REUSEPORT`` share a port with any other such socket of the same user, so a second
    ``glyphlab serve --workers 2`` on a port one already serves would start cleanly and each connection would
    reach one of the two models at random. A socket without ``SO_REUSEPORT`` cannot be bound where anything
    listens (``SO_REUSEADDR`` only lets it past connections in TIME_WAIT), so it is bound and closed first.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "something already listens on it" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise GlyphlabError(f"cannot serve on {host}:{port}: {why}; stop it or choose another --port") from None


def _model_error(model_path: str, backend: str) -> str | None:
    """In a child process: load the model as a worker will; the one line a user sees if it cannot be served."""
    from glyphlab.serving.predictor import Predictor
    from glyphlab.user_errors import user_error_message

    try:
        Predictor(model_path, backend=backend)  # type: ignore[arg-type]
    except Exception as exc:
        return user_error_message(exc) or f"the model cannot be loaded ({type(exc).__name__}: {exc})"
    return None


def check_model_in_child(model_path: str, backend: str) -> None:
    """Load the model once in a short-lived child process and raise :class:`GlyphlabError` if it cannot be served.

    The supervisor of ``--workers N`` serves nothing: loaded in it for this check, a cnn-small model kept
    511 MB in a process that only watches its workers. A child's memory goes back when it exits.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        error = pool.submit(_model_error, str(model_path), backend).result()
    if error is not None:
        raise GlyphlabError(error)


def reuseport_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` TCP sockets bound to ``host:port`` with SO_REUSEPORT (port 0: the port the first one got)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class OwnSocketWorkers(Multiprocess):
    """uvicorn's multiprocess supervisor with worker i on socket i instead of every worker on one socket."""

    def _spawn(self, idx: int) -> Process:
        process = Process(self.config, [self.sockets[idx]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._spawn(i) for i in range(len(self.sockets))]

    def keep_subprocess_alive(self) -> None:
        for idx, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or dead
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # the app itself cannot start: restarting would loop
                log.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            log.info(f"Child process [{process.pid}] died")
            forget_worker_gauges(process.pid)
            self.processes[idx] = self._spawn(idx)

    def restart_all(self) -> None:
        """SIGHUP: replace each worker in turn, the new one serving before the old one is stopped."""
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn(idx)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                log.error(f"New child process [{new.pid}] was not ready in time; keeping [{old.pid}]")
                return
            old.terminate()
            old.join()
            forget_worker_gauges(old.pid)
            self.processes[idx] = new


def forget_worker_gauges(pid: int | None) -> None:
    """A dead worker's live gauges (queue depth, requests in progress) leave /metrics; its counters stay counted."""
    import os

    if pid is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except (ImportError, OSError):  # no metrics, or nothing to remove
        pass


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, factory=True, ...)``; several workers on their own sockets where that spreads load.
    A port something already listens on is refused first (:func:`check_port_free`)."""
    check_port_free(host, port)
    if workers <= 1 or not spreads_connections():
        uvicorn.run(app, factory=True, host=host, port=port, workers=workers, **options)
        return
    config = uvicorn.Config(app, factory=True, host=host, port=port, workers=workers, **options)
    sockets = reuseport_sockets(host, port, workers)
    log.info(
        f"Uvicorn running on http://{host}:{sockets[0].getsockname()[1]} with {workers} workers, "
        "one SO_REUSEPORT socket each (Press CTRL+C to quit)"
    )
    try:
        OwnSocketWorkers(config, sockets=sockets).run()
    finally:
        for sock in sockets:
            sock.close()
