"""The public Python API: the functions and classes ``import glyphlab as gl`` gives, for notebooks and scripts.

A thin layer over the same functions the ``glyphlab`` command calls: each step takes the CLI's options as
keyword arguments and returns an object (a :class:`Run`, a DataFrame, a model) instead of printing tables.
``progress=True`` attaches a :class:`glyphlab.console.NotebookProgress` observer to the step's events
(progress lines and bars, which Rich renders in Jupyter too, but never a table); ``progress=False`` attaches
none, and nothing is printed. Errors are glyphlab's (:mod:`glyphlab.errors`), subclasses of
``ValueError`` or ``FileNotFoundError``.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from glyphlab.data.dataset import Dataset
from glyphlab.data.registry import resolve_dataset
from glyphlab.errors import ConfigError
from glyphlab.evaluation.interpretation import Interpretation
from glyphlab.events import Observer, observing
from glyphlab.models.base import GlyphModel
from glyphlab.models.persistence import load_model as _load_model
from glyphlab.models.registry import create_model as _create_model
from glyphlab.pipeline.compare import Comparison as _Comparison
from glyphlab.pipeline.compare import compare as _compare
from glyphlab.pipeline.compare import list_runs as _list_runs
from glyphlab.pipeline.run import RunConfig, split_model_entry
from glyphlab.pipeline.run import run as _run
from glyphlab.runfolder import REPORT_PDF, RunFolder
from glyphlab.serving.predictor import Predictor

if TYPE_CHECKING:
    from glyphlab.pipeline.predict import Predictions

__all__ = [
    "Comparison",
    "Interpretation",
    "Predictor",
    "Run",
    "compare",
    "create_model",
    "evaluate",
    "explain",
    "export",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_model",
    "predict",
    "recipe",
    "robustness",
    "run",
    "runs",
    "search",
]


# -- registries ---------------------------------------------------------------------------------------------
def list_datasets(pattern: str = "*") -> pd.DataFrame:
    """The built-in datasets whose name matches ``pattern`` (``"mnist*"``): name, sizes, description, source."""
    from glyphlab.pipeline.listings import dataset_rows

    return pd.DataFrame([asdict(r) for r in dataset_rows(pattern)], columns=["name", "sizes", "description", "source"])


def list_models(pattern: str = "*") -> pd.DataFrame:
    """The registered models whose name matches ``pattern`` (``"cnn*"``): name, family, description, defaults."""
    from glyphlab.pipeline.listings import model_rows

    rows = [asdict(r) for r in model_rows(pattern)]
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
        from glyphlab.pipeline.report import report  # local: jinja2 and the report's figures load on demand

        return ReportFile(report(self.path, pdf=pdf).html)

    @property
    def report_pdf(self) -> Path:
        return self.file(REPORT_PDF)


def _observers(progress: bool) -> list[Observer]:
    """What a step shows in a notebook: its progress (no tables: results are DataFrames), or nothing."""
    if not progress:
        return []
    from glyphlab.console import NotebookProgress  # local: Rich's live displays load only when shown

    return [NotebookProgress()]


#: gl.run's settings when not given (None marks "not given", so that a resume can tell what was)
RUN_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "models": ("logreg", "svm", "random-forest"),
    "params": {},
    "seed": 0,
    "val_fraction": 0.1,
    "variants": "",
    "dataset_options": {},
}


def run(
    dataset: str | Path | None = None,
    models: Sequence[str] | None = None,
    out: str | Path | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    seed: int | None = None,
    val_fraction: float | None = None,
    variants: str | None = None,
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

    Defaults: ``"digits"``, logreg, svm and random-forest, seed 0, a tenth of train for validation.
    ``params`` maps a model label to its parameters (``{"svm": {"C": 10}}``); ``LABEL=NAME`` in ``models``
    runs a registry model under another label. ``resume=True`` continues the run in ``out`` with the settings
    of its config.json (finished models kept), and refuses a setting given beside it, as ``--resume`` does;
    an ``out`` that does not exist yet is started. ``track="mlflow"`` / ``"tensorboard"`` (and ``tracking_uri``)
    also log the run there (``--track``); ``register="NAME"`` registers the best model in MLflow's model
    registry, alias ``champion`` (``--register``).
    """
    given = {
        "dataset": dataset,
        "models": models,
        "params": params,
        "seed": seed,
        "val_fraction": val_fraction,
        "variants": variants,
        "limit": limit,
        "dataset_options": dataset_options,
    }
    tracking = {"track": track, "tracking_uri": tracking_uri, "register": register}
    data = str(data_dir) if data_dir else None
    if resume and out is not None and Path(out).exists():
        from glyphlab.pipeline.resume import resume_config

        named = [f"{k}=" for k, v in given.items() if v is not None]
        cfg = resume_config(Path(out), named, data, how="resume=True", new_run="another out=")
    else:
        settings = {k: RUN_DEFAULTS[k] if given[k] is None else given[k] for k in RUN_DEFAULTS}
        options = dict(settings["dataset_options"])
        if limit is not None:
            options["limit"] = limit
        cfg = RunConfig(
            dataset=str(settings["dataset"]),
            models=list(settings["models"]),
            # every label keyed, as the CLI's --param parsing keys them: one config for one run, whichever door
            params={**{split_model_entry(m)[0]: {} for m in settings["models"]}, **settings["params"]},
            seed=settings["seed"],
            val_fraction=settings["val_fraction"],
            variants=settings["variants"],
            data_dir=data,
            dataset_options=options,
        )
    path = _run(
        cfg, Path(out) if out else None, resume=resume, report=report, **tracking, observers=_observers(progress)
    )
    return Run.open(path)


def evaluate(
    model_or_run: str | Path,
    dataset: str | Path | None = None,
    out: str | Path | None = None,
    *,
    variants: str | None = None,
    seed: int | None = None,
    data_dir: str | Path | None = None,
    dataset_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> Run:
    """Score saved models again, without retraining (``glyphlab evaluate``): a run folder (every finished model),
    a run's ``models/NAME`` or a saved model folder, on the run's own test split or on ``dataset`` (a dataset
    without a test split, e.g. a folder of new images, is scored whole). Returns the evaluation folder
    (leaderboard, predictions, figures; default beside the model, ``evaluate-DATASET``)."""
    from glyphlab.pipeline.evaluate import evaluate_saved

    path = evaluate_saved(
        Path(model_or_run),
        str(dataset) if dataset is not None else None,
        Path(out) if out else None,
        variants,
        seed,
        Path(data_dir) if data_dir else None,
        dataset_options=dict(dataset_options or {}),
        observers=_observers(progress),
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
    with warnings.catch_warnings():
        # optuna imports tqdm.auto, which warns in a notebook that has no ipywidgets: not the user's concern
        warnings.filterwarnings("ignore", message="IProgress not found")
        return Run(run_search(cfg, track=track, tracking_uri=tracking_uri, observers=_observers(progress)))


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

    path = run_recipe(
        name_or_path,
        Path(out) if out else None,
        quick=quick,
        data_dir=str(data_dir) if data_dir else None,
        report=report,
        track=track,
        tracking_uri=tracking_uri,
        observers=_observers(progress),
    )
    return Run.open(path)


def robustness(
    run: str | Path,
    angles: str | Sequence[float] = "0:360:15",
    *,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    models: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> Any:
    """Accuracy of a run's saved models with the test images rotated by each angle (``glyphlab robustness``):
    ``.accuracy`` (models x angles), ``.models``, ``.angles``, ``.spread(model)``; writes robustness.csv/.png."""
    from glyphlab.pipeline.robustness import RobustnessSettings
    from glyphlab.pipeline.robustness import robustness as _robustness

    return _robustness(RobustnessSettings(Path(run), angles, dataset, data_dir, models, limit, seed))


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
        from glyphlab.pipeline.compare import write_page

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
    verify: bool = True,
) -> list:
    """Read handwritten numbers or codes: one :class:`glyphlab.reading.Reading` per picture (its ``text``,
    ``confidence``, and per character the box, label, probability and runner-up), with the same steps as
    ``glyphlab read`` and ``POST /reading``. ``images``: files, folders, bytes, PIL images or arrays;
    ``verify=False`` leaves out the learned "one whole character?" score (the CLI and the server use it)."""
    from glyphlab.reading import read as _read

    return _read(model, images, charset=charset, length=length, pattern=pattern, lines=lines, verify=verify)


# -- one model ------------------------------------------------------------------------------------------------
def explain(
    model_or_path: GlyphModel | str | Path,
    images: Any,
    method: str = "auto",
    *,
    steps: int = 32,
    seed: int = 0,
) -> Any:
    """Why the model chose its class and not the runner-up (``glyphlab explain``): a :class:`gl.Explanation`
    (the arrays, ``.plot()``, ``.to_png()``). ``images``: image files or folders, read exactly as
    ``glyphlab predict`` reads them (the model's recorded image config; a blank page is refused), or an
    (N, H, W) array of model inputs in [0, 1], ink = 1."""
    from glyphlab.pipeline.explain import explain_images

    return explain_images(model_or_path, images, method, steps=steps, seed=seed)


def export(
    model: str | Path,
    onnx: str | Path | None = None,
    *,
    quantize: str | None = None,
    calibration: str | None = None,
    data_dir: str | Path | None = None,
) -> Any:
    """Export a saved model to ONNX (``glyphlab export``), checked against the model; ``quantize="int8"``
    calibrates on the model's run (or the dataset ``calibration``). Returns the written file and its checks."""
    from glyphlab.pipeline.export import ExportSettings
    from glyphlab.pipeline.export import export as _export

    return _export(
        ExportSettings(
            Path(model),
            Path(onnx) if onnx else None,
            quantize,
            calibration,
            str(data_dir) if data_dir else None,
        )
    )


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
    progress: bool = False,
) -> Predictions:
    """Classify image files (folders, files, ``.txt`` lists or CSVs of paths), as ``glyphlab predict`` does.

    Without ``out`` the rows come back in ``result.rows`` (``result.frame()`` as a DataFrame); with ``out``
    (``.jsonl``, ``.csv``, ``.parquet``) they are written as they come and the result holds the counts, so any
    number of files fits in memory. ``workers``/``cluster``/``resume``: see :mod:`glyphlab.pipeline.predict`.
    ``progress=True`` draws a bar (files, rate, ETA) from the job's events, as every step's progress."""
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
    with observing(*_observers(progress)):
        return _predict(settings)
