"""``glyphlab evaluate``: score saved models on any dataset, e.g. a model trained upright on rotated digits.

Without ``--dataset`` a run's models are scored on the run's own dataset, variants and test split (read from
its ``config.json``). With ``--dataset`` they are scored on that dataset's test split, or on all of its
images when it has none (a folder or file of new images). An image folder is read with the image config
each model's manifest records, so ``evaluate`` sees the very inputs that ``predict`` and ``serve`` make.

The output is a run folder of its own (leaderboard.csv, models/NAME/, and dataset.json and test_images.npz
when every model was scored on the same images), so ``glyphlab report`` and ``Run.open`` read it like a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glyphlab.data.dataset import Dataset
from glyphlab.data.formats import IMAGE_OPTIONS
from glyphlab.data.spec import DataSpec
from glyphlab.errors import ConfigError, GlyphlabError
from glyphlab.evaluation.evaluate import evaluate_predictions
from glyphlab.events import Leaderboard, Observer, Wrote, emit, observing
from glyphlab.models.base import GlyphModel
from glyphlab.models.persistence import load_model
from glyphlab.pipeline.run import RunConfig, load_run_dataset, write_leaderboard
from glyphlab.runfolder import CONFIG, MODELS, RunFolder, saved_models


def run_folder_of(path: Path) -> Path | None:
    """The run folder ``path`` is or lies in (a run's ``models/NAME`` or ``models/NAME/model``), if any."""
    path = Path(path).resolve()
    for candidate in (path, *path.parents[:3]):
        if (candidate / CONFIG).is_file() and (candidate / MODELS).is_dir():
            return candidate
    return None


def _run_dataset(
    path: Path, variant: str | None, seed: int | None, data_dir: Path | None, dataset_options: dict[str, Any]
) -> tuple[RunConfig, Dataset]:
    run_dir = run_folder_of(path)
    if run_dir is None:
        raise ConfigError(
            f"{path} is not in a run folder, so it has no dataset of its own: pass --dataset NAME_OR_PATH"
        )
    try:
        cfg = RunConfig.from_file(run_dir / CONFIG)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{run_dir / CONFIG} cannot be read ({exc}): pass --dataset NAME_OR_PATH") from None
    if variant is not None:
        cfg.variants = variant
    if seed is not None:
        cfg.seed = seed
    if data_dir is not None:
        cfg.data_dir = str(data_dir)
    cfg.dataset_options = {**cfg.dataset_options, **dataset_options}
    return cfg, load_run_dataset(cfg)


def _other_dataset(
    dataset: str,
    variant: str | None,
    seed: int | None,
    data_dir: Path | None,
    dataset_options: dict[str, Any],
    model: GlyphModel,
) -> Dataset:
    options = dict(dataset_options)
    if Path(dataset).is_dir() and not set(options) & set(IMAGE_OPTIONS) and model.preprocessing_ is not None:
        options["config"] = model.preprocessing_.config  # a folder of images: prepared as the model's manifest says
    spec = DataSpec(dataset, str(data_dir) if data_dir else None, options, variant or "", seed or 0)
    ds = spec.load()
    if "test" not in ds.splits:  # new images: every one of them is scored
        from glyphlab.data.splits import merge_splits

        ds = ds.with_splits({"test": merge_splits(ds, list(ds.splits))})
    if ds["test"].labels is None:
        raise ConfigError(f"dataset '{ds.name}' has an unlabeled test split: nothing to evaluate against")
    return ds


def evaluate_saved(
    path: Path,
    dataset: str | None,
    out: Path | None,
    variant: str | None,
    seed: int | None,
    data_dir: Path | None,
    dataset_options: dict | None = None,
    observers: Sequence[Observer] = (),
) -> Path:
    """Score every saved model under ``path`` on ``dataset`` (default: the run's own) and write a leaderboard;
    ``observers`` get the leaderboard and the folder written (:mod:`glyphlab.events`)."""
    options = dict(dataset_options or {})
    with observing(*observers):
        models = {name: load_model(model_dir) for name, model_dir in saved_models(path).items()}
        loaded: dict[str, Dataset] = {}
        ds: Dataset | None = None
        if dataset is None:
            cfg, ds = _run_dataset(Path(path), variant, seed, data_dir, options)
            where = f"the run's own dataset {cfg.dataset}" + (f" ({cfg.variants})" if cfg.variants else "")
            out = Path(out) if out else Path(path) / "evaluate-run-dataset"
        else:
            where = dataset
            out = Path(out) if out else Path(path) / f"evaluate-{Path(dataset).name}"
        folder = RunFolder.create(out)
        rows = []
        for name, model in models.items():
            if dataset is not None:  # one load per image config the models' manifests record
                key = json.dumps(
                    model.preprocessing_.config.to_dict() if model.preprocessing_ else None, sort_keys=True
                )
                if key not in loaded:
                    loaded[key] = _other_dataset(dataset, variant, seed, data_dir, options, model)
                ds = loaded[key]
            assert ds is not None
            rows.append(_score_saved(folder, name, model, ds, where))
        assert ds is not None
        if len(loaded) <= 1:  # one set of test images for every model: the folder can show and interpret them
            folder.write_dataset(ds.summary())
            folder.write_test_images(ds["test"].images, ds["test"].labels)
        write_leaderboard(out, rows)
        emit(Leaderboard(f"saved models on {where}: {ds.name} test set ({len(ds['test']):,} images)", rows))
        emit(Wrote((out,)))
    return out


def _score_saved(folder: RunFolder, name: str, model: GlyphModel, ds: Dataset, where: str) -> dict[str, Any]:
    """Score one model on ``ds``'s test split into ``folder``'s ``models/NAME`` and return its leaderboard row."""
    test = ds["test"]
    if tuple(model.input_shape_ or ()) != ds.image_shape:
        raise GlyphlabError(f"model '{name}' takes {model.input_shape_} images but {ds.name} has {ds.image_shape}")
    if list(model.classes_ or []) != list(ds.classes):
        raise GlyphlabError(
            f"model '{name}' predicts classes {model.classes_} but {ds.name} has {ds.classes}: "
            "its scores would be meaningless"
        )
    folder.model(name).discard_unfinished()  # an earlier evaluation's done.json must not vouch for this one
    t0 = time.perf_counter()
    proba = model.predict_proba(test.images)
    seconds = time.perf_counter() - t0
    folder.model(name).write_predictions(test.labels, proba)
    metrics = evaluate_predictions(
        folder.model(name).path,
        ds.classes,
        test.images,
        title=f"{name} on {ds.name}",
        extra={"model": name, "train_seconds": 0.0, "predict_seconds": round(seconds, 3), "dataset": where},
    )
    folder.model(name).commit()  # last, as in a run: these results count as finished
    return {"model": name, **metrics}
