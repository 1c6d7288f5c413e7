"""Data-parallel training with PyTorch's own DistributedDataParallel: two callbacks around the Trainer's skeleton.

Started by ``torchrun --nproc-per-node N -m glyphlab run ...`` (any number of machines with ``--nnodes``), every
rank runs the same fit; :class:`DataParallel` makes it one data-parallel fit:

* the process group: gloo for CPU tensors, NCCL for CUDA ones (``cpu:gloo,cuda:nccl`` where there is a GPU; each
  rank on GPU ``LOCAL_RANK``);
* the module goes through ``DistributedDataParallel``, which starts every rank from rank 0's weights and averages
  the gradients in the backward pass;
* **the global batch is the one-process batch**: every rank draws the same seeded permutation (the trainer's
  shuffle generator, seeded by the run's seed) and takes a strided share of each batch of ``batch_size``
  images (``batch[rank::size]``, DistributedSampler's split). Its loss is weighted by its share
  (``size * len(share) / len(batch)``) so that the averaged gradient is the gradient of the whole batch's mean
  loss: the same steps per epoch, the same learning rate and the same schedule as one process, nothing to
  rescale. (With ``class_weight`` the batch loss is the average of the ranks' weighted means, close to, not
  equal to, the one-process weighted mean; BatchNorm's statistics are each rank's share's, as in DDP.)
* the epoch's training loss and accuracy are summed over the ranks; validation is rank 0's, broadcast, so that
  every rank takes the same early-stopping decision and the same number of epochs.

:class:`SameStart` checks, after the checkpoint is read, that every rank resumes from the same epoch: ranks on
machines that do not share the run folder would otherwise train different epochs and wait on each other.
Rank 0 alone writes the checkpoint and history (the callbacks' ``is_main``); every rank reads the same checkpoint.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from glyphlab.errors import ConfigError
from glyphlab.models.torch.callbacks import Callback
from glyphlab.models.torch.world import World, world

#: how long a rank waits for the others (seconds): rank 0 may evaluate and report on a model, or fit a
#: classical one alone, while the other ranks already wait for the next network
TIMEOUT_ENV = "GLYPHLAB_DDP_TIMEOUT"
DEFAULT_TIMEOUT_S = 4 * 3600


def ensure_process_group() -> None:
    """Join torchrun's process group once per process (gloo, and NCCL for CUDA tensors where there is a GPU)."""
    if dist.is_initialized():
        return
    w = world()
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(w.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend=backend, timeout=timeout)


def share_plan(out: str, flags: list[bool]) -> tuple[str, list[bool]]:
    """Rank 0's run folder and which models it trains, given to every rank (rank 0 passes them, the others
    pass placeholders of the same length and get rank 0's). Sent as tensors, not pickles."""
    ensure_process_group()
    raw = torch.tensor(list(out.encode()), dtype=torch.uint8)
    size = torch.tensor([len(raw)], dtype=torch.int64)
    dist.broadcast(size, 0)
    buf = raw if world().is_main else torch.zeros(int(size), dtype=torch.uint8)
    dist.broadcast(buf, 0)
    todo = torch.tensor([int(f) for f in flags], dtype=torch.int64)
    dist.broadcast(todo, 0)
    return bytes(buf.tolist()).decode(), [bool(f) for f in todo.tolist()]


class DataParallel(Callback):
    """Wraps the module in DistributedDataParallel and shares each batch among the ranks (see the module's doc)."""

    order = -10

    def __init__(self, w: World) -> None:
        self.rank, self.size = w.rank, w.size

    def before_fit(self) -> None:
        from torch.nn.parallel import DistributedDataParallel

        t = self.trainer
        ensure_process_group()
        # rank 0 has discarded an unfinished attempt's files before any rank reads the checkpoint
        dist.barrier()
        ids = None
        if t.device.type == "cuda":
            ids = [t.device.index if t.device.index is not None else torch.cuda.current_device()]
        t.net = DistributedDataParallel(t.module, device_ids=ids)
        t.shard = self.shard

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, int, float]:
        """This rank's share of a batch, how many of its images count, and its loss's weight. A rank left
        without an image (a last batch smaller than the world) steps on one image with weight 0."""
        mine = idx[self.rank :: self.size]
        real = len(mine)
        if real == 0:
            mine = idx[:1]
        return mine, real, self.size * real / len(idx)

    def before_validate(self) -> None:
        t = self.trainer
        sums = torch.stack([t.loss_sum.double(), t.correct.double()])
        dist.all_reduce(sums)
        t.row["train_loss"] = float(sums[0]) / t.n
        t.row["train_acc"] = round(float(sums[1])) / t.n

    def after_validate(self) -> None:
        t = self.trainer
        if t.has_val:
            v = torch.tensor([t.row["val_loss"], t.row["val_acc"]], dtype=torch.float64, device=t.device)
            dist.broadcast(v, 0)
            t.row["val_loss"], t.row["val_acc"] = float(v[0]), float(v[1])

    def finally_fit(self) -> None:
        self.trainer.net, self.trainer.shard = self.trainer.module, None


class SameStart(Callback):
    """After the checkpoint is read (order 21 > Checkpoint's 20): every rank must go on from the same epoch."""

    order = 21

    def before_fit(self) -> None:
        t = self.trainer
        at = torch.tensor([t.epoch], dtype=torch.int64, device=t.device)
        low, high = at.clone(), at.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if int(low) != int(high):
            raise ConfigError(
                f"the ranks resumed from different epochs ({int(low)} to {int(high)}): every machine must see the "
                "same run folder (a shared file system) to --resume a data-parallel run"
            )
        rank = dist.get_rank()
        if rank:  # each rank its own augmentations (rank 0 keeps the seeded, checkpointed stream)
            t.gens["augment"].manual_seed(int(t.cfg.seed) + 1 + 7919 * rank + t.epoch)


def data_parallel_callbacks(w: World) -> list[Callback]:
    """What :func:`~glyphlab.models.torch.trainer.train` adds to a fit under torchrun."""
    return [DataParallel(w), SameStart()]
