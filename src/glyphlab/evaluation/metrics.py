"""Metrics from scikit-learn, computed from predictions alone (never from a model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    labels = np.arange(n_classes)
    kw: dict[str, Any] = {"labels": labels, "zero_division": 0}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", **kw)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", **kw)),
        "precision_macro": float(precision_score(y_true, y_pred, average="macro", **kw)),
        "recall_macro": float(recall_score(y_true, y_pred, average="macro", **kw)),
        "n_test": int(len(y_true)),
    }


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """scikit-learn's classification report as rows (class, precision, recall, f1, support)."""
    rep = classification_report(
        y_true, y_pred, labels=np.arange(len(classes)), target_names=classes, output_dict=True, zero_division=0
    )
    rows = []
    for key, val in rep.items():
        if isinstance(val, dict):
            rows.append({"class": key, **{k: float(v) for k, v in val.items()}})
    return rows


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, normalize: bool = False) -> np.ndarray:
    """Rows are true classes, columns predicted: integer counts, or each row's shares with ``normalize``."""
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64)
    if not normalize:
        return cm
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)


def most_confused(cm: np.ndarray, classes: list[str], k: int = 10, min_count: int = 1) -> list[dict[str, Any]]:
    """Top-k (true, predicted) pairs off the diagonal, largest count first (fastai's ``most_confused``)."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1]
    out = []
    for flat in order[:k]:
        i, j = np.unravel_index(flat, off.shape)
        count = int(off[i, j])
        if count < min_count:
            break
        support = cm[i].sum()
        out.append(
            {
                "true": classes[i],
                "predicted": classes[j],
                "true_index": int(i),
                "predicted_index": int(j),
                "count": count,
                "rate": float(count / support) if support else 0.0,
            }
        )
    return out
