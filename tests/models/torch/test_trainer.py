"""The Trainer's skeleton: its hooks in a fixed order, and the progress callback's events."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from glyphlab import events as ev
from glyphlab.models.torch.callbacks import Callback
from glyphlab.models.torch.loop import TrainConfig
from glyphlab.models.torch.trainer import Trainer, train


def _data(n=60):
    rng = np.random.default_rng(0)
    return rng.random((n, 4, 4), dtype=np.float32), rng.integers(0, 2, n)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


class Hooks(Callback):
    """Records every hook the trainer calls, with the batch and the optimiser steps done at each batch."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_fit(self) -> None:
        self.calls.append("before_fit")

    def before_epoch(self) -> None:
        self.calls.append(f"before_epoch {self.trainer.epoch}")

    def after_batch(self) -> None:
        self.calls.append(f"after_batch {self.trainer.batch} step {self.trainer.step}")

    def before_validate(self) -> None:
        self.calls.append("before_validate")

    def after_validate(self) -> None:
        self.calls.append(f"after_validate {self.trainer.row['epoch']}")

    def after_epoch(self) -> None:
        self.calls.append("after_epoch")

    def after_fit(self) -> None:
        self.calls.append("after_fit")

    def finally_fit(self) -> None:
        self.calls.append("finally_fit")


def test_the_hooks_run_in_the_order_of_a_fit():
    x, y = _data()
    hooks = Hooks()
    cfg = TrainConfig(epochs=2, batch_size=40, progress=False)  # two batches an epoch: 40 and 20 images
    Trainer(_net(), (x, y, x[:10], y[:10]), n_classes=2, config=cfg, callbacks=[hooks]).fit()
    expected = ["before_fit"]
    for epoch in (1, 2):
        expected += [
            f"before_epoch {epoch}",
            f"after_batch 0 step {2 * epoch - 1}",
            f"after_batch 1 step {2 * epoch}",
            "before_validate",
            f"after_validate {epoch}",
            "after_epoch",
        ]
    assert hooks.calls == [*expected, "after_fit", "finally_fit"]


def test_finally_fit_runs_when_a_callback_ends_training():
    x, y = _data()
    hooks = Hooks()

    class Stop(Callback):
        order = 50

        def after_epoch(self) -> None:
            raise KeyboardInterrupt  # as a kill, or a pruned trial, would end it

    cfg = TrainConfig(epochs=3, batch_size=60, progress=False)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_net(), (x, y, None, None), n_classes=2, config=cfg, callbacks=[hooks, Stop()]).fit()
    assert hooks.calls[-2:] == ["after_epoch", "finally_fit"] and "after_fit" not in hooks.calls


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def on_event(self, event: ev.Event) -> None:
        self.events.append(event)


def test_progress_events_reach_the_observer_of_the_fit():
    x, y = _data()
    seen = Recorder()
    with ev.observing(seen):
        result = train(_net(), x, y, x[:10], y[:10], n_classes=2, config=TrainConfig(epochs=2, batch_size=20))
    kinds = [type(e).__name__ for e in seen.events]
    assert kinds[0] == "FitStarted" and kinds[-1] == "FitEnded"
    assert kinds.count("TaskStarted") == kinds.count("TaskEnded") == kinds.count("EpochEnded") == 2
    assert [e.row for e in seen.events if isinstance(e, ev.EpochEnded)] == result.history
    advanced = [e for e in seen.events if isinstance(e, ev.TaskAdvanced)]
    assert advanced and advanced[-1].completed == 3  # the last batch of 60 / 20 is always drawn


def test_no_progress_events_without_progress():
    x, y = _data()
    seen = Recorder()
    with ev.observing(seen):
        train(_net(), x, y, n_classes=2, config=TrainConfig(epochs=1, batch_size=20, progress=False))
    assert seen.events == []
