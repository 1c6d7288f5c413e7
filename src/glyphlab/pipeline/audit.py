"""Label audit: ``glyphlab audit DATASET`` finds images whose given label is probably wrong.

Confident learning (Northcutt et al., cleanlab): every image gets *out-of-fold* predicted probabilities (a
model that never saw it, K-fold, folds fitted in parallel like :func:`glyphlab.pipeline.search.cv_score`),
then cleanlab's ``find_label_issues`` estimates, per class pair, how many labels were flipped and flags
that many of the images whose given label the model finds least likely. Each image also gets cleanlab's
label-quality score (the out-of-fold probability of its given label, "self-confidence"), which ranks the
suspects: the lowest scores are the first to look at.

AUDIT/
  label_issues.csv   the images cleanlab flags: split, index, given_label, suggested_label, score (lowest first)
  label_issues.png   the top suspects, each titled with its given and suggested label
  audit.json         the settings, sizes, out-of-fold accuracy, issues found and seconds taken
  oof_proba.npz      the out-of-fold probabilities (split, index, labels, proba), for other tools

``glyphlab run --exclude AUDIT/label_issues.csv`` trains on the images the audit did not flag (only
training images are dropped, so test scores stay comparable with other runs). The CSV is plain text: edit it
(delete rows you judge correct, keep the rest) and the run drops exactly the rows that remain.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.data.dataset import Dataset
from glyphlab.data.spec import DataSpec
from glyphlab.errors import ConfigError, DataError
from glyphlab.evaluation.label_issues import plot_label_issues
from glyphlab.events import AuditFinished, Observer, TaskAdvanced, TaskEnded, TaskStarted, emit, observing
from glyphlab.models.base import GlyphModel
from glyphlab.models.registry import create_model
from glyphlab.pipeline.folds import FoldJob, over_folds
from glyphlab.pipeline.search import model_params

ISSUES_CSV = "label_issues.csv"
ISSUES_PNG = "label_issues.png"
SUMMARY = "audit.json"
OOF = "oof_proba.npz"
ISSUE_COLUMNS = ("split", "index", "given_label", "suggested_label", "score")
#: the fast default: a small dense network, a few epochs per fold (bench/audit.py on MNIST with 1 % flipped:
#: recall 0.935 among the top 1 % at 2 epochs, 0.96 at 3 epochs for about 1.5x the time)
DEFAULT_MODEL = "mlp"
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [256], "epochs": 2, "batch_size": 256, "lr": 3e-3, "dropout": 0.1, "patience": 0},
}
DEFAULT_FOLDS = 3
MIN_IMAGES_SEEN = 80_000
MAX_EPOCHS = 60
GRID_SIZE = 32


@dataclass
class AuditConfig(DataSpec):
    """The data (:class:`DataSpec`) and how to audit it."""

    model: str = DEFAULT_MODEL
    params: dict[str, Any] = field(default_factory=dict)
    folds: int = DEFAULT_FOLDS
    #: the labeled splits to audit (default: all of them, as one pool)
    splits: list[str] | None = None


@dataclass
class AuditResult:
    out: Path
    issues: list[dict[str, Any]]
    n_audited: int
    oof_accuracy: float
    seconds: float
    order: np.ndarray  # pool positions, most suspect first
    keys: list[tuple[str, int]]  # pool position -> (split, index in split)


# -- out-of-fold probabilities --------------------------------------------------------------------------------
def _proba(model: GlyphModel, images: np.ndarray, labels: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, ...]:
    return held, np.asarray(model.predict_proba(images), dtype=np.float32)


def out_of_fold_proba(job: FoldJob, on_fold: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, n_classes) probabilities, each row from the one of ``job.k`` stratified fold models that did not train
    on that image. Folds run in parallel processes (:func:`~glyphlab.pipeline.folds.over_folds`); the result
    does not depend on how many."""
    if job.classes is None:
        raise ConfigError("out-of-fold probabilities need the dataset's classes (their columns)")
    proba = np.zeros((len(job.labels), len(job.classes)), dtype=np.float32)
    for i, (held, p) in enumerate(over_folds(job, _proba)):
        proba[held] = p
        if on_fold is not None:
            on_fold(i)
    return proba


# -- confident learning ---------------------------------------------------------------------------------------
def rank_label_issues(labels: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cleanlab on out-of-fold probabilities: (flagged mask, label-quality score, order most-suspect first).

    ``find_label_issues`` decides *which* and *how many* images are issues (confident joint, pruned by the
    estimated noise rate); the self-confidence score orders every image, flagged or not.
    """
    from cleanlab.filter import find_label_issues  # the `audit` extra: imported only when auditing
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True).clip(1e-12)
    present = np.unique(labels)
    if len(present) < 2:
        raise DataError("a label audit needs at least two classes with images")
    flagged = np.asarray(find_label_issues(labels, proba, filter_by="prune_by_noise_rate", n_jobs=1), dtype=bool)
    score = np.asarray(get_label_quality_scores(labels, proba, method="self_confidence"), dtype=np.float64)
    order = np.argsort(score, kind="stable")
    return flagged, score, order


def _pool(ds: Dataset, splits: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """The labeled splits as one pool of (images, labels), with each image's (split, index) key."""
    names = splits or [k for k, s in ds.splits.items() if s.labels is not None]
    if not names:
        raise DataError(f"dataset '{ds.name}' has no labeled split to audit")
    images, labels, keys = [], [], []
    for name in names:
        s = ds[name]
        if s.labels is None:
            raise DataError(f"split '{name}' of '{ds.name}' is unlabeled: there is no label to audit")
        images.append(s.images)
        labels.append(s.labels)
        keys += [(name, i) for i in range(len(s))]
    return np.concatenate(images), np.concatenate(labels), keys


def audit_params(cfg: AuditConfig, n_images: int | None = None) -> dict[str, Any]:
    """The fold models' parameters: the fast defaults of the default model, then the user's, seed and no progress.

    The default network sees at least :data:`MIN_IMAGES_SEEN` training images per fold (2 epochs on MNIST's
    47,000 per fold, more on a small dataset, where 3 epochs would leave it under-trained and every hard
    image would look mislabelled), unless ``epochs`` is given.
    """
    base = dict(DEFAULT_PARAMS.get(cfg.model, {}))
    if base and n_images and "epochs" not in cfg.params:
        per_fold = n_images * (cfg.folds - 1) / cfg.folds
        base["epochs"] = int(min(MAX_EPOCHS, max(base["epochs"], math.ceil(MIN_IMAGES_SEEN / max(1.0, per_fold)))))
    return model_params(cfg.model, {**base, **cfg.params}, {}, cfg.seed)


def audit_dataset(ds: Dataset, cfg: AuditConfig, out: Path, n_jobs: int | None = None) -> AuditResult:
    """Out-of-fold probabilities for every labeled image of ``ds``, cleanlab's issues, and the audit folder."""
    if cfg.folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {cfg.folds}")
    create_model(cfg.model, **audit_params(cfg))  # an unknown model or parameter fails before any fit
    images, labels, keys = _pool(ds, cfg.splits)
    params = audit_params(cfg, len(labels))
    counts = np.bincount(labels, minlength=len(ds.classes))
    if counts[counts > 0].min() < cfg.folds:
        small = [ds.classes[i] for i in np.flatnonzero((counts > 0) & (counts < cfg.folds))]
        raise DataError(
            f"class(es) {', '.join(small[:5])} have fewer images than --folds {cfg.folds}: lower --folds or add images"
        )
    t0 = time.perf_counter()
    task = f"audit {cfg.model}"
    emit(
        TaskStarted(task, f"audit: {cfg.folds}-fold out-of-fold probabilities of {cfg.model} on {len(labels):,} images")
    )
    try:
        on_fold = lambda i: emit(TaskAdvanced(task, i + 1, f"audit: fold {i + 1}/{cfg.folds} done"))  # noqa: E731
        proba = out_of_fold_proba(
            FoldJob(cfg.model, params, images, labels, cfg.folds, cfg.seed, list(ds.classes), n_jobs),
            on_fold=on_fold,
        )
    finally:
        emit(TaskEnded(task))
    fit_seconds = time.perf_counter() - t0
    flagged, score, order = rank_label_issues(labels, proba)
    seconds = time.perf_counter() - t0
    suggested = proba.argmax(axis=1)
    issues = [
        {
            "split": keys[i][0],
            "index": keys[i][1],
            "given_label": ds.classes[labels[i]],
            "suggested_label": ds.classes[suggested[i]],
            "score": round(float(score[i]), 6),
        }
        for i in order
        if flagged[i]
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_issues(out / ISSUES_CSV, issues)
    np.savez_compressed(
        out / OOF,
        split=np.array([k[0] for k in keys]),
        index=np.array([k[1] for k in keys]),
        labels=labels,
        proba=proba,
    )
    oof_acc = float((suggested == labels).mean())
    _plot_suspects(ds, images, labels, suggested, score, [int(i) for i in order if flagged[i]][:GRID_SIZE], keys, out)
    summary = {
        "config": asdict(cfg),
        "params": params,
        "dataset": ds.name,
        "classes": list(ds.classes),
        "splits": sorted({k[0] for k in keys}),
        "n_audited": len(labels),
        "n_issues": len(issues),
        "issue_rate": len(issues) / len(labels),
        "oof_accuracy": oof_acc,
        "fit_seconds": round(fit_seconds, 2),
        "seconds": round(seconds, 2),
        "write_seconds": round(time.perf_counter() - t0 - seconds, 2),
        "issues_by_split": {s: sum(1 for r in issues if r["split"] == s) for s in sorted({k[0] for k in keys})},
        "method": "cleanlab.filter.find_label_issues(filter_by='prune_by_noise_rate'), "
        "ranked by cleanlab.rank.get_label_quality_scores(method='self_confidence')",
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    emit(AuditFinished(len(issues), len(labels), oof_acc, seconds, out / ISSUES_CSV))
    return AuditResult(
        out=out, issues=issues, n_audited=len(labels), oof_accuracy=oof_acc, seconds=seconds, order=order, keys=keys
    )


def _plot_suspects(ds: Dataset, images, labels, suggested, score, top: list[int], keys, out: Path) -> None:
    """The picture of the ``top`` suspects: each image with its given and suggested label and its score."""
    plot_label_issues(
        images[top],
        [ds.classes[labels[i]] for i in top],
        [ds.classes[suggested[i]] for i in top],
        score[top],
        [f"{keys[i][0]}[{keys[i][1]}]" for i in top],
        out / ISSUES_PNG,
        f"{ds.name}: top label-issue suspects (given → suggested, quality score)",
    )


def run_audit(cfg: AuditConfig, out: Path | None = None, observers: Sequence[Observer] = ()) -> AuditResult:
    """Audit the labels of ``cfg``'s dataset into ``out``; ``observers`` get its progress and summary."""
    out = Path(out) if out else Path("runs") / f"audit-{Path(cfg.dataset).name}"
    with observing(*observers):
        return audit_dataset(cfg.load(), cfg, out)


# -- the CSV and --exclude ------------------------------------------------------------------------------------
def write_issues(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ISSUE_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_issues(path: str | Path) -> list[tuple[str, int]]:
    """The (split, index) rows of a label_issues.csv; a malformed file is one clear error."""
    path = Path(path)
    if path.is_dir():
        path = path / ISSUES_CSV
    if not path.is_file():
        raise DataError(f"--exclude: no such file {path}; pass the label_issues.csv that `glyphlab audit` wrote")
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"split", "index"} <= set(reader.fieldnames):
                raise DataError(
                    f"--exclude: {path} has no 'split' and 'index' columns: is it a label_issues.csv "
                    "written by `glyphlab audit`?"
                )
            rows = []
            for n, r in enumerate(reader, start=2):
                try:
                    rows.append((str(r["split"]), int(r["index"])))
                except (TypeError, ValueError):
                    raise DataError(f"--exclude: {path} line {n}: index {r.get('index')!r} is not an integer") from None
    except UnicodeDecodeError:
        raise DataError(f"--exclude: {path} is not a text CSV file") from None
    return rows


def audit_summary_for(issues_csv: str | Path) -> dict[str, Any] | None:
    p = Path(issues_csv)
    folder = p if p.is_dir() else p.parent
    try:
        return json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError):
        return None


def exclude_issues(ds: Dataset, issues_csv: str | Path, splits: tuple[str, ...] = ("train",)) -> tuple[Dataset, int]:
    """``ds`` without the rows of ``issues_csv`` that belong to ``splits`` (the training images by default).

    Refuses a CSV made for another dataset (its audit.json names the dataset and the class names) or one
    whose indices do not exist, since dropping the wrong images would be silently wrong.
    """
    rows = read_issues(issues_csv)
    summary = audit_summary_for(issues_csv)
    if summary is not None:
        if list(summary.get("classes") or ds.classes) != list(ds.classes):
            raise DataError(
                f"--exclude: {issues_csv} was written for classes {summary.get('classes')}, "
                f"but '{ds.name}' has {list(ds.classes)}; audit this dataset first"
            )
        if summary.get("dataset") not in (None, ds.name):
            source = (summary.get("config") or {}).get("dataset")
            raise DataError(
                f"--exclude: {issues_csv} audited dataset '{summary.get('dataset')}' "
                f"(from {source!r}), not '{ds.name}'; audit this dataset first"
            )
    splits_out = dict(ds.splits)
    dropped = 0
    for name in splits:
        if name not in ds.splits:
            continue
        idx = np.array(sorted({i for s, i in rows if s == name}), dtype=np.int64)
        if not len(idx):
            continue
        n = len(ds[name])
        if idx.min() < 0 or idx.max() >= n:
            raise DataError(
                f"--exclude: {issues_csv} names {name}[{int(idx.max())}] but split '{name}' of "
                f"'{ds.name}' has {n:,} images: it was written for another dataset or variant"
            )
        keep = np.setdiff1d(np.arange(n), idx)
        splits_out[name] = ds[name].take(keep)
        dropped += len(idx)
    if dropped == 0 and rows:
        raise DataError(
            f"--exclude: none of the {len(rows)} rows of {issues_csv} is a {'/'.join(splits)} image of '{ds.name}'"
        )
    return ds.with_splits(splits_out, excluded_label_issues=dropped, excluded_from=str(issues_csv)), dropped


def copy_audit(issues_csv: str | Path, dest: Path) -> Path:
    """Copy the audit's CSV, figure and summary beside a run (``RUN/audit``), so the run's report can show them."""
    src = Path(issues_csv)
    csv_path = src / ISSUES_CSV if src.is_dir() else src
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(csv_path, dest / ISSUES_CSV)
    for name in (ISSUES_PNG, SUMMARY):
        if (csv_path.parent / name).is_file():
            shutil.copyfile(csv_path.parent / name, dest / name)
    return dest


__all__ = [
    "AuditConfig",
    "AuditResult",
    "DEFAULT_MODEL",
    "audit_dataset",
    "exclude_issues",
    "out_of_fold_proba",
    "rank_label_issues",
    "read_issues",
    "run_audit",
    "copy_audit",
]
