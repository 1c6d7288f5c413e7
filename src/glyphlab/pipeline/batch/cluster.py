"""The batch engine on a Dask cluster (``pip install 'glyphlab[cluster]'``): chunks shard over its workers.

Why Dask and not Ray: the job is a map over chunks of file paths with one model per worker, which Dask's
``distributed`` does with a client, a scheduler and workers that are plain Python processes (a few MB of
pure-Python wheels over what glyphlab already installs); Ray brings its own object store, a C++ runtime and a
large wheel for the same map, and ``LocalCluster`` lets the test run a real two-worker cluster in seconds.

The client (``glyphlab predict --cluster tcp://scheduler:8786``) reads the source, submits chunks of paths
and writes the results, in order, to its one output file; workers need the same glyphlab and the same paths
(a shared file system for the images and the model folder). A task caches what it loads per process, so each
worker loads the model once. ``--cluster local`` starts a ``LocalCluster`` of worker processes here (one thread
each) and stops it at the end.
"""

from __future__ import annotations

from typing import Any

from glyphlab.errors import ConfigError
from glyphlab.pipeline.batch.engine import Task

#: seconds the client waits for the scheduler before saying it cannot reach it
CONNECT_TIMEOUT_S = 20


def _distributed():
    try:
        import distributed
    except ModuleNotFoundError:
        raise ConfigError("--cluster needs Dask: pip install 'glyphlab[cluster]'") from None
    return distributed


class DaskCluster:
    """An executor on a Dask scheduler at ``address`` (``tcp://host:8786``), or ``"local"`` for a LocalCluster."""

    def __init__(self, address: str, workers: int = 2) -> None:
        distributed = _distributed()
        self._cluster = None
        if address == "local":
            self._cluster = distributed.LocalCluster(
                n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None
            )
            address = self._cluster.scheduler_address
        try:
            self._client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address} ({exc}); start one (dask scheduler) and its workers "
                "(dask worker tcp://HOST:8786), or leave out --cluster"
            ) from None
        self.workers = max(1, len(self._client.scheduler_info(n_workers=-1).get("workers", {})))
        self.name = f"Dask, {self.workers} workers at {address}"
        self.lost = (distributed.KilledWorker,)

    def submit(self, task: Task, chunk: list[str]) -> Any:
        return self._client.submit(task, chunk, pure=False)

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
