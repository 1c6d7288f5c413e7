"""The torch engine the networks call: the training loop, augmentation, EMA and checkpoints."""

from __future__ import annotations

import os

THREADS_ENV = "GLYPHLAB_NUM_THREADS"


def usable_cores() -> int:
    """How many cores glyphlab may use: ``GLYPHLAB_NUM_THREADS`` if set, else every core this process may run on
    (divided among torchrun's ranks on this machine).

    One number for torch's threads and for parallel cross-validation folds, so one variable tames both on a
    machine that other jobs keep busy.
    """
    env = os.environ.get(THREADS_ENV)
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    # torchrun's ranks on one machine share its cores: each takes its part rather than all of them
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))
