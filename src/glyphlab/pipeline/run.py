"""A run: train several models on one dataset and leave a folder that stands on its own.

RUN/
  config.json        everything needed to repeat the run (``glyphlab run --resume RUN`` reads it)
  dataset.json       split sizes, class names and counts
  test_images.npz    the test images and labels, so reports can show examples without the dataset
  leaderboard.csv    one row per model; accuracy_vs_time.png beside it
  models/NAME/       model/ (manifest + weights), predictions.npz, metrics.json, figures, history.csv
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from glyphlab.data.dataset import Dataset
from glyphlab.data.registry import resolve_dataset
from glyphlab.data.splits import ensure_validation, split_off
from glyphlab.errors import ConfigError
from glyphlab.evaluation.evaluate import evaluate_predictions, save_predictions
from glyphlab.evaluation.plots import plot_accuracy_vs_time
from glyphlab.io import read_csv, write_csv, write_json
from glyphlab.models.persistence import library_versions
from glyphlab.models.base import training_arrays
from glyphlab.models.registry import create_model, with_seed

CONFIG = "config.json"
FEATURE_SAMPLE = 2000
HELD_OUT_TEST_FRACTION = 0.2
LEADERBOARD_COLUMNS = [
    "model", "accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro",
    "train_seconds", "predict_seconds", "n_test",
]


@dataclass
class RunConfig:
    dataset: str = "digits"
    models: list[str] = field(default_factory=lambda: ["logreg", "svm", "random-forest"])
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    val_fraction: float = 0.1
    variants: str = ""
    data_dir: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> "RunConfig":
        raw = json.loads(Path(path).read_text())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


def load_run_dataset(cfg: RunConfig) -> Dataset:
    ds = resolve_dataset(cfg.dataset, cfg.data_dir, **cfg.dataset_options)
    if cfg.variants:
        from glyphlab.data.variants import apply_variants

        ds = apply_variants(ds, cfg.variants, seed=cfg.seed)
    if "test" not in ds.splits:  # a user's folder or file: hold out a fixed, stratified test split
        ds = split_off(ds, "train", "test", HELD_OUT_TEST_FRACTION, seed=0)
    if ds["test"].labels is None:
        raise ConfigError(f"dataset '{ds.name}' has an unlabeled test split: nothing to evaluate against")
    return ensure_validation(ds, cfg.val_fraction, cfg.seed)


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


def run(cfg: RunConfig, out: Path | None = None, console: Console | None = None, resume: bool = False,
        report: bool = True) -> Path:
    """Train, evaluate and save every model of ``cfg``; models already finished in ``out`` are kept when resuming."""
    console = console or Console()
    out = Path(out) if out else default_run_dir(cfg)
    for entry in cfg.models:  # fail on a typo before any data is loaded or model trained
        label, name = split_model_entry(entry)
        create_model(name, **cfg.params.get(label, {}))
    ds = load_run_dataset(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG, {**asdict(cfg), "created": _now(), "versions": library_versions(),
                                "machine": machine_info()})
    write_json(out / "dataset.json", ds.summary())
    test = ds["test"]
    np.savez_compressed(out / "test_images.npz", images=np.round(test.images * 255).astype(np.uint8),
                        labels=test.labels)
    console.print(
        f"[bold]glyphlab run[/] dataset [cyan]{ds.name}[/] {ds.image_shape[0]}x{ds.image_shape[1]}, "
        f"{ds.num_classes} classes, splits " + ", ".join(f"{k}={len(v):,}" for k, v in ds.splits.items())
        + f" → [green]{out}[/]"
    )
    rows = []
    for entry in cfg.models:
        name, _ = split_model_entry(entry)
        model_dir = out / "models" / name
        if resume and (model_dir / "metrics.json").is_file() and (model_dir / "model" / "manifest.json").is_file():
            console.print(f"  [dim]{name}: already finished, kept[/]")
            rows.append(_row(name, json.loads((model_dir / "metrics.json").read_text())))
            continue
        rows.append(_row(name, train_and_evaluate(entry, cfg, ds, model_dir, console)))
    write_leaderboard(out, rows)
    print_leaderboard(rows, console, title=f"leaderboard — {ds.name} test set ({len(test):,} images)")
    if report:
        build_report_if_available(out, console)
    return out


def split_model_entry(entry: str) -> tuple[str, str]:
    """``"cnn-aug=cnn-small"`` is the registry model ``cnn-small`` under the label ``cnn-aug`` (so one run can
    hold the same model with different parameters); a plain name is its own label."""
    label, _, model = entry.partition("=")
    label, model = label.strip(), (model.strip() or label.strip())
    if not label or "/" in label or label.startswith("."):
        raise ConfigError(f"bad model entry '{entry}': use NAME or LABEL=NAME, with no '/' in the label")
    return label, model


def train_and_evaluate(entry: str, cfg: RunConfig, ds: Dataset, model_dir: Path, console: Console) -> dict[str, Any]:
    name, registry_name = split_model_entry(entry)
    model = create_model(registry_name, **with_seed(registry_name, cfg.params.get(name, {}), cfg.seed))
    model_dir.mkdir(parents=True, exist_ok=True)
    fit_args = training_arrays(model, ds["train"].images, ds["train"].labels, ds["val"].images, ds["val"].labels)
    n_train = len(fit_args[0])
    with console.status(f"training [bold]{name}[/] on {n_train:,} images"):
        t0 = time.perf_counter()
        model.fit(*fit_args, classes=ds.classes, run_dir=model_dir)
        train_seconds = time.perf_counter() - t0
    test = ds["test"]
    t0 = time.perf_counter()
    proba = model.predict_proba(test.images)
    predict_seconds = time.perf_counter() - t0
    model.save(model_dir / "model")
    save_predictions(model_dir, test.labels, proba)
    sample = np.random.default_rng(cfg.seed).permutation(len(test))[:FEATURE_SAMPLE]
    np.savez_compressed(model_dir / "features.npz", features=np.asarray(model.features(test.images[sample]), np.float32),
                        index=sample, labels=test.labels[sample])
    metrics = evaluate_predictions(
        model_dir, ds.classes, test.images, title=name,
        extra={"model": name, "registry_model": registry_name, "train_seconds": round(train_seconds, 3), "predict_seconds": round(predict_seconds, 3),
               "params": model.get_params(), "n_train": n_train},
    )
    # metrics.json marks the model finished; only now has the training checkpoint no more use for resuming
    shutil.rmtree(model_dir / "checkpoint", ignore_errors=True)
    console.print(f"  [bold]{name}[/]: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f} "
                  f"({train_seconds:.1f} s)")
    return metrics


def _row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"model": name, **{k: metrics[k] for k in LEADERBOARD_COLUMNS if k != "model"}}


def write_leaderboard(out: Path, rows: list[dict[str, Any]]) -> None:
    rows = sorted(rows, key=lambda r: -r["accuracy"])
    write_csv(out / "leaderboard.csv", rows)
    if rows:
        plot_accuracy_vs_time(rows, out / "accuracy_vs_time.png")


def read_leaderboard(out: Path) -> list[dict[str, Any]]:
    rows = read_csv(Path(out) / "leaderboard.csv")
    return [{k: (v if k == "model" else float(v)) for k, v in r.items()} for r in rows]


def print_leaderboard(rows: list[dict[str, Any]], console: Console, title: str = "leaderboard") -> None:
    table = Table(title=title)
    for col, label in [("model", "model"), ("accuracy", "accuracy"), ("f1_macro", "F1 macro"),
                       ("f1_weighted", "F1 wtd"), ("precision_macro", "prec."),
                       ("recall_macro", "recall"), ("train_seconds", "train s"), ("predict_seconds", "pred. s")]:
        if col == "model":
            table.add_column(label, no_wrap=True)
        else:
            table.add_column(label, justify="right")
    rows = sorted(rows, key=lambda r: -r["accuracy"])
    for i, r in enumerate(rows):
        cells = [r["model"]] + [f"{r[c]:.4f}" for c in ("accuracy", "f1_macro", "f1_weighted", "precision_macro",
                                                         "recall_macro")]
        cells += [f"{r['train_seconds']:.2f}", f"{r['predict_seconds']:.3f}"]
        table.add_row(*cells, style="bold green" if i == 0 else None)
    console.print(table)


def build_report_if_available(out: Path, console: Console) -> None:
    try:
        from glyphlab.reporting.html import build_report
    except ImportError:
        return
    path = build_report(out)
    console.print(f"report: [green]{path}[/]")


_write_json = write_json  # the old name, for callers not yet moved to glyphlab.io


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
