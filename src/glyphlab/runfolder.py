"""The run folder: the one owner of its layout, its readers and writers, and the leaderboard's schema.

A run folder stands on its own: reports, re-evaluations, robustness curves and notebooks read it without
the dataset, the models' training or the process that wrote it. Every file name is written here once::

  RUN/
    config.json          everything needed to repeat the run (``glyphlab run --resume RUN`` reads it)
    dataset.json         split sizes, class names and counts
    test_images.npz      the test images (uint8, 0-255) and labels, so figures need no dataset
    leaderboard.csv      one row per model, columns :data:`LEADERBOARD_COLUMNS`; accuracy_vs_time.png beside it
    report.html          ``glyphlab report RUN`` (report.pdf with ``--pdf``)
    robustness.csv/png   ``glyphlab robustness RUN``
    recipe.json, reference_comparison.csv   a recipe's run
    models/NAME/         one :class:`ModelFolder` per model: model/ (manifest + weights), predictions.npz,
                         metrics.json, features.npz, history.csv (networks), tables and figures

Every write goes through :mod:`glyphlab.fileio`, so a reader never sees half a file. This module sits at
the bottom of the package (it imports only :mod:`glyphlab.fileio` and :mod:`glyphlab.errors`), so the
training engine, the pipeline, the evaluation and the report can all use it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glyphlab.errors import FOREIGN_FILE_ERRORS, ModelFileError, RunFolderError
from glyphlab.fileio import atomic_open, sha256_file, write_csv, write_json
from glyphlab.models.files import CHECKPOINT, HISTORY, MANIFEST  # a model's own files, inside models/NAME

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pandas is imported when a DataFrame is asked for (about a second of start-up otherwise)
    import pandas as pd

# -- the run's files --------------------------------------------------------------------------------------
CONFIG = "config.json"
DATASET = "dataset.json"
TEST_IMAGES = "test_images.npz"
LEADERBOARD = "leaderboard.csv"
ACCURACY_VS_TIME = "accuracy_vs_time.png"
IMAGE_INPUTS = "image_inputs.png"  # a few image files beside what the models were given (image folders)
REPORT = "report.html"
REPORT_PDF = "report.pdf"
ROBUSTNESS_CSV = "robustness.csv"
ROBUSTNESS_PNG = "robustness.png"
RECIPE = "recipe.json"
REFERENCE_COMPARISON = "reference_comparison.csv"
MODELS = "models"

# -- each model's files (RUN/models/NAME/) -----------------------------------------------------------------
MODEL = "model"
METRICS = "metrics.json"
PREDICTIONS = "predictions.npz"
FEATURES = "features.npz"
LEARNING_CURVES = "learning_curves.png"
CLASSIFICATION_REPORT = "classification_report.csv"
CONFUSION_COUNTS = "confusion_counts.csv"
CONFUSION_PNG = "confusion.png"
CONFUSION_NORMALIZED_PNG = "confusion_normalized.png"
MOST_CONFUSED_CSV = "most_confused.csv"
MOST_CONFUSED_PNG = "most_confused.png"
TSNE_CACHE = "tsne.npz"
ATTRIBUTIONS_CACHE = "attributions.npz"  # the report's attribution maps (reporting/explanations.py)
CV = "cv.json"
RELIABILITY_PNG = "reliability.png"  # calibration: accuracy against confidence (evaluation/calibration.py)
AUDIT_DIR = "audit"  # RUN/audit/: the label audit the run was trained after (pipeline/audit.py), for the report
#: written last, after every other file of the model: its results count (reports, --resume) only once it exists
DONE = "done.json"
#: config.json's "layout": 2 since models commit with done.json
LAYOUT = 2
#: what a run that stopped with an error leaves beside its config (removed when it is resumed)
FAILED = "failed.json"


# -- the leaderboard's schema -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One leaderboard column: its key in metrics.json and leaderboard.csv, its label in tables, its digits."""

    key: str
    label: str
    digits: int | None  #: decimals when shown; None for text


#: The leaderboard's columns, in order: leaderboard.csv, the terminal table, the report and the DataFrame.
LEADERBOARD_COLUMNS: tuple[Column, ...] = (
    Column("model", "model", None),
    Column("accuracy", "accuracy", 4),
    Column("f1_macro", "F1 macro", 4),
    Column("f1_weighted", "F1 weighted", 4),
    Column("precision_macro", "precision", 4),
    Column("recall_macro", "recall", 4),
    Column("train_seconds", "train s", 2),
    Column("predict_seconds", "predict s", 3),
    Column("n_test", "test images", 0),
)
LEADERBOARD_KEYS: tuple[str, ...] = tuple(c.key for c in LEADERBOARD_COLUMNS)


def leaderboard_row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """A model's leaderboard row from its metrics (missing values are None)."""
    return {"model": name, **{k: metrics.get(k) for k in LEADERBOARD_KEYS if k != "model"}}


def sort_leaderboard(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best accuracy first; rows without an accuracy last."""
    return sorted(rows, key=lambda r: -(r["accuracy"] if as_number(r.get("accuracy")) is not None else -1.0))


def as_number(v: Any) -> float | None:
    """A finite float from a CSV cell or JSON value, else None (blank cells, 'nan', text)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing or unreadable (an interrupted run is still readable)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file with a header; a missing file has none."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


#: what np.load raises on a file that is not a whole .npz (an empty file: EOFError; cut short: BadZipFile)
NPZ_ERRORS = (*FOREIGN_FILE_ERRORS, OSError, ValueError, KeyError)


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of an ``.npz`` (never unpickling), or None when it is missing or damaged."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except NPZ_ERRORS:
        return None


def _save_npz(path: Path, **arrays: np.ndarray) -> Path:
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


# -- one model --------------------------------------------------------------------------------------------
class ModelFolder:
    """``RUN/models/NAME/``: one model's saved model, predictions, metrics, features and curves."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ModelFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The model's label in the run (``cnn-aug`` for ``--models cnn-aug=cnn-small``)."""
        return self.path.name

    def file(self, name: str) -> Path:
        """The path of one of this model's files (one of this module's per-model names)."""
        return self.path / name

    @property
    def model_path(self) -> Path:
        """The saved model folder (``load_model`` and ``Predictor`` take it)."""
        return self.path / MODEL

    @property
    def has_saved_model(self) -> bool:
        return (self.model_path / MANIFEST).is_file()

    @property
    def finished(self) -> bool:
        """Whether every file of the model was written: done.json, the last one, exists."""
        return self.file(DONE).is_file()

    def commit(self) -> Path:
        """Mark the model finished: done.json lists every file of the folder with its size and SHA-256, and is
        written last and atomically, so a process killed at any point before leaves the model unfinished."""
        files = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path)
            if p.is_file() and p.name != DONE and not any(part.startswith(".") for part in rel.parts):
                files[rel.as_posix()] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        return write_json(self.file(DONE), {"model": self.name, "files": files})

    def discard_unfinished(self) -> None:
        """Before the model is (re)trained: done.json goes first, then every file of an earlier attempt, so none
        of it is taken for this attempt's. The training checkpoint stays: a network resumes from it."""
        self.file(DONE).unlink(missing_ok=True)
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            if p.name in (CHECKPOINT, f".{CHECKPOINT}.old"):  # the loop reads .old when killed between renames
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json ({} when the model has not been evaluated)."""
        return _read_json(self.file(METRICS)) or {}

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        return write_json(self.file(METRICS), metrics)

    def write_predictions(self, y_true: np.ndarray, proba: np.ndarray, index: np.ndarray | None = None) -> Path:
        """predictions.npz: true labels, argmax predictions, probabilities and each row's test-image index."""
        proba = np.asarray(proba, dtype=np.float32)
        return _save_npz(
            self.file(PREDICTIONS),
            y_true=np.asarray(y_true, dtype=np.int64),
            y_pred=proba.argmax(axis=1).astype(np.int64),
            proba=proba,
            index=np.arange(len(y_true)) if index is None else np.asarray(index, dtype=np.int64),
        )

    def read_predictions(self) -> dict[str, np.ndarray]:
        """predictions.npz as arrays (``y_true``, ``y_pred``, ``proba``, ``index``)."""
        pred = read_npz(self.file(PREDICTIONS))
        if pred is None or not {"y_true", "y_pred", "proba"} <= set(pred):
            raise RunFolderError(
                f"no readable {PREDICTIONS} in {self.path}: was this model evaluated? "
                "Run `glyphlab evaluate` on it, or rerun it with `glyphlab run --resume`"
            )
        pred.setdefault("index", np.arange(len(pred["y_true"])))
        return pred

    def write_features(self, features: np.ndarray, index: np.ndarray, labels: np.ndarray) -> Path:
        """features.npz: the model's feature vectors for a sample of test images (the report's t-SNE map)."""
        return _save_npz(
            self.file(FEATURES),
            features=np.asarray(features, np.float32),
            index=np.asarray(index),
            labels=np.asarray(labels),
        )

    def read_features(self) -> dict[str, np.ndarray] | None:
        return read_npz(self.file(FEATURES))

    def read_history(self) -> list[dict[str, float]]:
        """history.csv (networks only) as numbers per epoch; empty for a model that has none."""
        rows = []
        for r in read_csv_rows(self.file(HISTORY)):
            rows.append({k: f for k, f in ((k, as_number(v)) for k, v in r.items()) if f is not None})
        return rows

    def read_table(self, name: str) -> list[dict[str, str]]:
        """One of the model's CSV tables (classification_report.csv, most_confused.csv) as rows."""
        return read_csv_rows(self.file(name))


# -- the run ------------------------------------------------------------------------------------------------
class RunFolder:
    """A glyphlab run folder: its layout, readers and writers.

    ``RunFolder.open(path)`` reads any run folder (nothing is retrained or loaded); ``RunFolder.create(path)``
    starts one. Readers tolerate an interrupted run: a missing file reads as empty.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder; a path that is not one is a :class:`~glyphlab.errors.RunFolderError`."""
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"{path} is not a folder: give the run folder that `glyphlab run --out RUN` wrote")
        run = cls(path)
        if not (
            (path / CONFIG).is_file()
            or (path / LEADERBOARD).is_file()
            or any(m.file(METRICS).is_file() for m in run.model_folders())
        ):
            raise RunFolderError(
                f"{path} is not a glyphlab run folder (no {CONFIG}, {LEADERBOARD} or "
                f"{MODELS}/*/{METRICS}): make one with `glyphlab run --out RUN`"
            )
        return run

    @classmethod
    def create(cls, path: str | Path) -> RunFolder:
        """A run folder to write into (made if missing; files already there are kept, for resuming)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def file(self, name: str) -> Path:
        """The path of one of the run's files (one of this module's run-level names)."""
        return self.path / name

    def read_json(self, name: str) -> dict[str, Any] | None:
        """One of the run's JSON files (recipe.json, ...), or None when it is missing or unreadable."""
        return _read_json(self.file(name))

    # -- config and dataset -----------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """config.json: the run's settings, versions and machine ({} when missing)."""
        return _read_json(self.file(CONFIG)) or {}

    def write_config(self, config: dict[str, Any]) -> Path:
        return write_json(self.file(CONFIG), config)

    @property
    def dataset(self) -> dict[str, Any]:
        """dataset.json: the dataset's name, classes, image shape, split sizes and class counts."""
        return _read_json(self.file(DATASET)) or {}

    def write_dataset(self, summary: dict[str, Any]) -> Path:
        return write_json(self.file(DATASET), summary)

    @property
    def classes(self) -> list[str]:
        """The class names, from dataset.json (or ``0..n-1`` from the saved test labels)."""
        classes = [str(c) for c in self.dataset.get("classes", [])]
        if not classes:
            test = read_npz(self.file(TEST_IMAGES))
            if test is not None and "labels" in test and len(test["labels"]):
                classes = [str(i) for i in range(int(test["labels"].max()) + 1)]
        return classes

    def write_test_images(self, images: np.ndarray, labels: np.ndarray) -> Path:
        """test_images.npz from images in [0, 1]: stored as uint8 (what a figure needs, a quarter the size)."""
        return _save_npz(
            self.file(TEST_IMAGES),
            images=np.round(np.asarray(images) * 255).astype(np.uint8),
            labels=np.asarray(labels),
        )

    def read_test_images(self) -> tuple[np.ndarray, np.ndarray]:
        """The saved test images as float32 in [0, 1] (what models take) and their labels."""
        test = self.read_test_images_raw()
        return test[0].astype(np.float32) / 255.0, test[1]

    def read_test_images_raw(self) -> tuple[np.ndarray, np.ndarray]:
        """The saved test images as stored (uint8, 0-255, channel axis dropped) and their labels (int64)."""
        path = self.file(TEST_IMAGES)
        test = read_npz(path)
        if not path.is_file():
            raise RunFolderError(
                f"{path} is missing (is {self.path} a glyphlab run folder, or was its run killed "
                f"before writing it? `glyphlab run --resume {self.path}` writes it)"
            )
        if test is None or "images" not in test or "labels" not in test:
            raise RunFolderError(
                f"{path} is unreadable ({path.stat().st_size:,} bytes, not a whole .npz of images and "
                f"labels): `glyphlab run --resume {self.path}` writes it again"
            )
        images = test["images"]
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        return images, test["labels"].astype(np.int64)

    # -- models -----------------------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.path / MODELS

    def model(self, name: str) -> ModelFolder:
        """``RUN/models/NAME`` (it need not exist yet)."""
        if not name or "/" in name or name.startswith("."):
            raise RunFolderError(f"bad model label {name!r}: use the model's name in the run's leaderboard")
        return ModelFolder(self.models_dir / name)

    def model_folders(self) -> list[ModelFolder]:
        """Every model folder under ``models/``, by name."""
        if not self.models_dir.is_dir():
            return []
        return [ModelFolder(p) for p in sorted(self.models_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]

    def unfinished_models(self) -> list[str]:
        """Labels of model folders whose results are incomplete (no done.json): --resume redoes them."""
        return [m.name for m in self.model_folders() if not m.finished]

    @property
    def models(self) -> list[str]:
        """The labels of the models that finished (every file written, done.json last), best first when ranked."""
        done = {m.name for m in self.model_folders() if m.finished}
        ranked = [r["model"] for r in self.leaderboard_rows() if r["model"] in done]
        return ranked + sorted(done - set(ranked))

    def require_model(self, name: str) -> ModelFolder:
        """A model of this run that has predictions; an unknown label names the ones there are."""
        folder = self.model(name)
        if not folder.file(PREDICTIONS).is_file():
            there = [m.name for m in self.model_folders() if m.file(PREDICTIONS).is_file()]
            raise RunFolderError(
                f"run {self.path} has no model '{name}' with predictions; it has: " + (", ".join(there) or "none")
            )
        return folder

    # -- leaderboard ------------------------------------------------------------------------------------
    def write_leaderboard(self, rows: list[dict[str, Any]]) -> Path:
        """leaderboard.csv in :data:`LEADERBOARD_COLUMNS` order, best accuracy first."""
        return write_csv(self.file(LEADERBOARD), sort_leaderboard(rows), columns=list(LEADERBOARD_KEYS))

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        """leaderboard.csv as rows of numbers, best first; an interrupted run's from the models that finished."""
        raw: list[dict[str, Any]] = read_csv_rows(self.file(LEADERBOARD))
        if not raw:
            raw = [leaderboard_row(m.name, m.read_metrics()) for m in self.model_folders() if m.finished]
        rows = [
            {c.key: (r.get(c.key) if c.digits is None else as_number(r.get(c.key))) for c in LEADERBOARD_COLUMNS}
            for r in raw
            if r.get("model")
        ]
        return sort_leaderboard(rows)

    @property
    def leaderboard(self) -> pd.DataFrame:
        """The leaderboard as a pandas DataFrame, one row per model, best accuracy first."""
        import pandas as pd  # pandas costs about a second at import; only the DataFrame views need it

        board = pd.DataFrame(self.leaderboard_rows(), columns=list(LEADERBOARD_KEYS))
        for c in LEADERBOARD_COLUMNS:
            if c.digits == 0:  # counts are whole numbers (nullable: a model may lack one)
                board[c.key] = board[c.key].astype("Int64")
        return board

    def _repr_html_(self) -> str:
        """Jupyter: the run's name, dataset and leaderboard as an HTML table."""
        import html

        ds = self.dataset
        head = (
            f"<p><b>glyphlab run</b> <code>{html.escape(str(self.path))}</code>"
            f" — dataset <b>{html.escape(str(ds.get('name', self.config.get('dataset', '?'))))}</b>"
        )
        if ds.get("split_sizes"):
            head += ", " + ", ".join(f"{html.escape(str(k))}={int(v):,}" for k, v in ds["split_sizes"].items())
        head += "</p>"
        board = self.leaderboard
        if board.empty:
            return head + "<p>No model has finished yet.</p>"
        fmt = {c.key: f"{{:,.{c.digits}f}}".format for c in LEADERBOARD_COLUMNS if c.digits}
        return head + board.to_html(index=False, formatters=fmt, na_rep="", border=0)


def saved_models(path: Path) -> dict[str, Path]:
    """The finished models of a run folder (unfinished ones are named, not used), or the one model a path
    points at."""
    path = Path(path)
    run = RunFolder(path)
    if run.models_dir.is_dir():
        found = {m.name: m.model_path for m in run.model_folders() if m.finished and m.has_saved_model}
        unfinished = [m.name for m in run.model_folders() if not m.finished]
        if not found:
            raise ModelFileError(
                f"run folder {path} holds no finished model"
                + (
                    f" ({', '.join(unfinished)} unfinished: `glyphlab run --resume {path}` completes them)"
                    if unfinished
                    else " (were they deleted?)"
                )
            )
        if unfinished:
            log.warning(
                "warning: %s: %s unfinished (no done.json), left out; `glyphlab run --resume %s` completes them",
                path,
                ", ".join(unfinished),
                path,
            )
        return found
    from glyphlab.models.persistence import resolve_model_dir  # local: the model layer's readers load on demand

    model_dir = resolve_model_dir(path)
    name = model_dir.parent.name if model_dir.name == "model" else model_dir.name
    return {name: model_dir}
