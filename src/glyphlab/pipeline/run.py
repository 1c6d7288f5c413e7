"""A run: train several models on one dataset and leave a folder that stands on its own.

The folder's layout, readers and writers are :class:`glyphlab.runfolder.RunFolder`'s; this module decides
what goes in it (config, dataset summary, test images, and per model: weights, predictions, features, metrics).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.data.dataset import Dataset
from glyphlab.data.images import Preprocessing
from glyphlab.data.spec import DataSpec
from glyphlab.data.splits import ensure_validation, split_off
from glyphlab.errors import ConfigError
from glyphlab.evaluation.evaluate import evaluate_predictions
from glyphlab.evaluation.plots import plot_accuracy_vs_time
from glyphlab.events import (
    Leaderboard,
    ModelFinished,
    ModelKept,
    ModelResumed,
    ModelStarted,
    ModelTrained,
    Observer,
    RunFailed,
    RunFinished,
    RunStarted,
    Tracked,
    Wrote,
    emit,
    observing,
)
from glyphlab.fileio import write_json
from glyphlab.models.base import training_arrays
from glyphlab.models.persistence import library_versions
from glyphlab.models.registry import create_model, with_seed
from glyphlab.models.torch.world import local_only, world
from glyphlab.pipeline.audit import copy_audit, exclude_issues
from glyphlab.pipeline.model_card import write_run_model_card
from glyphlab.runfolder import (
    ACCURACY_VS_TIME,
    AUDIT_DIR,
    CHECKPOINT,
    FAILED,
    IMAGE_INPUTS,
    LAYOUT,
    LEADERBOARD,
    ModelFolder,
    RunFolder,
    leaderboard_row,
)
from glyphlab.tracking import Tracker, TrackerObserver, open_tracker, read_tracking, resolve_backend

FEATURE_SAMPLE = 2000
HELD_OUT_TEST_FRACTION = 0.2


@dataclass
class RunConfig(DataSpec):
    """The data (:class:`DataSpec`: dataset, data_dir, dataset_options, variants, seed) and what to train on it."""

    models: list[str] = field(default_factory=lambda: ["logreg", "svm", "random-forest"])
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    val_fraction: float = 0.1
    #: a label_issues.csv from ``glyphlab audit``: its training images are left out (see pipeline/audit.py)
    exclude: str = ""


def load_run_dataset(cfg: RunConfig) -> Dataset:
    ds = cfg.load()
    if cfg.exclude:  # before any split is carved: the audit's indices are those of the dataset as loaded
        ds, _ = exclude_issues(ds, cfg.exclude)
    check_classes(ds)
    if "test" not in ds.splits:  # a user's folder or file: hold out a fixed, stratified test split
        ds = split_off(ds, "train", "test", HELD_OUT_TEST_FRACTION, seed=0)
    if ds["test"].labels is None:
        raise ConfigError(f"dataset '{ds.name}' has an unlabeled test split: nothing to evaluate against")
    return ensure_validation(ds, cfg.val_fraction, cfg.seed)


def check_classes(ds: Dataset, split: str = "train") -> None:
    """A classifier needs images of at least two classes to learn from: refuse fewer before any training (one
    class made scikit-learn's models fail with a traceback and the networks report accuracy 1.0)."""
    labels = ds[split].labels
    present = np.unique(labels) if labels is not None else np.array([], dtype=int)
    if len(present) < 2:
        names = ", ".join(repr(ds.classes[int(i)]) for i in present[:1]) or "none"
        raise ConfigError(
            f"dataset '{ds.name}' has images of {len(present)} class ({names}) in its {split} split; "
            "a classifier needs at least 2: give it one sub-folder of images per class"
        )


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # torch missing is fine for classical runs
        info["device"] = "cpu"
    return info


def default_run_dir(cfg: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(cfg.dataset).name if os.sep in cfg.dataset else cfg.dataset
    return Path("runs") / f"{stamp}-{name}"


def run(
    cfg: RunConfig,
    out: Path | None = None,
    resume: bool = False,
    report: bool = True,
    track: str | None = None,
    tracking_uri: str | None = None,
    register: str | None = None,
    observers: Sequence[Observer] = (),
) -> Path:
    """Train, evaluate and save every model of ``cfg``; models already finished in ``out`` are kept when resuming.

    ``track="mlflow"`` or ``"tensorboard"`` also sends each model's params, metrics and files there (see
    :mod:`glyphlab.tracking`); a resumed run that was tracked goes on with the same backend and MLflow run.
    ``register="NAME"`` (MLflow) registers the best model as a new version of NAME, alias ``champion``.
    ``observers`` receive the run's events (:mod:`glyphlab.events`); the engine itself prints nothing.
    Started by torchrun, rank 0 does all of this and the other ranks only help it train the networks
    (:func:`help_train`).
    """
    if not world().is_main:
        return help_train(cfg)
    out = Path(out) if out else default_run_dir(cfg)
    if not cfg.models:
        raise ConfigError("no models to run (--models is empty): name at least one, see `glyphlab models`")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: choose another --out for the run folder")
    for entry in cfg.models:  # fail on a typo before any data is loaded or model trained
        label, name = split_model_entry(entry)
        create_model(name, **cfg.params.get(label, {}))
    resolve_backend(track, tracking_uri, register)  # and on a --track/--register that cannot go together
    with observing(*observers):
        ds = load_run_dataset(cfg)
        created = not out.exists()
        folder = _start_folder(cfg, ds, out)
        emit(
            RunStarted(
                out,
                ds.name,
                ds.image_shape,
                ds.num_classes,
                {k: len(v) for k, v in ds.splits.items()},
                dataset_reading(ds),
            )
        )
        tracker = _tracker(cfg, out, resume, track, tracking_uri, register)
        with observing(TrackerObserver(tracker) if tracker else None):
            try:
                _train_models(cfg, ds, folder, resume, report)
            except BaseException as exc:
                emit(RunFinished(out, failed=True))
                if isinstance(exc, Exception):  # an error, not an interruption (Ctrl-C leaves the run to --resume)
                    _mark_failed(folder, created, exc)
                raise
            emit(RunFinished(out))
        if tracker:
            emit(Tracked(tracker.backend, tracker.uri, getattr(tracker, "registered", None)))
    return out


def _start_folder(cfg: RunConfig, ds: Dataset, out: Path) -> RunFolder:
    """The run folder with what is known before any model trains: config, dataset summary, test images."""
    folder = RunFolder.create(out)
    for stale in (*folder.path.glob(".*.part"), folder.file(FAILED), folder.file(LEADERBOARD)):
        stale.unlink(missing_ok=True)  # a killed writer's temp files; the leaderboard is written again at the end
    folder.write_config(
        {**asdict(cfg), "layout": LAYOUT, "created": _now(), "versions": library_versions(), "machine": machine_info()}
    )
    folder.write_dataset(ds.summary())
    if cfg.exclude:  # the report's label-audit section reads RUN/audit/
        copy_audit(cfg.exclude, folder.file(AUDIT_DIR))
    test = ds["test"]
    folder.write_test_images(test.images, test.labels)
    write_image_inputs(ds, folder.file(IMAGE_INPUTS))
    return folder


def _train_models(cfg: RunConfig, ds: Dataset, folder: RunFolder, resume: bool, report: bool) -> None:
    """Every model of the run in turn (a finished one kept when resuming), then the leaderboard and report."""
    rows = []
    if world().size > 1:  # the other ranks wait for this: where the run is and which models are trained
        from glyphlab.models.torch.ddp import share_plan

        labels = [split_model_entry(entry)[0] for entry in cfg.models]
        share_plan(str(folder.path), [not (resume and folder.model(label).finished) for label in labels])
    for entry in cfg.models:
        name, _ = split_model_entry(entry)
        model = folder.model(name)
        if resume and model.finished:
            emit(ModelKept(name))
            rows.append(leaderboard_row(name, model.read_metrics()))
            continue
        model.discard_unfinished()
        metrics = train_and_evaluate(entry, cfg, ds, model.path)
        model.commit()  # last: only now do its results count as finished
        rows.append(leaderboard_row(name, metrics))
        emit(ModelFinished(name, model.path, metrics))
    write_leaderboard(folder.path, rows)
    emit(Leaderboard(f"leaderboard — {ds.name} test set ({len(ds['test']):,} images)", rows))
    if report:
        build_report_if_available(folder.path)


def write_image_inputs(ds: Dataset, path: Path, n: int = 16) -> None:
    """For a dataset read from image files, a sheet of a few of them beside the inputs the models get (the
    first file of each class in turn), so the report shows whether the image path found the glyphs."""
    raw = ds.meta.get("preprocessing")
    if not raw or raw.get("trained_on") != "image files" or not ds.source or not Path(ds.source).is_dir():
        return
    from glyphlab.data.formats import folder_limits, image_folder_files
    from glyphlab.data.images import ImageConfig, ImageInputError, prepare_file
    from glyphlab.reporting.inputs import inputs_sheet, original_thumbnail

    config = ImageConfig.from_dict(raw["image_config"])
    by_class: dict[int, list[Path]] = {}
    for f, label in image_folder_files(Path(ds.source))[1]:
        by_class.setdefault(label, []).append(f)
    picked = [files[i] for i in range(n) for files in by_class.values() if i < len(files)][:n]
    originals, inputs, captions = [], [], []
    for f in picked:
        try:
            inputs.append(prepare_file(f, config, folder_limits()).pixels)
            originals.append(original_thumbnail(f))
            captions.append(f"{f.parent.name}/{f.name}")
        except (ImageInputError, OSError):
            continue
    if inputs:
        path.write_bytes(inputs_sheet(originals, np.stack(inputs), captions))


def _mark_failed(folder: RunFolder, created: bool, exc: Exception) -> None:
    """A failed run leaves no half-made folder: the folder it created goes when no model finished in it;
    otherwise failed.json says what failed, and the finished models stay for ``glyphlab run --resume``.
    Under torchrun the folder always stays: a rank that dies (killed, its machine lost) makes rank 0's next
    collective fail, and the checkpoint of the network in training is what ``--resume`` goes on from."""
    finished = [m.name for m in folder.model_folders() if m.finished]
    if created and not finished and world().size == 1:
        shutil.rmtree(folder.path, ignore_errors=True)
        emit(RunFailed(folder.path, removed=True))
        return
    write_json(
        folder.file(FAILED),
        {"failed": _now(), "error": f"{type(exc).__name__}: {exc}"[:2000], "finished_models": finished},
    )
    emit(RunFailed(folder.path, removed=False, finished=len(finished)))


def dataset_reading(ds: Dataset) -> str:
    """How the dataset's pixels were read: the tables' pixel range and the image preprocessing, in one line."""
    parts = []
    ranges = ds.meta.get("pixel_range") or {}
    texts = sorted({r.get("text", "") for r in ranges.values() if isinstance(r, dict)})
    if texts:
        parts.append("; ".join(texts))
    pre = Preprocessing.of_dataset(ds.meta, ds.image_shape)
    if pre.trained_on == "image files":
        blank = len((ds.meta.get("image_folder") or {}).get("blank_files") or [])
        parts.append("images: " + pre.config.describe() + (f"; {blank} blank image(s), no ink" if blank else ""))
    else:
        parts.append("arrays as given; uploads to the models will be " + pre.config.describe())
    return " · ".join(parts)


def _tracker(
    cfg: RunConfig,
    out: Path,
    resume: bool,
    track: str | None,
    uri: str | None,
    register: str | None = None,
) -> Tracker | None:
    """The run's tracker; a resumed run that was tracked before is tracked again by the same backend."""
    if resume and track is None and uri is None:
        previous = read_tracking(out)
        track, uri = previous.get("backend"), previous.get("uri")
    tracker = open_tracker(
        track,
        out,
        name=out.name,
        params=asdict(cfg),
        uri=uri,
        tags={"glyphlab.dataset": cfg.dataset},
        register=register,
    )
    return tracker


def split_model_entry(entry: str) -> tuple[str, str]:
    """``"cnn-aug=cnn-small"`` is the registry model ``cnn-small`` under the label ``cnn-aug`` (so one run can
    hold the same model with different parameters); a plain name is its own label."""
    label, _, model = entry.partition("=")
    label, model = label.strip(), (model.strip() or label.strip())
    if not label or "/" in label or label.startswith("."):
        raise ConfigError(f"bad model entry '{entry}': use NAME or LABEL=NAME, with no '/' in the label")
    return label, model


def seconds_before_resume(model: Any) -> float:
    """The training seconds a resumed network spent in the process that was interrupted: the recorded time of
    each epoch up to the checkpoint it resumed from (0 for a fresh fit). Without them a resumed run's ``train s``
    would count only the epochs of its last process and look several times faster than it was."""
    resumed = int(getattr(model, "resumed_from_", 0) or 0)
    history = getattr(model, "history_", None) or []
    return float(sum(row.get("seconds") or 0.0 for row in history if int(row["epoch"]) <= resumed)) if resumed else 0.0


def train_and_evaluate(entry: str, cfg: RunConfig, ds: Dataset, model_dir: Path) -> dict[str, Any]:
    name, registry_name = split_model_entry(entry)
    model = create_model(registry_name, **with_seed(registry_name, cfg.params.get(name, {}), cfg.seed))
    folder = ModelFolder(model_dir)
    folder.path.mkdir(parents=True, exist_ok=True)
    fit_args = training_arrays(model, ds["train"].images, ds["train"].labels, ds["val"].images, ds["val"].labels)
    n_train = len(fit_args[0])
    emit(ModelStarted(name, n_train))
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with nullcontext() if model.data_parallel else local_only():  # under torchrun, the other ranks skip it
            model.fit(
                *fit_args,
                classes=ds.classes,
                run_dir=model_dir,
                preprocessing=Preprocessing.of_dataset(ds.meta, ds.image_shape),
            )
    finally:
        train_seconds = time.perf_counter() - t0
        train_cpu_seconds = time.process_time() - c0  # on a shared CPU, less inflated by other jobs than wall time
        emit(ModelTrained(name, train_seconds))
    before_resume = seconds_before_resume(model)
    if before_resume:
        emit(ModelResumed(name, int(model.resumed_from_), before_resume))
        train_seconds += before_resume
    test = ds["test"]
    t0 = time.perf_counter()
    proba = model.predict_proba(test.images)
    predict_seconds = time.perf_counter() - t0
    model.save(folder.model_path)
    folder.write_predictions(test.labels, proba)
    sample = np.random.default_rng(cfg.seed).permutation(len(test))[:FEATURE_SAMPLE]
    folder.write_features(model.features(test.images[sample]), sample, test.labels[sample])
    metrics = evaluate_predictions(
        model_dir,
        ds.classes,
        test.images,
        title=name,
        extra={
            "model": name,
            "registry_model": registry_name,
            "train_seconds": round(train_seconds, 3),
            "train_pre_resume_seconds": round(before_resume, 3),
            "train_cpu_seconds": round(train_cpu_seconds, 3),
            "predict_seconds": round(predict_seconds, 3),
            "params": model.get_params(),
            "n_train": n_train,
        },
    )
    write_run_model_card(
        model_dir,
        name,
        ds,
        metrics,
        fit_on="train" if model.uses_validation else "train + val",
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        exclude=cfg.exclude,
    )
    # every result is written: the training checkpoint has no more use (run() then commits the model)
    for ckpt in (CHECKPOINT, f".{CHECKPOINT}.old"):  # .old: a process killed between the checkpoint's two renames
        shutil.rmtree(folder.file(ckpt), ignore_errors=True)
    return metrics


def help_train(cfg: RunConfig) -> Path:
    """A torchrun rank other than 0: train its share of every network rank 0 trains, in the same order, and
    write nothing (rank 0 writes the run folder; the checkpoint is read from it when resuming). Models that
    are not data-parallel (scikit-learn's, ensembles) are fit by rank 0 alone and skipped here."""
    from glyphlab.models.torch.ddp import share_plan

    out, todo = share_plan("", [False] * len(cfg.models))  # after rank 0 loaded the data and started the folder
    ds = load_run_dataset(cfg)
    folder = RunFolder(Path(out))
    for entry, train_it in zip(cfg.models, todo, strict=True):
        name, registry_name = split_model_entry(entry)
        model = create_model(registry_name, **with_seed(registry_name, cfg.params.get(name, {}), cfg.seed))
        if not (train_it and model.data_parallel):
            continue
        fit_args = training_arrays(model, ds["train"].images, ds["train"].labels, ds["val"].images, ds["val"].labels)
        model.fit(
            *fit_args,
            classes=ds.classes,
            run_dir=folder.model(name).path,
            preprocessing=Preprocessing.of_dataset(ds.meta, ds.image_shape),
        )
    return Path(out)


def write_leaderboard(out: Path, rows: list[dict[str, Any]]) -> None:
    """RUN/leaderboard.csv and, beside it, the accuracy-against-training-time figure."""
    RunFolder(out).write_leaderboard(rows)
    timed = [r for r in rows if r.get("accuracy") is not None and r.get("train_seconds") is not None]
    if timed:
        plot_accuracy_vs_time(timed, Path(out) / ACCURACY_VS_TIME)


def build_report_if_available(out: Path) -> None:
    try:
        from glyphlab.reporting.html import build_report
    except ImportError:
        return
    emit(Wrote((build_report(out),), what="report"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
