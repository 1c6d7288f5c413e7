"""What the engine tells whoever watches it: typed events, and the observers that receive them.

The engine (``pipeline/``, ``models/``, ``evaluation/``, ``data/``, ``recipes/``) never prints. It calls
:func:`emit` with an event; every observer attached with :func:`observing` gets it through its one method,
``on_event``. The terminal's tables and progress bars (:class:`glyphlab.console.ConsoleObserver`), a notebook's
progress (:class:`glyphlab.console.NotebookProgress`) and the experiment trackers
(:class:`glyphlab.tracking.TrackerObserver`) are observers; with none attached an event costs one lookup.

Observers are held in a context variable, not passed down every call: an event raised deep inside a model's
``fit`` (an epoch ended) or a download reaches the observers of the step that started it, as a log record reaches
its handlers, without a ``console=`` parameter in every signature between them. ``observing`` nests: an inner
step's observers are added to the outer ones for its duration.

Events are frozen dataclasses carrying data, never text formatted for one medium: how a run's start or a
leaderboard looks is the observer's business. :class:`Note` is the exception for one-off remarks (a hint, a
warning about a skipped figure) whose only content is their sentence.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable


@runtime_checkable
class Observer(Protocol):
    """Anything that wants to know what the engine does; ``on_event`` must ignore events it does not know."""

    def on_event(self, event: Event) -> None: ...


_observers: ContextVar[tuple[Observer, ...]] = ContextVar("glyphlab_observers", default=())


def _other_rank() -> bool:
    """Whether torchrun started this process as a rank other than 0 (``RANK`` set and not 0): such a process
    trains its share and says nothing; progress, tables and tracking come from rank 0 alone."""
    try:
        return int(os.environ.get("RANK", "0") or 0) != 0 and "WORLD_SIZE" in os.environ
    except ValueError:
        return False


#: read once: torchrun sets a rank's variables before the process starts
_SILENT = _other_rank()


@contextmanager
def observing(*observers: Observer | None) -> Iterator[None]:
    """Send the events emitted inside the ``with`` block to ``observers`` too (``None`` entries are skipped)."""
    added = tuple(o for o in observers if o is not None)
    token = _observers.set(_observers.get() + added)
    try:
        yield
    finally:
        _observers.reset(token)


def emit(event: Event) -> None:
    """Give ``event`` to every attached observer, outermost first (none on a data-parallel rank other than 0)."""
    if _SILENT:
        return
    for observer in _observers.get():
        observer.on_event(event)


def watched() -> bool:
    """Whether any observer is attached: lets a hot loop skip building events nobody receives."""
    return not _SILENT and bool(_observers.get())


@dataclass(frozen=True)
class Event:
    """The base of every event (an observer can ``isinstance`` on it, or on the kinds it renders)."""


# -- generic -----------------------------------------------------------------------------------------------------
Level = Literal["info", "dim", "warning", "error", "success"]


@dataclass(frozen=True)
class Note(Event):
    """A remark in one sentence: a hint, a skipped step, a warning that does not stop the step."""

    text: str
    level: Level = "info"


@dataclass(frozen=True)
class Wrote(Event):
    """Files a step wrote that the user will want to open (``what`` names them: ``report``, ``submission``)."""

    paths: tuple[Path, ...]
    what: str = "wrote"


@dataclass(frozen=True)
class TaskStarted(Event):
    """A long step begins: ``total`` steps (a bar), or ``None`` when its length is unknown (a spinner)."""

    task: str  #: a key that TaskAdvanced/TaskEnded repeat
    description: str
    total: int | None = None


@dataclass(frozen=True)
class TaskAdvanced(Event):
    """``completed`` of the task's total done; ``status`` a short text of where it stands (loss, best trial)."""

    task: str
    completed: int
    status: str = ""
    total: int | None = None  #: set when the total became known only now (a download's length)


@dataclass(frozen=True)
class TaskEnded(Event):
    task: str


@dataclass(frozen=True)
class Table(Event):
    """A result that reads as a table (a robustness sweep, a comparison with a paper); cells already formatted.
    ``bold_rows`` are summary rows drawn after a rule; ``highlight`` the index of a row to draw in green."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bold_rows: tuple[tuple[str, ...], ...] = ()
    highlight: int | None = None


# -- runs ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunStarted(Event):
    out: Path
    dataset: str
    image_shape: tuple[int, ...]
    num_classes: int
    splits: Mapping[str, int]
    reading: str  #: how the pixels were read (one line: pixel range, image preprocessing)


@dataclass(frozen=True)
class ModelKept(Event):
    """A resumed run keeps a model that had already finished."""

    label: str


@dataclass(frozen=True)
class ModelStarted(Event):
    label: str
    n_train: int


@dataclass(frozen=True)
class ModelTrained(Event):
    """``fit`` returned (evaluation and saving follow)."""

    label: str
    seconds: float


@dataclass(frozen=True)
class ModelResumed(Event):
    """A network resumed after ``epoch`` from its checkpoint; ``seconds`` of training before count in train s."""

    label: str
    epoch: int
    seconds: float


@dataclass(frozen=True)
class ModelFinished(Event):
    """A model's results are written and committed (``model_dir/done.json``)."""

    label: str
    model_dir: Path
    metrics: Mapping[str, Any]


@dataclass(frozen=True)
class Leaderboard(Event):
    """A run's (or an evaluation's) models, one :func:`glyphlab.runfolder.leaderboard_row` each."""

    title: str
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class RunFinished(Event):
    """A run (or a search) ended; ``failed`` when an error or an interruption ended it."""

    out: Path
    failed: bool = False


@dataclass(frozen=True)
class RunFailed(Event):
    """A failed run's folder: removed (no model had finished) or kept for ``--resume`` with its finished models."""

    out: Path
    removed: bool
    finished: int = 0


@dataclass(frozen=True)
class Tracked(Event):
    """Where a tracked run's records went; ``registered``: the model-registry entry (uri, version, model)."""

    backend: str
    uri: str
    registered: Mapping[str, Any] | None = None


# -- training ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitStarted(Event):
    epochs: int
    steps_per_epoch: int
    resumed_from: int = 0  #: the epoch a resumed fit continues after (0 = a fresh start)


@dataclass(frozen=True)
class EpochEnded(Event):
    """One epoch's history row (epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds)."""

    epochs: int
    row: Mapping[str, Any]
    improved: bool
    stopped_early: bool


@dataclass(frozen=True)
class FitEnded(Event):
    best_epoch: int
    stopped_early: bool


# -- searches ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchStarted(Event):
    model: str
    dataset: str
    n_images: int
    space: str
    params: tuple[str, ...]
    score: str
    sampler: str
    pruner: str
    study: str
    storage: str  #: the storage URL, password redacted
    out: Path


@dataclass(frozen=True)
class TrialFinished(Event):
    """A trial ended COMPLETE, PRUNED or FAIL (``error`` says why); ``best``: it is the study's best so far."""

    number: int
    params: Mapping[str, Any]
    value: float | None
    state: str
    std: float | None = None  #: the spread of its cross-validation folds
    seconds: float | None = None
    best: bool = False
    error: str = ""


@dataclass(frozen=True)
class SearchFinished(Event):
    """The study's best trial (``None`` when no trial completed)."""

    out: Path
    score: str
    best_number: int | None = None
    best_value: float | None = None
    best_std: float | None = None
    best_params: Mapping[str, Any] = field(default_factory=dict)


# -- batch jobs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchProgress(Event):
    """Where a batch job (``glyphlab predict``) stands after a chunk is written, inside its TaskStarted/TaskEnded;
    the observer draws the counts, the rate and the ETA."""

    task: str
    done: int  #: files written by this run (failed ones included)
    total: int  #: files this run has to do
    elapsed: float  #: seconds since the first chunk was submitted
    failed: int = 0  #: of ``done``, the files that could not be read or classified
    skipped: int = 0  #: files an earlier run had written (``resume``), not counted in ``done``

    @property
    def rate(self) -> float:
        """Files per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before the first file)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


# -- audits and evaluations ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditFinished(Event):
    n_issues: int
    n_audited: int
    oof_accuracy: float
    seconds: float
    issues_csv: Path
