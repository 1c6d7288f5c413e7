"""The terminal as an observer of the engine: Rich lines, tables, spinners and progress bars for its events.

The engine emits :mod:`glyphlab.events`; :class:`ConsoleObserver` renders them (the ``glyphlab`` command attaches
one to every command), :class:`NotebookProgress` renders the same lines and bars but no tables (in a notebook the
results are DataFrames, shown when asked for). Everything Rich-specific lives here, so the engine imports no Rich.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.status import Status
from rich.table import Table

from glyphlab import events as ev
from glyphlab.runfolder import LEADERBOARD_COLUMNS, sort_leaderboard

_LEVEL_STYLE = {"info": "", "dim": "dim", "warning": "yellow", "error": "red", "success": "green"}


class ConsoleObserver:
    """Renders engine events on a Rich console: one line per result, a table per table, a spinner for a step of
    unknown length and one progress bar per counted task (all bars share one live display, redrawn only when an
    event arrives: no render thread contends with training for the GIL)."""

    def __init__(self, console: Console | None = None, tables: bool = True) -> None:
        self.console = console or Console()
        self.tables = tables
        self._progress: Progress | None = None
        self._bars: dict[str, TaskID] = {}
        self._spinners: dict[str, Status] = {}

    # -- dispatch ------------------------------------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def print(self, text: str, **kwargs: Any) -> None:
        self.console.print(text, **kwargs)

    # -- generic -------------------------------------------------------------------------------------------------
    def _on_Note(self, e: ev.Note) -> None:
        style = _LEVEL_STYLE.get(e.level, "")
        text = escape(e.text)
        self.print(f"[{style}]{text}[/]" if style else text, soft_wrap=True)

    def _on_Wrote(self, e: ev.Wrote) -> None:
        names = [f"[green]{escape(str(p))}[/]" for p in e.paths]
        files = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
        self.print(f"wrote {files}" if e.what == "wrote" else f"{escape(e.what)}: {files}", soft_wrap=True)

    def _on_TaskStarted(self, e: ev.TaskStarted) -> None:
        if e.total is None:
            self._start_spinner(e.task, escape(e.description))
            return
        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
                auto_refresh=False,
            )
            self._progress.start()
        self._bars[e.task] = self._progress.add_task(e.description, total=e.total, stats="")
        self._progress.refresh()

    def _on_TaskAdvanced(self, e: ev.TaskAdvanced) -> None:
        if e.task in self._spinners:
            if e.status:
                self._spinners[e.task].update(escape(e.status))
        elif self._progress is not None and e.task in self._bars:
            extra = {"total": e.total} if e.total is not None else {}
            self._progress.update(self._bars[e.task], completed=e.completed, stats=e.status, refresh=True, **extra)

    def _on_BatchProgress(self, e: ev.BatchProgress) -> None:
        if self._progress is not None and e.task in self._bars:
            eta = f"{e.eta:.0f} s" if e.eta is not None else "?"
            stats = f"{e.rate:,.0f} files/s · ETA {eta}" + (f" · {e.failed:,} failed" if e.failed else "")
            self._progress.update(self._bars[e.task], completed=e.done, total=e.total, stats=stats, refresh=True)

    def _on_TaskEnded(self, e: ev.TaskEnded) -> None:
        self._stop_spinner(e.task)
        if self._progress is not None and e.task in self._bars:
            self._progress.remove_task(self._bars.pop(e.task))
            if not self._bars:
                self._progress.stop()
                self._progress = None

    def _on_Table(self, e: ev.Table) -> None:
        if not self.tables:
            return
        table = Table(title=e.title)
        for i, col in enumerate(e.columns):
            table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for i, row in enumerate(e.rows):
            table.add_row(*row, style="bold green" if i == e.highlight else None)
        if e.bold_rows:
            table.add_section()
            for row in e.bold_rows:
                table.add_row(*row, style="bold")
        self.console.print(table)

    # -- runs ----------------------------------------------------------------------------------------------------
    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        height, width = e.image_shape[0], e.image_shape[1]
        self.print(
            f"[bold]glyphlab run[/] dataset [cyan]{escape(e.dataset)}[/] {height}x{width}, {e.num_classes} classes, "
            "splits " + ", ".join(f"{k}={v:,}" for k, v in e.splits.items()) + f" → [green]{escape(str(e.out))}[/]"
        )
        self.print(f"  [dim]{escape(e.reading)}[/]")

    def _on_ModelKept(self, e: ev.ModelKept) -> None:
        self.print(f"  [dim]{escape(e.label)}: already finished, kept[/]")

    def _on_ModelStarted(self, e: ev.ModelStarted) -> None:
        self._start_spinner(f"model {e.label}", f"training [bold]{escape(e.label)}[/] on {e.n_train:,} images")

    def _on_ModelTrained(self, e: ev.ModelTrained) -> None:
        self._stop_spinner(f"model {e.label}")

    def _on_ModelResumed(self, e: ev.ModelResumed) -> None:
        self.print(
            f"  [dim]{escape(e.label)}: resumed after epoch {e.epoch}; its {e.seconds:.1f} s of training "
            "before the resume count in train s[/dim]"
        )

    def _on_ModelFinished(self, e: ev.ModelFinished) -> None:
        m = e.metrics
        self.print(
            f"  [bold]{escape(e.label)}[/]: accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f} "
            f"({m.get('train_seconds', 0.0):.1f} s)"
        )

    def _on_Leaderboard(self, e: ev.Leaderboard) -> None:
        if self.tables:
            self.console.print(leaderboard_table(e.rows, e.title))

    def _on_RunFailed(self, e: ev.RunFailed) -> None:
        if e.removed:
            self.print(f"[yellow]the run failed before any model finished: removed {escape(str(e.out))}[/]")
            return
        self.print(
            f"[yellow]the run failed; {escape(str(e.out))} keeps {e.finished} finished model(s) and failed.json: "
            f"`glyphlab run --resume {escape(str(e.out))}` continues it[/]",
            soft_wrap=True,
        )

    def _on_Tracked(self, e: ev.Tracked) -> None:
        self.print(f"tracked: [green]{escape(e.backend)}[/] {escape(str(e.uri))}")
        r = e.registered
        if r:
            self.print(
                f"registered: [green]{escape(str(r['uri']))}[/] = version {r['version']} ({escape(str(r['model']))})",
                soft_wrap=True,
            )

    # -- training ------------------------------------------------------------------------------------------------
    def _on_FitStarted(self, e: ev.FitStarted) -> None:
        if e.resumed_from:
            self.print(f"[dim]resuming from the checkpoint after epoch {e.resumed_from}[/dim]")

    def _on_EpochEnded(self, e: ev.EpochEnded) -> None:
        r = e.row
        val = f"  val_loss {r['val_loss']:.4f}  val_acc {r['val_acc']:.4f}" if r.get("val_loss") is not None else ""
        self.print(
            f"epoch {r['epoch']:>3}/{e.epochs}  loss {r['train_loss']:.4f}  acc {r['train_acc']:.4f}{val}"
            f"  lr {r['lr']:.2e}  {r['seconds']:.1f}s{' *' if e.improved else ''}"
            + ("  [yellow]early stop[/yellow]" if e.stopped_early else "")
        )

    # -- searches ------------------------------------------------------------------------------------------------
    def _on_SearchStarted(self, e: ev.SearchStarted) -> None:
        self.print(
            f"[bold]glyphlab search[/] [cyan]{escape(e.model)}[/] on [cyan]{escape(e.dataset)}[/] ({e.n_images:,} "
            f"train+val images), space [cyan]{escape(e.space)}[/] ({', '.join(e.params)}), score {e.score}, "
            f"sampler {e.sampler}, pruner {e.pruner}\n"
            f"  study [cyan]{escape(e.study)}[/] in {escape(e.storage)} → [green]{escape(str(e.out))}[/]"
        )

    def _on_TrialFinished(self, e: ev.TrialFinished) -> None:
        if e.state == "FAIL":
            self.print(f"[red]trial {e.number} failed:[/] {escape(e.error or 'unknown error')}")
            return
        tail = f"  ({e.seconds:.1f} s)" if e.seconds is not None else ""
        params = escape(format_params(e.params))
        if e.state == "PRUNED":
            self.print(f"  trial {e.number:>3} [yellow]pruned[/]{tail}  {params}")
            return
        pm = f" ± {e.std:.4f}" if e.std is not None else ""
        star = " [green]*[/]" if e.best else ""
        self.print(f"  trial {e.number:>3} {e.value:.4f}{pm}{tail}  {params}{star}")

    def _on_SearchFinished(self, e: ev.SearchFinished) -> None:
        if e.best_number is None:
            self.print("[yellow]no trial completed: nothing to refit[/]")
            return
        self.print(
            f"[bold green]best trial {e.best_number}[/]: {e.score} {e.best_value:.4f}"
            + (f" ± {e.best_std:.4f}" if e.best_std is not None else "")
            + f"  {escape(format_params(e.best_params))}"
        )

    # -- audits --------------------------------------------------------------------------------------------------
    def _on_AuditFinished(self, e: ev.AuditFinished) -> None:
        self.print(
            f"audit: {e.n_issues:,} label issues among {e.n_audited:,} images "
            f"({100 * e.n_issues / max(1, e.n_audited):.2f} %), out-of-fold accuracy {e.oof_accuracy:.4f}, "
            f"{e.seconds:.1f} s → [green]{escape(str(e.issues_csv))}[/]"
        )

    # -- spinners ------------------------------------------------------------------------------------------------
    def _start_spinner(self, key: str, text: str) -> None:
        self._stop_spinner(key)
        status = self.console.status(text)
        status.start()
        self._spinners[key] = status

    def _stop_spinner(self, key: str) -> None:
        status = self._spinners.pop(key, None)
        if status is not None:
            status.stop()

    def close(self) -> None:
        """Stop every live display (a step that raised leaves its spinner or bar behind otherwise)."""
        for key in list(self._spinners):
            self._stop_spinner(key)
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._bars.clear()


class NotebookProgress(ConsoleObserver):
    """Progress lines and bars, no tables: what ``gl.run(progress=True)`` shows (Rich renders in Jupyter too)."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console, tables=False)


def format_params(params: Mapping[str, Any]) -> str:
    """``a=1, b=0.001`` with floats to four significant digits."""
    return ", ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}" for k, v in params.items())


def leaderboard_table(rows: Sequence[Mapping[str, Any]], title: str = "leaderboard") -> Table:
    """The leaderboard as a Rich table, in :data:`LEADERBOARD_COLUMNS` order, best model highlighted."""
    table = Table(title=title)
    columns = [c for c in LEADERBOARD_COLUMNS if c.key != "n_test"]  # the title says how many test images
    for c in columns:
        table.add_column(c.label, no_wrap=c.digits is None, justify="left" if c.digits is None else "right")
    for i, r in enumerate(sort_leaderboard(list(rows))):
        cells = [
            str(r[c.key]) if c.digits is None else ("" if r.get(c.key) is None else f"{r[c.key]:.{c.digits}f}")
            for c in columns
        ]
        table.add_row(*cells, style="bold green" if i == 0 else None)
    return table
