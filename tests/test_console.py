"""The console observer renders the engine's events: lines, tables, bars; the notebook's shows no tables."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from glyphlab import events as ev
from glyphlab.console import ConsoleObserver, NotebookProgress

ROW = {"model": "svm", "accuracy": 0.9512, "f1_macro": 0.95, "train_seconds": 1.5, "predict_seconds": 0.1}


def _render(observer_cls, events) -> str:
    console = Console(record=True, width=200, force_terminal=False)
    observer = observer_cls(console)
    with ev.observing(observer):
        for e in events:
            ev.emit(e)
    observer.close()
    return console.export_text()


def test_the_console_draws_lines_bars_and_tables():
    text = _render(
        ConsoleObserver,
        [
            ev.RunStarted(Path("runs/x"), "digits", (8, 8), 10, {"train": 100, "test": 20}, "arrays as given"),
            ev.TaskStarted("epoch", "epoch 1/2", total=3),
            ev.TaskAdvanced("epoch", 3, "loss 0.1"),
            ev.TaskEnded("epoch"),
            ev.EpochEnded(
                2,
                {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": None, "lr": 1e-3, "seconds": 1.0},
                improved=True,
                stopped_early=False,
            ),
            ev.Leaderboard("leaderboard — digits", [ROW]),
            ev.Note("[not markup] a hint", "warning"),
        ],
    )
    assert "glyphlab run dataset digits 8x8, 10 classes, splits train=100, test=20 → runs/x" in text
    assert "epoch   1/2  loss 0.5000  acc 0.8000  lr 1.00e-03  1.0s *" in text
    assert "leaderboard — digits" in text and "0.9512" in text
    assert "[not markup] a hint" in text  # a note's text is shown as given, never read as Rich markup


def test_the_notebook_progress_shows_lines_but_no_tables():
    text = _render(NotebookProgress, [ev.ModelKept("svm"), ev.Leaderboard("leaderboard", [ROW])])
    assert "svm: already finished, kept" in text
    assert "leaderboard" not in text


def test_a_batch_job_s_progress_is_a_bar_with_its_rate_and_eta():
    console = Console(record=True, width=160, force_terminal=True)
    observer = ConsoleObserver(console)
    with ev.observing(observer):
        ev.emit(ev.TaskStarted("predict", "predict", total=26))
        ev.emit(ev.BatchProgress("predict", done=8, total=26, elapsed=2.0, failed=1))
        ev.emit(ev.TaskEnded("predict"))
    observer.close()
    text = console.export_text()
    assert "8/26 4 files/s · ETA 4 s · 1 failed" in text  # 8 files in 2 s; 18 left at 4 a second: 4.5 s
