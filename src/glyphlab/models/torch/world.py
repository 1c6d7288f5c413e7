"""Which process of a data-parallel job this is, read from torchrun's environment, without importing torch.

``torchrun`` (``torch.distributed.run``) starts one process per rank and gives each ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous' ``MASTER_ADDR``/``MASTER_PORT``. Where they are absent
(a plain ``glyphlab run``) this is rank 0 of a world of one, and nothing changes. The pipeline reads it to let
rank 0 alone write the run folder; :func:`glyphlab.models.torch.trainer.train` to train data-parallel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (0 of 1 when not started by torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, reports progress and tracks."""
        return self.rank == 0


def world() -> World:
    """This process's :class:`World`, from torchrun's variables (a world of one where any is missing)."""
    env = os.environ
    if not all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        return World()
    try:
        size = int(env["WORLD_SIZE"])
        return World(int(env["RANK"]), size, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", size)))
    except ValueError:
        return World()


_local: ContextVar[bool] = ContextVar("glyphlab_local_only", default=False)


@contextmanager
def local_only() -> Iterator[None]:
    """Inside, networks train in this process alone even under torchrun: what rank 0 fits by itself (a
    scikit-learn model, an ensemble) must not wait for ranks that are not fitting it."""
    token = _local.set(True)
    try:
        yield
    finally:
        _local.reset(token)


def data_parallel() -> bool:
    """Whether a network trained here trains data-parallel: started by torchrun with more than one rank, and not
    inside :func:`local_only`."""
    return world().size > 1 and not _local.get()
