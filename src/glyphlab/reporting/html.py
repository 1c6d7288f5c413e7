"""The run report: one self-contained HTML page made from a run folder's files alone.

``build_report(RUN)`` reads config.json, dataset.json, test_images.npz, leaderboard.csv and each
models/NAME/ folder (metrics, predictions, tables, figures, history, features) and writes RUN/report.html:
inline CSS, every image a base64 PNG data URI, no network, nothing retrained. Only the attributions load a
model (models/NAME/model/, when kept; see :mod:`glyphlab.reporting.explanations`), cached beside it. Confusion
matrices and most-confused examples are drawn afresh from predictions.npz (through
:class:`~glyphlab.evaluation.interpretation.Interpretation`), so a rebuild restyles them. The only
slow part, the t-SNE feature map, is cached as models/NAME/tsne.npz so a rebuild takes seconds.
``pdf=True`` also prints RUN/report.pdf with a headless Chromium.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.data.images import ImageConfig
from glyphlab.errors import GlyphlabError, RunFolderError
from glyphlab.evaluation.interpretation import Interpretation
from glyphlab.evaluation.plots import pareto_front
from glyphlab.fileio import write_text
from glyphlab.reporting import explanations, figures
from glyphlab.reporting.feature_map import feature_map_model, tsne_embedding
from glyphlab.reporting.pdf import find_browser, print_pdf
from glyphlab.reporting.trust import audit_part, calibration_part
from glyphlab.runfolder import (
    ACCURACY_VS_TIME,
    CLASSIFICATION_REPORT,
    CONFUSION_NORMALIZED_PNG,
    CONFUSION_PNG,
    HISTORY,
    IMAGE_INPUTS,
    LEADERBOARD_COLUMNS,
    LEARNING_CURVES,
    MOST_CONFUSED_CSV,
    MOST_CONFUSED_PNG,
    RECIPE,
    REFERENCE_COMPARISON,
    REPORT,
    REPORT_PDF,
    ROBUSTNESS_CSV,
    ROBUSTNESS_PNG,
    TEST_IMAGES,
    ModelFolder,
    RunFolder,
    as_number,
    read_csv_rows,
)
from glyphlab.tracking import read_tracking

log = logging.getLogger(__name__)

GALLERY_SIZE = 16
MAX_EMBEDDED_PNG = 450_000  # bytes; larger PNGs are palette-quantised (and downscaled) before embedding
TEMPLATE_DIR = Path(__file__).parent / "templates"
#: the leaderboard's numeric columns as the report shows them (the model and test-image count have their own)
BOARD_COLUMNS = [c for c in LEADERBOARD_COLUMNS if c.key not in ("model", "n_test")]


# ----------------------------------------------------------------------------- small readers


def data_uri(png: bytes | None) -> str | None:
    """A PNG as a ``data:`` URI, shrunk first when it is heavy (keeps the page small)."""
    if not png:
        return None
    if len(png) > MAX_EMBEDDED_PNG:
        png = _shrink_png(png)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _shrink_png(png: bytes) -> bytes:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(png)).convert("RGB")
        if img.width > 1600:
            img = img.resize((1600, round(img.height * 1600 / img.width)), Image.LANCZOS)
        buf = io.BytesIO()
        img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        return buf.getvalue() if buf.tell() < len(png) else png
    except Exception:  # an odd PNG is embedded as it is
        return png


def _file_uri(path: Path) -> str | None:
    return data_uri(path.read_bytes()) if path.is_file() else None


# ----------------------------------------------------------------------------- the page's parts


def _fmt(v: Any, digits: int = 4) -> str:
    f = as_number(v)
    if f is None:
        return "" if v is None else str(v)
    if float(f).is_integer() and digits == 0:
        return f"{int(f):,}"
    return f"{f:,.{digits}f}"


def _leaderboard_view(rows: list[dict[str, Any]]) -> dict[str, Any]:
    accs = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    lo, hi = (min(accs), max(accs)) if accs else (0.0, 1.0)
    timed = [r for r in rows if r["accuracy"] is not None and r["train_seconds"] is not None]
    front: set[str] = set()
    if timed:
        on = pareto_front(
            np.array([max(r["train_seconds"], 1e-3) for r in timed]), np.array([r["accuracy"] for r in timed])
        )
        front = {r["model"] for r, o in zip(timed, on) if o}
    view = []
    for i, r in enumerate(rows):
        acc = r["accuracy"]
        share = 1.0 if hi <= lo or acc is None else 0.15 + 0.85 * (acc - lo) / (hi - lo)
        view.append(
            {
                "rank": i + 1,
                "model": r["model"],
                "anchor": "model-" + _slug(r["model"]),
                "best": i == 0,
                "pareto": r["model"] in front,
                "cells": [_fmt(r[c.key], c.digits) for c in BOARD_COLUMNS],
                "gap": "" if acc is None or i == 0 or accs == [] else f"{(acc - hi) * 100:+.2f}",
                "bar": round(100 * share, 1),
                "n_test": _fmt(r["n_test"], 0),
            }
        )
    return {"columns": [c.label for c in BOARD_COLUMNS], "rows": view}


def _image_config_text(dataset: dict[str, Any]) -> str:
    raw = ((dataset.get("meta") or {}).get("preprocessing") or {}).get("image_config")
    try:
        return ImageConfig.from_dict(raw).describe() if raw else ""
    except GlyphlabError:
        return ""


def _dataset_part(
    run_dir: Path, dataset: dict[str, Any], images: np.ndarray | None, labels: np.ndarray | None, classes: list[str]
) -> dict[str, Any]:
    sizes = dataset.get("split_sizes", {}) or {}
    counts = dataset.get("class_counts", {}) or {}
    part: dict[str, Any] = {
        "name": dataset.get("name", "?"),
        "classes": classes,
        "n_classes": len(classes),
        "image_shape": "×".join(str(s) for s in dataset.get("image_shape", [])),
        "splits": [{"name": k, "size": f"{int(v):,}"} for k, v in sizes.items()],
        "total": f"{sum(int(v) for v in sizes.values()):,}" if sizes else "",
        "source": dataset.get("source", ""),
        "meta": dataset.get("meta", {}) or {},
        "distribution": None,
        "samples": None,
        "means": None,
        "inputs": _file_uri(run_dir / IMAGE_INPUTS),
        "inputs_text": _image_config_text(dataset),
    }
    if classes and counts:
        part["distribution"] = data_uri(figures.class_distribution(classes, counts))
        per_class = {k: np.asarray(v) for k, v in counts.items()}
        imb = [int(v.max()) / max(1, int(v.min())) for v in per_class.values() if len(v)]
        part["imbalance"] = f"{max(imb):.1f}×" if imb else ""
    if images is not None and labels is not None and classes:
        part["samples"] = data_uri(figures.sample_grid(images, labels, classes))
        part["means"] = data_uri(figures.mean_images(images, labels, classes))
        part["shown_classes"] = min(len(classes), figures.MAX_CLASSES_SHOWN)
    return part


def _model_part(
    run: RunFolder, name: str, row: dict[str, Any], images: np.ndarray | None, classes: list[str]
) -> dict[str, Any]:
    """Everything the template's section on one model shows, read from its folder (never from the model)."""
    folder = run.model(name)
    d = folder.path
    metrics = folder.read_metrics()
    report = _class_report(folder)
    confused = [
        {
            "true": p.get("true"),
            "predicted": p.get("predicted"),
            "count": _fmt(p.get("count"), 0),
            "rate": _fmt(as_number(p.get("rate")) * 100 if as_number(p.get("rate")) is not None else None, 1),
        }
        for p in folder.read_table(MOST_CONFUSED_CSV)
    ]
    history = folder.read_history()
    curves, hist_summary = _history_part(folder, name, history)
    gallery, n_wrong = None, None
    drawn = _interpretation_figures(folder, classes, images)
    try:
        pred = folder.read_predictions()
    except RunFolderError:
        pred = None
    if pred is not None and images is not None:
        index = pred["index"]
        if len(index) and int(np.max(index)) < len(images):
            png, n_wrong = figures.confident_mistakes(
                images[index], pred["y_true"], pred["y_pred"], pred["proba"], classes, k=GALLERY_SIZE
            )
            gallery = data_uri(png)
    why = explanations.attribution_part(folder, images, pred, classes, confused)
    why.update({k: data_uri(why.get(k)) for k in ("pairs", "losses")})
    params = metrics.get("params") or {}
    registry = metrics.get("registry_model")
    return {
        "name": name,
        "anchor": "model-" + _slug(name),
        "row": row,
        "registry_model": registry if registry and registry != name else None,
        "params": [{"key": k, "value": json.dumps(v) if not isinstance(v, str) else v} for k, v in params.items()],
        "n_train": _fmt(metrics.get("n_train"), 0) if metrics.get("n_train") is not None else "",
        "accuracy": _fmt(row.get("accuracy")),
        "f1_macro": _fmt(row.get("f1_macro")),
        "train_seconds": _fmt(row.get("train_seconds"), 2),
        "predict_seconds": _fmt(row.get("predict_seconds"), 3),
        "report": report,
        "confusion": drawn.get("confusion") or _file_uri(d / CONFUSION_PNG),
        "confusion_normalized": drawn.get("confusion_normalized") or _file_uri(d / CONFUSION_NORMALIZED_PNG),
        "confused": confused,
        "confused_png": drawn.get("confused_png") or _file_uri(d / MOST_CONFUSED_PNG),
        "curves": curves,
        "history": hist_summary,
        "is_network": bool(history),
        "gallery": gallery,
        "n_wrong": n_wrong,
        "attributions": why,
        "n_test": _fmt(row.get("n_test"), 0),
        "model_saved": folder.model_path.is_dir(),
        "calibration": calibration_part(folder.path, _file_uri),
    }


def _class_report(folder: ModelFolder) -> list[dict[str, Any]]:
    """The classification report's rows, formatted, the three worst classes by F1 (below 1) marked ``worst``."""
    report = []
    for r in folder.read_table(CLASSIFICATION_REPORT):
        label = r.get("class", "")
        report.append(
            {
                "label": label,
                "summary": label in ("macro avg", "weighted avg", "accuracy"),
                "precision": _fmt(r.get("precision")),
                "recall": _fmt(r.get("recall")),
                "f1": _fmt(r.get("f1-score")),
                "f1_value": as_number(r.get("f1-score")),
                "support": _fmt(r.get("support"), 0),
            }
        )
    per_class = [r for r in report if not r["summary"] and r["f1_value"] is not None]
    worst = {r["label"] for r in sorted(per_class, key=lambda r: r["f1_value"])[:3] if r["f1_value"] < 1.0}
    for r in report:
        r["worst"] = r["label"] in worst
    return report


def _history_part(
    folder: ModelFolder, name: str, history: list[dict[str, Any]]
) -> tuple[str | None, dict[str, Any] | None]:
    """A network's learning curves (the saved figure, else drawn now) and its summary; (None, None) for a model
    trained without epochs."""
    if not history:
        return None, None
    curves = _file_uri(folder.path / LEARNING_CURVES) or data_uri(figures.learning_curves(history, name))
    with_val = [h for h in history if "val_acc" in h]
    best = max(with_val, key=lambda h: h["val_acc"]) if with_val else None
    summary = {
        "epochs": len(history),
        "best_epoch": int(best["epoch"]) if best and "epoch" in best else None,
        "best_val_acc": _fmt(best["val_acc"]) if best else "",
        "seconds": _fmt(sum(h.get("seconds", 0.0) for h in history), 1),
    }
    return curves, summary


def _interpretation_figures(
    folder: ModelFolder, classes: list[str], images: np.ndarray | None
) -> dict[str, str | None]:
    """The confusion matrices and most-confused examples drawn now from predictions.npz (so a new glyphlab
    restyles an old run's figures without its models); empty when the model has no predictions."""
    try:
        it = Interpretation.from_model_folder(folder, classes, None if images is None else images / 255.0)
    except RunFolderError:
        return {}
    out = {
        "confusion": data_uri(figures.png_bytes(it.plot_confusion_matrix())),
        "confusion_normalized": data_uri(figures.png_bytes(it.plot_confusion_matrix(normalize=True))),
        "confused_png": None,
    }
    if it.images is not None and not it.most_confused(8).empty:
        out["confused_png"] = data_uri(figures.png_bytes(it.plot_most_confused(8)))
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").lower() or "model"


# ----------------------------------------------------------------------------- t-SNE feature map


def _feature_map_part(
    run_dir: Path, rows: list[dict[str, Any]], classes: list[str], seed: int
) -> dict[str, Any] | None:
    name = feature_map_model(run_dir, rows)
    if name is None:
        return None
    model_dir = RunFolder(run_dir).model(name).path
    emb = tsne_embedding(model_dir, seed)
    if emb is None:
        return None
    labels = emb["labels"].astype(np.int64)
    names = classes if classes and labels.max() < len(classes) else [str(i) for i in range(int(labels.max()) + 1)]
    png = figures.embedding_scatter(emb["xy"], labels, names)
    is_net = (model_dir / HISTORY).is_file()
    return {
        "model": name,
        "anchor": "model-" + _slug(name),
        "image": data_uri(png),
        "points": f"{len(labels):,}",
        "dims": emb["dims"],
        "pca": emb["pca"],
        "network": is_net,
    }


# ----------------------------------------------------------------------------- assembling


def _environment(config: dict[str, Any]) -> dict[str, Any]:
    machine = config.get("machine", {}) or {}
    versions = config.get("versions", {}) or {}
    params = config.get("params", {}) or {}
    settings = [
        ("dataset", config.get("dataset")),
        ("models", ", ".join(config.get("models", []) or [])),
        ("seed", config.get("seed")),
        ("validation fraction", config.get("val_fraction")),
        ("variants", config.get("variants") or "none"),
        ("data folder", config.get("data_dir") or "default"),
        ("dataset options", json.dumps(config["dataset_options"]) if config.get("dataset_options") else "none"),
        ("created", config.get("created")),
    ]
    return {
        "settings": [{"key": k, "value": "" if v is None else str(v)} for k, v in settings],
        "params": [{"model": m, "value": json.dumps(p)} for m, p in params.items() if p],
        "versions": [{"key": k, "value": str(v)} for k, v in versions.items()],
        "machine": [{"key": k, "value": str(v)} for k, v in machine.items()],
        "device": machine.get("device", ""),
    }


def _table_from_csv(path: Path, digits: int = 4) -> dict[str, Any] | None:
    rows = read_csv_rows(path)
    if not rows:
        return None
    cols = list(rows[0])
    numeric = {c: all(as_number(r.get(c)) is not None or r.get(c) in ("", None) for r in rows) for c in cols}
    return {
        "columns": [{"name": c, "numeric": numeric[c]} for c in cols],
        "rows": [
            [{"value": _fmt(r.get(c), digits) if numeric[c] else r.get(c, ""), "numeric": numeric[c]} for c in cols]
            for r in rows
        ],
    }


def collect(run_dir: Path) -> dict[str, Any]:
    """Everything the template shows, read from the run folder."""
    run = RunFolder(run_dir)
    config, dataset, classes = run.config, run.dataset, run.classes
    try:
        images, labels = run.read_test_images_raw()
    except RunFolderError as exc:
        if run.file(TEST_IMAGES).exists():  # there but unreadable: say so, never show fewer images silently
            raise
        log.warning("warning: %s; the report shows no sample images", exc)  # e.g. evaluated on several datasets
        images = labels = None
    unfinished = run.unfinished_models()
    if unfinished:
        log.warning(
            "warning: %s: %s unfinished (no done.json), not in the report; `glyphlab run --resume %s` completes them",
            run_dir,
            ", ".join(unfinished),
            run_dir,
        )
    rows = run.leaderboard_rows()
    models = [_model_part(run, r["model"], r, images, classes) for r in rows if run.model(r["model"]).path.is_dir()]
    seed = int(config.get("seed", 0) or 0)
    recipe = run.read_json(RECIPE)
    best = rows[0] if rows else None
    robustness = _file_uri(run.file(ROBUSTNESS_PNG))
    ctx = {
        "title": f"{dataset.get('name') or config.get('dataset') or 'run'} — glyphlab run report",
        "run_name": run_dir.resolve().name,
        "run_path": str(run_dir.resolve()),
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "created": _pretty_time(config.get("created")),
        "config": config,
        "env": _environment(config),
        "dataset": _dataset_part(run_dir, dataset, images, labels, classes),
        "n_test": f"{len(labels):,}" if labels is not None else "",
        "leaderboard": _leaderboard_view(rows),
        "best": {
            "model": best["model"],
            "accuracy": _fmt(best["accuracy"]),
            "anchor": "model-" + _slug(best["model"]),
            "f1_macro": _fmt(best["f1_macro"]),
            "error_pct": _fmt((1 - best["accuracy"]) * 100, 2) if best["accuracy"] is not None else "",
        }
        if best
        else None,
        "fastest": min(
            (r for r in rows if r["train_seconds"] is not None), key=lambda r: r["train_seconds"], default=None
        ),
        "scatter": _file_uri(run.file(ACCURACY_VS_TIME)),
        "models": models,
        "feature_map": _feature_map_part(run_dir, rows, classes, seed),
        "robustness": robustness,
        "robustness_table": _table_from_csv(run.file(ROBUSTNESS_CSV))
        if robustness or run.file(ROBUSTNESS_CSV).is_file()
        else None,
        "reference": _table_from_csv(run.file(REFERENCE_COMPARISON)),
        "tracking": read_tracking(run_dir) or None,
        "audit": audit_part(run_dir, _file_uri),
        "recipe": {
            "name": recipe.get("name", ""),
            "description": recipe.get("description", ""),
            "quick": recipe.get("quick", False),
        }
        if recipe
        else None,
    }
    return ctx


def _pretty_time(stamp: Any) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(str(stamp)).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        return str(stamp)


def render(ctx: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(**ctx)


def build_report(run_dir: Path, pdf: bool = False) -> Path:
    """Write RUN/report.html (and RUN/report.pdf when ``pdf``) from the run folder's files; returns the HTML path."""
    run = RunFolder.open(run_dir)
    if pdf:
        find_browser()  # fail before the work, not after
    out = write_text(run.file(REPORT), render(collect(run.path)))
    if pdf:
        print_pdf(out, run.file(REPORT_PDF))
    return out
