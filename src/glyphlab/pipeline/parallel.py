"""Worker processes (joblib/loky) that exit with the process that started them.

A worker busy with a fold does not notice that its parent died: after a ``kill -9`` of ``glyphlab search``
its loky workers (~475 MB each, adopted by init) lived on for 18-28 minutes, finishing folds nobody would
read. A task run through :func:`in_worker` starts, once per worker process, a thread that polls the parent's
id and ends the process the moment it changes (the parent is gone and the worker was adopted).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: seconds between two looks at the parent
POLL_S = 0.5
_watched_in: int | None = None  # the pid of the process whose watcher runs (a forked child must start its own)


def exit_with_parent(poll_s: float = POLL_S) -> None:
    """End this process as soon as its parent process is gone (idempotent per process)."""
    global _watched_in
    if _watched_in == os.getpid():
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)  # the parent died: no one reads this worker's result

    threading.Thread(target=watch, name="glyphlab-exit-with-parent", daemon=True).start()
    _watched_in = os.getpid()


def in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker process that exits with its parent: ``delayed(in_worker)(fn, ...)``."""
    exit_with_parent()
    return fn(*args, **kwargs)
