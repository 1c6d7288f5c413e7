import numpy as np
import pytest

from glyphlab.evaluation.metrics import compute_metrics, confusion, most_confused, per_class_report
from glyphlab.evaluation.plots import pareto_front


def test_metrics_match_hand_computed_values():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    m = compute_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class F1: class0 p=1/2 r=1/2 -> .5; class1 p=2/3 r=1 -> .8; class2 p=1 r=1/2 -> 2/3
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["n_test"] == 6


def test_confusion_and_most_confused():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([1, 1, 0, 1, 2, 2])
    cm = confusion(y_true, y_pred, 4)
    assert cm.dtype.kind == "i" and str(cm[0, 1]) == "2"  # counts print as counts, not 2.0 or 1.017e+03
    assert cm[0, 1] == 2 and cm[1, 2] == 1 and cm[3].sum() == 0
    norm = confusion(y_true, y_pred, 4, normalize=True)
    assert norm[0].sum() == pytest.approx(1.0) and norm[3].sum() == 0  # an absent class is a zero row, not NaN
    pairs = most_confused(cm, ["a", "b", "c", "d"], k=5)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("a", "b", 2), ("b", "c", 1)]
    assert pairs[0]["rate"] == pytest.approx(2 / 3)


def test_per_class_report_has_every_class_and_averages():
    rows = per_class_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["zero", "one", "two"])
    names = [r["class"] for r in rows]
    assert names[:3] == ["zero", "one", "two"] and "macro avg" in names


def test_pareto_front():
    times = np.array([1.0, 2.0, 3.0, 0.5])
    accs = np.array([0.9, 0.95, 0.94, 0.8])
    assert pareto_front(times, accs).tolist() == [True, True, False, True]
