"""How far a model's confidence can be trusted: expected calibration error and the reliability diagram.

A model is calibrated when, of the images it labels with confidence 0.9, nine in ten are right. The
reliability diagram bins the test predictions by confidence (the top-class probability) and plots each
bin's accuracy against its mean confidence; the expected calibration error (ECE, Guo et al. 2017) is the
gap between the two averaged over the bins, weighted by how many predictions fall in each. scikit-learn's
``calibration_curve`` is one-vs-rest per class; the multi-class top-label form here is the one the
temperature-scaling literature reports.

"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.evaluation.plots import ShownFigure, save_figure  # the Figure API: no pyplot, no backend switch

DEFAULT_BINS = 15


def reliability(y_true: np.ndarray, proba: np.ndarray, n_bins: int = DEFAULT_BINS) -> list[dict[str, float]]:
    """Equal-width confidence bins over (0, 1]: per non-empty bin its count, mean confidence and accuracy."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(mask.sum()),
                    "confidence": float(conf[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                }
            )
    return rows


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Σ_b (n_b / N) · |accuracy_b − confidence_b| over the reliability bins (0 = perfectly calibrated)."""
    bins = reliability(y_true, proba, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / n)


def calibration_summary(y_true: np.ndarray, proba: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The figures metrics.json keeps: ECE, maximum bin gap, mean confidence, Brier score and negative
    log-likelihood."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    bins = reliability(y_true, proba, n_bins)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y_true)), y_true] = 1.0
    p_true = proba[np.arange(len(y_true)), y_true] if len(y_true) else np.zeros(0)
    return {
        "ece": expected_calibration_error(y_true, proba, n_bins),
        "mce": max((abs(b["accuracy"] - b["confidence"]) for b in bins), default=0.0),
        "mean_confidence": float(proba.max(axis=1).mean()) if len(proba) else 0.0,
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()) if len(proba) else 0.0,
        "nll": float(-np.log(np.clip(p_true, 1e-12, 1.0)).mean()) if len(proba) else 0.0,
        "calibration_bins": n_bins,
    }


def plot_reliability(y_true: np.ndarray, proba: np.ndarray, path: Path, title: str, n_bins: int = DEFAULT_BINS) -> Path:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, and the share of
    predictions in each bin below (most networks put nearly all of them in the last bin)."""
    bins = reliability(y_true, proba, n_bins)
    ece = expected_calibration_error(y_true, proba, n_bins)
    fig = ShownFigure(figsize=(4.8, 5.4))
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = 1.0 / n_bins
    lows = [b["low"] for b in bins]
    ax.bar(
        lows,
        [b["accuracy"] for b in bins],
        width=width,
        align="edge",
        color="#7b9be8",
        edgecolor="#3056d3",
        label="accuracy",
    )
    for b in bins:  # the gap to the bin's mean confidence
        ax.bar(
            b["low"],
            b["confidence"] - b["accuracy"],
            bottom=b["accuracy"],
            width=width,
            align="edge",
            color="#f2a39c",
            edgecolor="#b3261e",
            alpha=0.55,
            hatch="//",
            linewidth=0.5,
        )
    ax.plot([0, 1], [0, 1], "--", color="#555", linewidth=1, label="perfect calibration")
    ax.bar([0], [0], color="#f2a39c", edgecolor="#b3261e", hatch="//", label="gap to confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(f"{title}\nECE {ece:.4f} ({n_bins} bins)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    total = max(1, sum(b["count"] for b in bins))
    axc.bar(lows, [b["count"] / total for b in bins], width=width, align="edge", color="#9aa5b5")
    axc.set_yscale("log")
    axc.set_ylim(max(1e-4, 0.5 / total), 1.5)
    axc.set_ylabel("share")
    axc.set_xlabel("confidence (top-class probability)")
    fig.tight_layout()
    return save_figure(fig, path)
