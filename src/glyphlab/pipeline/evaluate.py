"""``glyphlab evaluate``: score saved models on any dataset, e.g. a model trained upright on rotated digits.

The output is a run folder of its own (dataset.json, test_images.npz, leaderboard.csv, models/NAME/), so
``glyphlab report`` and ``Run.open`` read it like any run."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from glyphlab.errors import GlyphlabError
from glyphlab.evaluation.evaluate import evaluate_predictions
from glyphlab.models.persistence import load_model, saved_models
from glyphlab.pipeline.run import RunConfig, load_run_dataset, print_leaderboard, write_leaderboard
from glyphlab.runfolder import RunFolder


def evaluate_saved(path: Path, dataset: str, out: Path | None, variant: str, seed: int, data_dir: Path | None,
                   console: Console, dataset_options: dict | None = None) -> Path:
    models = saved_models(path)
    cfg = RunConfig(dataset=dataset, models=list(models), seed=seed, variants=variant,
                    data_dir=str(data_dir) if data_dir else None, dataset_options=dataset_options or {})
    ds = load_run_dataset(cfg)
    test = ds["test"]
    out = Path(out) if out else Path(path) / f"evaluate-{Path(dataset).name}"
    folder = RunFolder.create(out)
    folder.write_dataset(ds.summary())  # with the test images, the folder is a run others can read and interpret
    folder.write_test_images(test.images, test.labels)
    rows = []
    for name, model_dir in models.items():
        model = load_model(model_dir)
        if tuple(model.input_shape_ or ()) != ds.image_shape:
            raise GlyphlabError(
                f"model '{name}' takes {model.input_shape_} images but {ds.name} has {ds.image_shape}"
            )
        if list(model.classes_ or []) != list(ds.classes):
            raise GlyphlabError(
                f"model '{name}' predicts classes {model.classes_} but {ds.name} has {ds.classes}: "
                "its scores would be meaningless"
            )
        t0 = time.perf_counter()
        proba = model.predict_proba(test.images)
        seconds = time.perf_counter() - t0
        folder.model(name).write_predictions(test.labels, proba)
        metrics = evaluate_predictions(folder.model(name).path, ds.classes, test.images, title=f"{name} on {ds.name}",
                                       extra={"model": name, "train_seconds": 0.0, "predict_seconds": round(seconds, 3)})
        rows.append({"model": name, **metrics})
    write_leaderboard(out, rows)
    print_leaderboard(rows, console, title=f"saved models on {ds.name} test set ({len(test):,} images)")
    console.print(f"wrote [green]{out}[/]")
    return out
