"""The public Python API: the functions and classes ``import glyphlab as gl`` gives, for notebooks and scripts.

A thin layer over the same functions the ``glyphlab`` command calls: each step takes the CLI's options as
keyword arguments and returns an object (a :class:`Run`, a DataFrame, a model) instead of printing tables.
``progress=True`` shows progress lines and bars (Rich renders them in Jupyter too) but never a table;
``progress=False`` prints nothing. Errors are glyphlab's (:mod:`glyphlab.errors`), subclasses of
``ValueError`` or ``FileNotFoundError``.
"""

from __future__ import annotations

import fnmatch
import html
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import rich
from rich.console import Console
from rich.table import Table

from glyphlab.data.dataset import Dataset
from glyphlab.data.registry import list_datasets as _dataset_specs
from glyphlab.data.registry import resolve_dataset
from glyphlab.errors import ConfigError
from glyphlab.evaluation.interpretation import Interpretation
from glyphlab.models.base import GlyphModel
from glyphlab.models.persistence import load_model as _load_model
from glyphlab.models.registry import create_model as _create_model
from glyphlab.models.registry import list_models as _model_specs
from glyphlab.pipeline.compare import Comparison as _Comparison
from glyphlab.pipeline.compare import compare as _compare
from glyphlab.pipeline.compare import list_runs as _list_runs
from glyphlab.pipeline.run import RunConfig
from glyphlab.pipeline.run import run as _run
from glyphlab.runfolder import REPORT_PDF, RunFolder
from glyphlab.serving.predictor import Predictor

if TYPE_CHECKING:
    from glyphlab.pipeline.batch.engine import Progress
    from glyphlab.pipeline.predict import Predictions

__all__ = [
    "Comparison",
    "Interpretation",
    "Predictor",
    "Run",
    "compare",
    "create_model",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_model",
    "predict",
    "recipe",
    "run",
    "runs",
    "search",
]


# -- registries ---------------------------------------------------------------------------------------------
def list_datasets(pattern: str = "*") -> pd.DataFrame:
    """The built-in datasets whose name matches ``pattern`` (``"mnist*"``): name, sizes, description, source."""
    rows = [
        {"name": d.name, "sizes": d.sizes, "description": d.description, "source": d.source}
        for d in _dataset_specs()
        if fnmatch.fnmatch(d.name, pattern)
    ]
    return pd.DataFrame(rows, columns=["name", "sizes", "description", "source"])


def list_models(pattern: str = "*") -> pd.DataFrame:
    """The registered models whose name matches ``pattern`` (``"cnn*"``): name, family, description, defaults."""
    rows = [
        {
            "name": m.name,
            "family": m.family,
            "description": m.description,
            "parameters": ", ".join(f"{k}={v}" for k, v in m.cls.defaults.items()),
        }
        for m in _model_specs()
        if fnmatch.fnmatch(m.name, pattern)
    ]
    return pd.DataFrame(rows, columns=["name", "family", "description", "parameters"])


def load_dataset(
    name_or_path: str | Path, data_dir: str | Path | None = None, limit: int | None = None, **options: Any
) -> Dataset:
    """A built-in dataset by name (``"digits"``, ``"mnist"``) or a file or folder of images in a format glyphlab
    reads; ``limit`` keeps that many images per split (stratified); other ``options`` go to the reader."""
    if limit is not None:
        options["limit"] = limit
    return resolve_dataset(str(name_or_path), data_dir, **options)


def create_model(name: str, **params: Any) -> GlyphModel:
    """A new, unfitted model from the registry (``gl.list_models()``): ``fit``, ``predict``, ``predict_proba``,
    ``score``, ``save``; ``params`` override its defaults (``epochs=3``)."""
    return _create_model(name, **params)


def load_model(path: str | Path) -> GlyphModel:
    """A saved model folder (``model.save(path)``, or a run's ``models/NAME``), its files' SHA-256 checked first."""
    return _load_model(path)


# -- runs ---------------------------------------------------------------------------------------------------
class ReportFile(type(Path())):  # type: ignore[misc]
    """The path of a written report.html; Jupyter shows the page itself below the cell."""

    def _repr_html_(self) -> str:
        page = self.read_text(encoding="utf-8")
        return (
            f"<p>report: <code>{html.escape(str(self))}</code> ({len(page) / 1e6:.1f} MB)</p>"
            f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:640px;'
            f'border:1px solid #ccc"></iframe>'
        )


class Run(RunFolder):
    """A run folder: ``gl.Run.open(path)`` reads any one, nothing retrained and no model loaded.

    ``run.leaderboard`` (a DataFrame), ``run.models``, ``run.config``, ``run.dataset``, ``run.interpret(name)``,
    ``run.report()``; ``run.model(name).model_path`` is the saved model ``gl.load_model`` and ``gl.Predictor`` take.
    """

    def interpret(self, model: str | None = None) -> Interpretation:
        """The :class:`Interpretation` of one model's saved predictions (default: the best on the leaderboard)."""
        if model is None:
            ranked = [r["model"] for r in self.leaderboard_rows()]
            if not ranked:
                raise ConfigError(f"run {self.path} has no finished model to interpret")
            model = ranked[0]
        return Interpretation.from_run(self, model)

    def report(self, pdf: bool = False) -> ReportFile:
        """Write report.html (and report.pdf with ``pdf``) from the folder's files; returns the HTML's path."""
        from glyphlab.reporting.html import build_report  # local: jinja2 and the report's figures load on demand

        return ReportFile(build_report(self.path, pdf=pdf))

    @property
    def report_pdf(self) -> Path:
        return self.file(REPORT_PDF)


class _NoTables(Console):
    """Progress lines and bars, but no tables: in a notebook results are DataFrames, shown when asked for."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not any(isinstance(o, Table) for o in objects):
            super().print(*objects, **kwargs)


@contextmanager
def _output(progress: bool) -> Iterator[Console]:
    """The console a step prints through. The training loop's progress bars use Rich's global console, so it
    is swapped for the same one while the step runs (``rich._console`` is what ``rich.get_console`` returns)."""
    console: Console = _NoTables() if progress else Console(quiet=True)
    previous = rich.get_console()
    rich._console = console
    try:
        yield console
    finally:
        rich._console = previous


def run(
    dataset: str | Path = "digits",
    models: Sequence[str] = ("logreg", "svm", "random-forest"),
    out: str | Path | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    variants: str = "",
    data_dir: str | Path | None = None,
    limit: int | None = None,
    dataset_options: dict[str, Any] | None = None,
    resume: bool = False,
    report: bool = False,
    progress: bool = True,
    track: str | None = None,
    tracking_uri: str | None = None,
    register: str | None = None,
) -> Run:
    """Train and evaluate ``models`` on ``dataset`` into the run folder ``out`` (``glyphlab run``); returns the Run.

    ``params`` maps a model label to its parameters (``{"svm": {"C": 10}}``); ``LABEL=NAME`` in ``models``
    runs a registry model under another label. ``resume=True`` keeps the models ``out`` already finished.
    ``track="mlflow"`` / ``"tensorboard"`` (and ``tracking_uri``) also log the run there (``--track``);
    ``register="NAME"`` registers the best model in MLflow's model registry, alias ``champion`` (``--register``).
    """
    options = dict(dataset_options or {})
    if limit is not None:
        options["limit"] = limit
    cfg = RunConfig(
        dataset=str(dataset),
        models=list(models),
        params=dict(params or {}),
        seed=seed,
        val_fraction=val_fraction,
        variants=variants,
        data_dir=str(data_dir) if data_dir else None,
        dataset_options=options,
    )
    with _output(progress) as console:
        path = _run(
            cfg,
            Path(out) if out else None,
            console=console,
            resume=resume,
            report=report,
            track=track,
            tracking_uri=tracking_uri,
            register=register,
        )
    return Run.open(path)


def search(
    dataset: str | Path = "digits",
    model: str | None = None,
    space: str = "svm-default",
    trials: int = 20,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    track: str | None = None,
    tracking_uri: str | None = None,
    **options: Any,
) -> Run:
    """A hyper-parameter search (``glyphlab search``, Optuna); ``options`` are its other settings (``cv``,
    ``sampler``, ``pruner``, ``storage``, ``study``, ``seed``, ``refit``, ``timeout``, ``data_dir``, ...).

    Returns the search folder (trials.csv, best_params.json; with ``refit`` the refit model's run)."""
    with warnings.catch_warnings():  # optuna imports tqdm.auto, which warns in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        from glyphlab.pipeline.search import SearchConfig, run_search  # local: optuna is the `search` extra

    if "data_dir" in options and options["data_dir"] is not None:
        options["data_dir"] = str(options["data_dir"])
    try:
        cfg = SearchConfig(
            dataset=str(dataset), model=model, space=space, trials=trials, out=str(out) if out else None, **options
        )
    except TypeError as exc:
        raise ConfigError(f"gl.search: {exc}") from None
    with _output(progress) as console, warnings.catch_warnings():
        # optuna imports tqdm.auto, which warns in a notebook that has no ipywidgets: not the user's concern
        warnings.filterwarnings("ignore", message="IProgress not found")
        return Run(run_search(cfg, console, track=track, tracking_uri=tracking_uri))


def recipe(
    name_or_path: str | Path,
    quick: bool = False,
    out: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    report: bool = False,
    progress: bool = True,
    track: str | None = None,
    tracking_uri: str | None = None,
) -> Run:
    """A whole seed study (``glyphlab recipe``): its data protocol, models and comparison with the report's
    figures; ``quick`` runs its smoke-test size (``glyphlab recipe --list`` lists the shipped ones)."""
    from glyphlab.recipes import run_recipe  # local: recipes load pydantic models of every shipped TOML

    with _output(progress) as console:
        path = run_recipe(
            name_or_path,
            Path(out) if out else None,
            quick=quick,
            data_dir=str(data_dir) if data_dir else None,
            console=console,
            report=report,
            track=track,
            tracking_uri=tracking_uri,
        )
    return Run.open(path)


# -- many runs ----------------------------------------------------------------------------------------------


class Comparison(_Comparison):
    """Several runs side by side (``glyphlab compare``): ``.table`` is a DataFrame (one row per model, grouped by
    test set and ranked within it), ``.mcnemar`` the paired tests, ``.write(DIR)`` the HTML page."""

    @property
    def table(self) -> pd.DataFrame:
        """One row per model: test set, rank within it, run, model, differing params, scores with intervals."""
        return pd.DataFrame(self.rows())

    @property
    def mcnemar(self) -> pd.DataFrame:
        """One row per pair of models on one test set: the discordant counts and McNemar's p-value."""
        return pd.DataFrame(
            [
                {
                    "test_set": g.test_set,
                    "a": p.a,
                    "b": p.b,
                    "only_a": p.test.only_a,
                    "only_b": p.test.only_b,
                    "p_value": p.test.pvalue,
                    "method": p.test.method,
                }
                for g in self.groups
                for p in g.pairs
            ],
            columns=["test_set", "a", "b", "only_a", "only_b", "p_value", "method"],
        )

    def write(self, out: str | Path) -> Path:
        """compare.html, comparison.csv and accuracy_vs_time.png in ``out``; returns the page's path."""
        from glyphlab.reporting.compare import write_page

        return write_page(self, Path(out))

    def _repr_html_(self) -> str:
        """Jupyter: one table per test set."""
        cols = [
            "rank",
            "run",
            "model",
            "params",
            "accuracy",
            "accuracy_low",
            "accuracy_high",
            "f1_macro",
            "train_seconds",
        ]
        table = self.table
        return "".join(
            f"<p><b>test set {html.escape(g.test_set)}</b> — {html.escape(g.dataset)}, "
            f"{g.n_test:,} images</p>" + table[table["test_set"] == g.test_set][cols].to_html(index=False, border=0)
            for g in self.groups
        )


def compare(*runs: str | Path, seed: int = 0) -> Comparison:
    """Compare run folders, or folders of runs (``glyphlab compare``): accuracy and macro F1 with 95 % intervals,
    grouped by test set, McNemar's test between models on the same test set. Nothing is retrained."""
    found = _compare([Path(r) for r in runs], seed=seed)
    return Comparison(found.groups, found.varying_params)


def runs(folder: str | Path = "runs") -> pd.DataFrame:
    """Every run folder under ``folder``, newest first, with its best model (``glyphlab runs``)."""
    return pd.DataFrame(
        [
            {
                "run": s.path.name,
                "created": s.created,
                "dataset": s.dataset,
                "variants": s.variants,
                "models": s.models,
                "finished": s.finished,
                "best": s.best,
                "best_accuracy": s.best_accuracy,
            }
            for s in _list_runs(Path(folder))
        ],
        columns=["run", "created", "dataset", "variants", "models", "finished", "best", "best_accuracy"],
    )


def read(
    model: str | Path | Predictor,
    images: Any,
    *,
    charset: str | None = None,
    length: int | None = None,
    pattern: str | None = None,
    lines: str = "each",
) -> list:
    """Read handwritten numbers or codes: one :class:`glyphlab.reading.Reading` per picture (its ``text``,
    ``confidence``, and per character the box, label, probability and runner-up), with the same steps as
    ``glyphlab read`` and ``POST /reading``. ``images``: files, folders, bytes, PIL images or arrays."""
    from glyphlab.reading import read as _read

    return _read(model, images, charset=charset, length=length, pattern=pattern, lines=lines)


def predict(
    model: str | Path,
    images: str | Path | Sequence[str | Path],
    *,
    out: str | Path | None = None,
    top_k: int = 3,
    backend: str = "auto",
    max_pixels: int = 50_000_000,
    workers: int = 0,
    cluster: str | None = None,
    resume: bool = False,
    chunk_size: int = 256,
    on_progress: Callable[[Progress], None] | None = None,
) -> Predictions:
    """Classify image files (folders, files, ``.txt`` lists or CSVs of paths), as ``glyphlab predict`` does.

    Without ``out`` the rows come back in ``result.rows`` (``result.frame()`` as a DataFrame); with ``out``
    (``.jsonl``, ``.csv``, ``.parquet``) they are written as they come and the result holds the counts, so any
    number of files fits in memory. ``workers``/``cluster``/``resume``: see :mod:`glyphlab.pipeline.predict`.
    ``on_progress`` is called after each chunk with a :class:`glyphlab.pipeline.batch.engine.Progress`
    (``done``, ``total``, ``rate``, ``eta``)."""
    from glyphlab.pipeline.predict import PredictSettings
    from glyphlab.pipeline.predict import predict as _predict

    sources = [images] if isinstance(images, (str, Path)) else list(images)
    settings = PredictSettings(
        model,
        sources,
        top_k=top_k,
        backend=backend,
        max_pixels=max_pixels,
        out=out,
        resume=resume,
        workers=workers,
        cluster=cluster,
        chunk_size=chunk_size,
    )
    return _predict(settings, on_progress)
