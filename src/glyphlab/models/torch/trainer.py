"""The training skeleton every glyphlab torch network runs, and :func:`train`, which equips it.

:class:`Trainer` does only what every fit does: hold the data as tensors on the device, and per epoch draw a
seeded permutation, slice batches (no DataLoader, no per-sample Python), step the optimiser under the
learning-rate schedule and the precision's autocast, and validate. Everything else is a callback
(:mod:`glyphlab.models.torch.callbacks`): early stopping and the best state, the EMA of the weights, the
checkpoint that makes a resumed run end with bit-identical weights, history.csv, the progress events, the
caller's per-epoch functions. The hooks (``before_fit``, ``before_epoch``, ``after_batch``, ``before_validate``,
``after_validate``, ``after_epoch``, ``after_fit``, ``finally_fit``) are those of fastai's Learner.

Data-parallel training (torchrun) is two callbacks around this skeleton (:mod:`glyphlab.models.torch.ddp`): they
set ``net`` (what the batches go through: the module, or its DistributedDataParallel wrapper) and ``shard`` (each
rank's share of a batch), and reduce the epoch's sums; the other callbacks write and report only where
``is_main`` (rank 0). Without them (``shard`` None) a step is exactly the one-process step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F
from glyphlab.errors import ConfigError
from glyphlab.models.base import EpochCallback
from glyphlab.models.files import CHECKPOINT
from glyphlab.models.torch.augment import augment_batch
from glyphlab.models.torch.callbacks import (
    EMA,
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochHooks,
    History,
    Progress,
)
from glyphlab.models.torch.loop import (
    AMP_DTYPES,
    TrainConfig,
    TrainResult,
    class_weights,
    configure_threads,
    loss_and_accuracy,
    lr_at,
    make_optimizer,
    resolve_device,
    resolve_precision,
)
from glyphlab.models.torch.world import World, data_parallel, world


def _to_tensor(images, labels, device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return x.to(device), y.to(device)


class Trainer:
    """One fit of ``module``: its settings resolved (device, precision, optimiser, generators), its state while
    it runs (``epoch``, ``step``, ``row``, ``history``, ``best_*``, ``ema_state``), and the callbacks' hooks."""

    def __init__(
        self,
        module: nn.Module,
        data: tuple[Any, Any, Any, Any],
        *,
        n_classes: int,
        config: TrainConfig,
        fingerprint: str = "",
        parameters: Sequence[nn.Parameter] | None = None,
        callbacks: Sequence[Callback] = (),
        is_main: bool = True,
    ) -> None:
        config.validate()
        self.module, self.cfg, self.is_main = module, config, is_main
        #: what the batches go through (a data-parallel callback wraps the module) and each rank's share of a batch
        self.net: nn.Module = module
        self.shard: Callable[[torch.Tensor], tuple[torch.Tensor, int, float]] | None = None
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            configure_threads()
        self.precision = resolve_precision(self.device, config.precision)
        self.amp = AMP_DTYPES[self.precision]
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == torch.float16 else None
        # a checkpoint is resumed only in the precision it was written in (``auto`` can resolve differently)
        self.fingerprint = f"{fingerprint}|{self.precision}" if self.precision != "fp32" else fingerprint
        self._set_data(*data)
        self._set_optimizer(parameters, n_classes)
        self._set_state()
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        for cb in self.callbacks:
            cb.trainer = self
        # the per-batch hook only of the callbacks that have one: a batch costs no empty calls
        self._batch_hooks = [
            cb.after_batch for cb in self.callbacks if type(cb).after_batch is not Callback.after_batch
        ]

    def _set_data(self, images, labels, val_images, val_labels) -> None:
        self.x, self.y = _to_tensor(images, labels, self.device)
        self.has_val = val_images is not None and val_labels is not None and len(val_images) > 0
        self.xv, self.yv = _to_tensor(val_images, val_labels, self.device) if self.has_val else (None, None)
        self.n = len(self.x)
        self.bs = min(int(self.cfg.batch_size), self.n)
        self.steps_per_epoch = math.ceil(self.n / self.bs)
        self.epochs = int(self.cfg.epochs)
        self.total_steps = self.epochs * self.steps_per_epoch
        aug = self.cfg.augment
        self.aug_cfg = aug if (aug is not None and aug.active) else None

    def _set_optimizer(self, parameters: Sequence[nn.Parameter] | None, n_classes: int) -> None:
        self.module.to(self.device)
        params = (
            list(parameters) if parameters is not None else [p for p in self.module.parameters() if p.requires_grad]
        )
        if not params:
            raise ConfigError("nothing to train: every parameter is frozen")
        self.optimizer = make_optimizer(params, self.cfg)
        weight = class_weights(self.y, n_classes, self.cfg.class_weight)
        self.weight = weight.to(self.device) if weight is not None else None
        seed = int(self.cfg.seed)
        self.gens = {
            "shuffle": torch.Generator(device="cpu").manual_seed(seed),
            "augment": torch.Generator(device=self.device).manual_seed(seed + 1),
        }

    def _set_state(self) -> None:
        self.epoch = self.step = self.batch = self.resumed_from = 0
        self.history: list[dict[str, Any]] = []
        self.row: dict[str, Any] = {}
        self.best_value, self.best_epoch, self.bad_epochs = math.nan, 0, 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.ema_state: dict[str, torch.Tensor] | None = None
        self.improved = self.stopped_early = False
        self.lr = float(self.cfg.lr)

    # -- the skeleton ------------------------------------------------------------------------------------------
    def _call(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)()

    def fit(self) -> TrainResult:
        """Run the epochs left (all of them, or those after a resumed checkpoint) until done or stopped early."""
        try:
            self._call("before_fit")
            while self.epoch < self.epochs and not self.stopped_early:
                self._one_epoch()
            self._call("after_fit")
        finally:
            self._call("finally_fit")
        self.module.eval()
        return TrainResult(
            history=self.history,
            best_epoch=self.best_epoch,
            stopped_early=self.stopped_early,
            resumed_from=self.resumed_from,
            device=str(self.device),
            precision=self.precision,
        )

    def _one_epoch(self) -> None:
        self.epoch += 1
        t0 = time.perf_counter()
        self.module.train()
        perm = torch.randperm(self.n, generator=self.gens["shuffle"]).to(self.device)
        self.loss_sum = torch.zeros((), device=self.device)
        self.seen = 0  # images of this epoch stepped on by this process (its share, under data parallelism)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.improved = False
        self._call("before_epoch")
        for b in range(self.steps_per_epoch):
            self.batch = b
            self._one_batch(perm[b * self.bs : (b + 1) * self.bs])
        self.row = {
            "epoch": self.epoch,
            "train_loss": float(self.loss_sum) / self.n,
            "train_acc": int(self.correct) / self.n,
            "val_loss": None,
            "val_acc": None,
            "lr": lr_at(max(0, self.step - 1), self.total_steps, self.cfg),
        }
        self._call("before_validate")
        if self.has_val:
            self.row["val_loss"], self.row["val_acc"] = loss_and_accuracy(
                self.module, self.xv, self.yv, self.cfg.eval_batch_size, self.amp
            )
        self.row["seconds"] = time.perf_counter() - t0
        self.history.append(self.row)
        self._call("after_validate")
        self._call("after_epoch")

    def _one_batch(self, idx: torch.Tensor) -> None:
        real, share = len(idx), None
        if self.shard is not None:
            idx, real, share = self.shard(idx)
        xb, yb = self.x[idx], self.y[idx]
        if self.aug_cfg is not None:
            xb = augment_batch(xb, self.aug_cfg, self.gens["augment"])
        self.lr = lr = lr_at(self.step, self.total_steps, self.cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            out = self.net(xb)
            loss = F.cross_entropy(out.float(), yb, weight=self.weight, label_smoothing=float(self.cfg.label_smoothing))
        step_loss = loss if share is None else loss * share
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(step_loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            step_loss.backward()
            self.optimizer.step()
        self.step += 1
        self.seen += real
        with torch.no_grad():
            self.loss_sum += loss.detach() * real
            self.correct += (out[:real].argmax(1) == yb[:real]).sum()
        for hook in self._batch_hooks:
            hook()


def standard_callbacks(
    config: TrainConfig, run_dir: Path | None, has_val: bool, epoch_callbacks: Sequence[EpochCallback] = ()
) -> list[Callback]:
    """What every glyphlab fit uses: early stopping and the best state, the EMA when ``config.ema`` is set, the
    checkpoint and history.csv when there is a ``run_dir``, progress events when ``config.progress``, and the
    caller's epoch callbacks."""
    callbacks: list[Callback] = [
        EarlyStopping(config.monitor if has_val else "train_loss", config.patience, config.min_delta)
    ]
    if float(config.ema or 0.0) > 0:
        callbacks.append(EMA(float(config.ema)))
    if run_dir is not None:
        callbacks += [Checkpoint(Path(run_dir) / CHECKPOINT), History(Path(run_dir))]
    if config.progress:
        callbacks.append(Progress())
    if epoch_callbacks:
        callbacks.append(EpochHooks(epoch_callbacks))
    return callbacks


def train(
    module: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    *,
    n_classes: int,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    fingerprint: str = "",
    parameters: Sequence[nn.Parameter] | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> TrainResult:
    """Train ``module`` in place on images (N, H, W) or (N, C, H, W) in [0, 1] and integer labels.

    ``parameters`` restricts what is optimised (e.g. only the head when features are frozen); the default
    is every parameter that requires grad. ``fingerprint`` identifies the run (parameters + data) so a
    checkpoint in ``run_dir`` is only resumed by the same run. On return the module holds the best state by
    ``config.monitor`` (when there is validation data) and sits on the training device in eval mode.
    ``callbacks`` are called with every finished epoch's history row, after its checkpoint is written.
    Started by torchrun, every rank trains its share of each batch (:mod:`glyphlab.models.torch.ddp`).
    """
    has_val = val_images is not None and val_labels is not None and len(val_images) > 0
    trainer = Trainer(
        module,
        (images, labels, val_images, val_labels),
        n_classes=n_classes,
        config=config,
        fingerprint=fingerprint,
        parameters=parameters,
        callbacks=_with_strategy(
            standard_callbacks(config, Path(run_dir) if run_dir is not None else None, has_val, callbacks), world()
        ),
        is_main=world().is_main or not data_parallel(),
    )
    return trainer.fit()


def _with_strategy(callbacks: list[Callback], w: World) -> list[Callback]:
    """Under torchrun (more than one rank, not :func:`~glyphlab.models.torch.world.local_only`), the data-parallel
    callbacks too; otherwise the callbacks as they are (one process trains exactly as it always did)."""
    if not data_parallel():
        return callbacks
    from glyphlab.models.torch.ddp import data_parallel_callbacks

    return callbacks + data_parallel_callbacks(w)
