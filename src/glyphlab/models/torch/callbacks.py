"""What a :class:`~glyphlab.models.torch.trainer.Trainer` does besides stepping the optimiser, one callback each.

As in fastai's ``Callback`` and Lightning's, the trainer runs only the skeleton (epochs, batches, validation) and
calls every callback's hook at fixed points; a callback reads and sets the trainer's state (``trainer.epoch``,
``trainer.row``, ``trainer.best_state`` ...). Hooks run in ascending ``order``, which encodes what depends on
what: the best state is copied (EarlyStopping, 0) while the EMA weights are in the module, before they are
swapped back (EMA, 10); a resumed checkpoint (Checkpoint, 20) overwrites the initial values of both; the
progress events (30) follow the checkpoint; the caller's epoch callbacks (40) see an epoch only once its
checkpoint is on disk, so a search's pruner, or a kill, can end training there and resume exactly.

Callbacks that write files or show progress act only on the main process (``trainer.is_main``): with several
data-parallel processes (torchrun) every rank runs the same callbacks, and rank 0 alone writes and reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn as nn
from glyphlab.events import EpochEnded, FitEnded, FitStarted, TaskAdvanced, TaskEnded, TaskStarted, emit, watched
from glyphlab.fileio import write_csv
from glyphlab.models.files import HISTORY
from glyphlab.models.torch.checkpoint import read_checkpoint, unflatten_optimizer, write_checkpoint

if TYPE_CHECKING:
    from glyphlab.models.torch.trainer import Trainer


class Callback:
    """The hooks, all doing nothing; a callback overrides those it needs. ``after_fit`` runs when training ended
    normally, ``finally_fit`` always (an exception, a pruned trial)."""

    order: ClassVar[int] = 0
    trainer: Trainer

    def before_fit(self) -> None: ...

    def before_epoch(self) -> None: ...

    def after_batch(self) -> None: ...

    def before_validate(self) -> None: ...

    def after_validate(self) -> None: ...

    def after_epoch(self) -> None: ...

    def after_fit(self) -> None: ...

    def finally_fit(self) -> None: ...


def state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the module's state (weights and buffers)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# -- the best state and early stopping -------------------------------------------------------------------------
class EarlyStopping(Callback):
    """Tracks the monitored value (``val_loss``/``val_acc``; ``train_loss`` without validation data), keeps the
    best state (with validation data) and puts it back at the end; with ``patience`` it stops training after
    that many epochs without an improvement of more than ``min_delta``."""

    order = 0

    def __init__(self, monitor: str, patience: int | None, min_delta: float = 0.0) -> None:
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.higher_better = monitor == "val_acc"

    def before_fit(self) -> None:
        self.trainer.best_value = -math.inf if self.higher_better else math.inf

    def after_validate(self) -> None:
        t = self.trainer
        value = t.row[self.monitor]
        if self.higher_better:
            t.improved = value > t.best_value + self.min_delta
        else:
            t.improved = value < t.best_value - self.min_delta
        if t.improved:
            t.best_value, t.best_epoch, t.bad_epochs = value, t.epoch, 0
            if t.has_val:
                t.best_state = state_tensors(t.module)
        else:
            t.bad_epochs += 1
            if self.patience and t.bad_epochs >= int(self.patience):
                t.stopped_early = True

    def after_fit(self) -> None:
        if self.trainer.best_state is not None:
            self.trainer.module.load_state_dict(self.trainer.best_state)


# -- an exponential moving average of the weights ---------------------------------------------------------------
class _Average:
    """ema <- decay * ema + (1 - decay) * current, for every float tensor of the state (weights and BatchNorm
    statistics alike); integer buffers (BatchNorm's batch counter) are copied.

    The pairs (average, live tensor) are collected once: the optimiser and ``load_state_dict`` update the live
    tensors in place, so a step is one fused ``_foreach_lerp_`` instead of a fresh ``state_dict()`` and a
    Python loop over every tensor."""

    def __init__(self, state: dict[str, torch.Tensor], module: nn.Module) -> None:
        live = module.state_dict(keep_vars=True)
        floats = [k for k, e in state.items() if e.is_floating_point()]
        self.avg = [state[k] for k in floats]
        self.cur = [live[k].detach() for k in floats]
        self.ints = [(state[k], live[k]) for k, e in state.items() if not e.is_floating_point()]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        torch._foreach_lerp_(self.avg, self.cur, 1.0 - decay)
        for e, v in self.ints:
            e.copy_(v)


def ema_decay(decay: float, step: int) -> float:
    """The decay after ``step`` optimiser steps, warmed up as in TensorFlow's ExponentialMovingAverage so the
    first steps' (random) weights do not linger in the average."""
    return min(decay, (1.0 + step) / (10.0 + step))


class EMA(Callback):
    """An exponential moving average of the weights (``trainer.ema_state``): it is what is validated, kept as the
    best state and left in the module at the end; training itself goes on from the raw weights."""

    order = 10

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)

    def before_fit(self) -> None:
        t = self.trainer
        t.ema_state = state_tensors(t.module)  # a resumed checkpoint copies its average into these tensors
        self.average = _Average(t.ema_state, t.module)

    def after_batch(self) -> None:
        self.average.update(ema_decay(self.decay, self.trainer.step))

    def before_validate(self) -> None:
        t = self.trainer
        if t.has_val:  # validate the average: it is what will be kept
            self.live = state_tensors(t.module)
            t.module.load_state_dict(t.ema_state)

    def after_validate(self) -> None:
        if self.trainer.has_val:
            self.trainer.module.load_state_dict(self.live)  # training goes on from the raw weights

    def after_fit(self) -> None:
        t = self.trainer
        if t.best_state is None:
            t.module.load_state_dict(t.ema_state)


# -- checkpoint and history ---------------------------------------------------------------------------------------
class Checkpoint(Callback):
    """Resumes from ``ckpt_dir`` when it holds this run's checkpoint (same fingerprint), and writes one after
    every epoch (:mod:`glyphlab.models.torch.checkpoint`), so a resumed run ends with the very same weights."""

    order = 20
    SCALARS = ("best_value", "best_epoch", "bad_epochs", "stopped_early")

    def __init__(self, ckpt_dir: Path) -> None:
        self.ckpt_dir = ckpt_dir

    def before_fit(self) -> None:
        t = self.trainer
        ck = read_checkpoint(self.ckpt_dir, t.fingerprint)
        if ck is None:
            return
        meta, dev = ck["meta"], t.device
        t.module.load_state_dict({k: v.to(dev) for k, v in ck["model"].items()}, strict=True)
        t.optimizer.load_state_dict(unflatten_optimizer(ck["state"], meta["optimizer"]))
        if t.scaler is not None and meta.get("scaler"):
            t.scaler.load_state_dict(meta["scaler"])
        torch.set_rng_state(ck["state"]["rng.torch"])
        for name, g in t.gens.items():
            g.set_state(ck["state"][f"rng.gen.{name}"])
        if "rng.cuda" in ck["state"] and torch.cuda.is_available():
            torch.cuda.set_rng_state(ck["state"]["rng.cuda"])
        t.best_state = {k: v.to(dev) for k, v in ck["best"].items()} if ck["best"] is not None else None
        if t.ema_state is not None and ck["ema"] is not None:
            for k, v in ck["ema"].items():
                t.ema_state[k].copy_(v)
        t.history = meta["history"]
        for key in self.SCALARS:
            setattr(t, key, meta[key])
        t.epoch, t.step = meta["epoch"], meta["step"]
        t.resumed_from = t.epoch

    def after_epoch(self) -> None:
        t = self.trainer
        if not t.is_main:
            return
        write_checkpoint(
            self.ckpt_dir,
            states={"model": t.module.state_dict(), "best": t.best_state, "ema": t.ema_state},
            optimizer=t.optimizer,
            scaler=t.scaler,
            gens=t.gens,
            meta={
                "fingerprint": t.fingerprint,
                "epoch": t.epoch,
                "step": t.step,
                "history": t.history,
                **{key: getattr(t, key) for key in self.SCALARS},
            },
        )


HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def write_history(history: list[dict[str, Any]], run_dir: Path) -> None:
    """history.csv: one row per epoch (the report draws the learning curves from it)."""
    write_csv(
        run_dir / HISTORY,
        [{k: ("" if row.get(k) is None else row.get(k)) for k in HISTORY_FIELDS} for row in history],
        columns=list(HISTORY_FIELDS),
    )


class History(Callback):
    """Writes ``run_dir/history.csv`` after every epoch and at the end."""

    order = 25

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def after_epoch(self) -> None:
        if self.trainer.is_main:
            write_history(self.trainer.history, self.run_dir)

    def after_fit(self) -> None:
        self.after_epoch()


# -- progress and the caller's epoch callbacks ------------------------------------------------------------------
class Progress(Callback):
    """The training's events (:mod:`glyphlab.events`): the fit's start and end, a task per epoch advanced at most
    four times a second, and each finished epoch's row. Silent when no observer is attached (no sync with the
    device to read the running loss)."""

    order = 30
    TASK = "epoch"
    REDRAW_S = 0.25

    def before_fit(self) -> None:
        t = self.trainer
        self.active = t.is_main and watched()
        self.open = False
        if self.active:
            emit(FitStarted(t.epochs, t.steps_per_epoch, t.resumed_from))

    def before_epoch(self) -> None:
        if self.active:
            t = self.trainer
            emit(TaskStarted(self.TASK, f"epoch {t.epoch}/{t.epochs}", total=t.steps_per_epoch))
            self.open, self.drawn = True, time.perf_counter()

    def after_batch(self) -> None:
        t = self.trainer
        last = t.batch == t.steps_per_epoch - 1
        if self.active and (last or time.perf_counter() - self.drawn > self.REDRAW_S):
            self.drawn = time.perf_counter()
            seen = max(1, t.seen)  # this process's images (its share under data parallelism)
            stats = f"loss {float(t.loss_sum) / seen:.4f} acc {int(t.correct) / seen:.4f} lr {t.lr:.2e}"
            emit(TaskAdvanced(self.TASK, t.batch + 1, stats))

    def after_validate(self) -> None:
        self.finally_fit()

    def after_epoch(self) -> None:
        if self.active:
            t = self.trainer
            emit(EpochEnded(t.epochs, dict(t.row), t.improved, t.stopped_early))

    def after_fit(self) -> None:
        if self.active:
            emit(FitEnded(self.trainer.best_epoch, self.trainer.stopped_early))

    def finally_fit(self) -> None:
        if self.open:
            self.open = False
            emit(TaskEnded(self.TASK))


class EpochHooks(Callback):
    """The caller's per-epoch functions (:data:`glyphlab.models.base.EpochCallback`), each given the epoch's history
    row once its checkpoint is written; an exception one raises (a search's ``optuna.TrialPruned``) ends training."""

    order = 40

    def __init__(self, functions: Sequence[Callable[[dict[str, Any]], None]]) -> None:
        self.functions = list(functions)

    def after_epoch(self) -> None:
        for fn in self.functions:
            fn(self.trainer.row)
