"""The full model card a run writes into each saved model folder (``models/NAME/model/MODEL_CARD.md``).

It is made from what the run already wrote (metrics.json, predictions.npz, most_confused.csv,
classification_report.csv, the manifest) and the dataset's summary, so the card and the report never
disagree. Rendering is :mod:`glyphlab.models.model_card`; the hash goes into the manifest through
:func:`~glyphlab.models.persistence.write_model_card`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.data.dataset import Dataset
from glyphlab.evaluation.significance import bootstrap_interval
from glyphlab.models.model_card import (
    LIMITS,
    intended_use,
    md_table,
    model_section,
    preprocessing_section,
    render_model_card,
)
from glyphlab.models.persistence import read_manifest, write_model_card
from glyphlab.models.registry import find_spec
from glyphlab.runfolder import CLASSIFICATION_REPORT, MOST_CONFUSED_CSV, ModelFolder

CONFUSIONS_SHOWN = 6
WORST_CLASSES_SHOWN = 3
#: bootstrap resamples of the macro-F1 interval (a few seconds on 10,000 test images)
F1_RESAMPLES = 300


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def data_section(ds: Dataset, exclude: str = "") -> str:
    classes = list(ds.classes)
    lines = [
        f"- dataset: **{ds.name}**" + (f" ({ds.source})" if ds.source else ""),
        f"- {len(classes)} classes: {', '.join(classes[:62])}{' …' if len(classes) > 62 else ''}",
        f"- image shape: {'×'.join(str(s) for s in ds.image_shape)}",
    ]
    if ds["train"].labels is not None:
        counts = np.bincount(ds["train"].labels, minlength=len(classes))
        lines.append(f"- training images per class: {int(counts.min()):,} to {int(counts.max()):,}")
    variants = ds.meta.get("variants")
    if variants:
        lines.append(f"- variants applied: `{variants}`")
    if exclude:
        n = ds.meta.get("excluded_label_issues")
        lines.append(
            f"- {n if n is not None else 'some'} training images left out as label issues "
            f"(`glyphlab audit`, `{exclude}`)"
        )
    return "\n".join(lines)


def splits_section(ds: Dataset, fit_on: str, seed: int, val_fraction: float) -> str:
    rows = [[name, f"{len(s):,}"] for name, s in ds.splits.items()]
    return (
        md_table(["split", "images"], rows)
        + f"\n\nFitted on **{fit_on}**; the validation split is {_pct(val_fraction)} of train (stratified, seed "
        f"{seed}) and is used for early stopping and calibration by networks; the test split is used once, "
        "for the figures below."
    )


def metrics_section(metrics: dict[str, Any], model_dir: Path, n_classes: int, seed: int) -> str:
    lo, hi = metrics.get("accuracy_ci95") or (None, None)
    rows = [["accuracy", f"{metrics['accuracy']:.4f}", f"[{lo:.4f}, {hi:.4f}] (Wilson)" if lo is not None else ""]]
    try:
        pred = ModelFolder(model_dir).read_predictions()
        f_lo, f_hi = bootstrap_interval(pred["y_true"], pred["y_pred"], n_classes, resamples=F1_RESAMPLES, seed=seed)
        f1_ci = f"[{f_lo:.4f}, {f_hi:.4f}] (bootstrap, {F1_RESAMPLES} resamples)"
    except Exception:  # no predictions saved: the point estimate alone
        f1_ci = ""
    rows.append(["macro F1", f"{metrics['f1_macro']:.4f}", f1_ci])
    rows += [
        ["weighted F1", f"{metrics['f1_weighted']:.4f}", ""],
        ["macro precision", f"{metrics['precision_macro']:.4f}", ""],
        ["macro recall", f"{metrics['recall_macro']:.4f}", ""],
    ]
    text = f"On the test split ({int(metrics['n_test']):,} images), 95 % intervals:\n\n" + md_table(
        ["metric", "value", "95 % interval"], rows
    )
    per_class = [
        r
        for r in ModelFolder(model_dir).read_table(CLASSIFICATION_REPORT)
        if r.get("class") not in ("accuracy", "macro avg", "weighted avg")
    ]
    worst = sorted(per_class, key=lambda r: float(r["f1-score"]))[:WORST_CLASSES_SHOWN]
    if worst:
        text += "\n\nLowest per-class F1: " + ", ".join(
            f"`{r['class']}` {float(r['f1-score']):.3f} (support {int(float(r['support'])):,})" for r in worst
        )
    timing = [
        f"training {metrics['train_seconds']:.1f} s" if "train_seconds" in metrics else "",
        f"prediction of the test split {metrics['predict_seconds']:.2f} s" if "predict_seconds" in metrics else "",
    ]
    if any(timing):
        text += "\n\nTime: " + ", ".join(t for t in timing if t) + "."
    return text


def calibration_section(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    if "ece" not in metrics:
        return "Not measured."
    temperature = (manifest.get("extra") or {}).get("temperature")
    lines = [
        f"- expected calibration error (ECE, {metrics.get('calibration_bins', 15)} bins, test split): "
        f"**{metrics['ece']:.4f}**; largest bin gap {metrics['mce']:.4f}",
        f"- mean confidence {metrics['mean_confidence']:.4f} against accuracy {metrics['accuracy']:.4f} "
        f"({'over' if metrics['mean_confidence'] > metrics['accuracy'] else 'under'}-confident on average)",
        f"- negative log-likelihood {metrics['nll']:.4f}, Brier score {metrics['brier']:.4f}",
    ]
    if temperature not in (None, 1.0):
        lines.append(
            f"- temperature scaling (`calibrate=temperature`): logits divided by T = {float(temperature):.4f}, "
            "fitted on the validation split; predict, serve and the ONNX export apply it"
        )
    else:
        lines.append("- no calibration step (networks take `calibrate=temperature`)")
    lines.append("- the reliability diagram is `reliability.png` beside the run's metrics.json")
    return "\n".join(lines)


def confusions_section(model_dir: Path) -> str:
    pairs = ModelFolder(model_dir).read_table(MOST_CONFUSED_CSV)[:CONFUSIONS_SHOWN]
    if not pairs:
        return "No confusions on the test split."
    return "The most frequent mistakes on the test split:\n\n" + md_table(
        ["true", "predicted as", "count", "% of true class"],
        [[p["true"], p["predicted"], p["count"], f"{100 * float(p['rate']):.1f}"] for p in pairs],
    )


def write_run_model_card(
    model_dir: Path,
    label: str,
    ds: Dataset,
    metrics: dict[str, Any],
    *,
    fit_on: str,
    seed: int,
    val_fraction: float,
    exclude: str = "",
) -> Path:
    """Render the card of ``model_dir`` (a run's models/NAME folder) and store it in its saved model folder."""
    model_dir = Path(model_dir)
    folder = ModelFolder(model_dir)
    manifest = read_manifest(folder.model_path)
    registry = manifest.get("model")
    spec = find_spec(str(registry))
    sections = {
        "Model": model_section(manifest, spec.cls.defaults if spec else None)
        + (f"\n- run label: `{label}`" if label != registry else ""),
        "Data": data_section(ds, exclude),
        "Splits": splits_section(ds, fit_on, seed, val_fraction),
        "Preprocessing": preprocessing_section(manifest),
        "Metrics": metrics_section(metrics, model_dir, len(ds.classes), seed),
        "Calibration": calibration_section(metrics, manifest),
        "Known confusions": confusions_section(model_dir),
        "Intended use": intended_use(list(ds.classes)),
        "Limits": LIMITS,
    }
    summary = (
        f"`{label}` ({spec.description if spec else registry}) classifies {ds.name} images: test accuracy "
        f"{metrics['accuracy']:.4f}, ECE {metrics.get('ece', float('nan')):.4f}."
    )
    return write_model_card(folder.model_path, render_model_card(label, sections, summary))


__all__ = ["write_run_model_card"]
