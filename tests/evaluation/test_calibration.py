"""Expected calibration error, the reliability diagram and temperature scaling."""

import numpy as np
import pytest
from PIL import Image
from scipy.special import softmax

from glyphlab.evaluation.calibration import (
    calibration_summary,
    expected_calibration_error,
    plot_reliability,
    reliability,
)
from glyphlab.models.calibration import fit_temperature


def _at_confidence(conf: float, n: int, n_right: int, n_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """n predictions of class 0 with top probability ``conf``, of which ``n_right`` are right."""
    proba = np.full((n, n_classes), (1 - conf) / (n_classes - 1))
    proba[:, 0] = conf
    labels = np.ones(n, dtype=np.int64)
    labels[:n_right] = 0
    return proba, labels


def test_ece_is_zero_when_confidence_equals_accuracy():
    p1, y1 = _at_confidence(0.6, 50, 30)
    p2, y2 = _at_confidence(0.9, 100, 90)
    proba, labels = np.concatenate([p1, p2]), np.concatenate([y1, y2])
    assert expected_calibration_error(labels, proba) == pytest.approx(0.0, abs=1e-12)
    bins = reliability(labels, proba)
    assert [b["count"] for b in bins] == [50, 100]


def test_ece_of_an_overconfident_model_is_its_gap():
    proba, labels = _at_confidence(0.99, 100, 70)  # 99 % sure, 70 % right
    assert expected_calibration_error(labels, proba) == pytest.approx(0.29)
    s = calibration_summary(labels, proba)
    assert s["mce"] == pytest.approx(0.29) and s["mean_confidence"] == pytest.approx(0.99)


def _overconfident(n: int, seed: int, factor: float = 3.0):
    """Labels drawn from softmax(z) (so softmax(z) is calibrated); the model reports logits factor * z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 5))
    p = softmax(z, axis=1)
    labels = np.array([rng.choice(5, p=row) for row in p])
    return factor * z, labels


def test_temperature_scaling_lowers_the_ece_and_keeps_the_argmax():
    logits, labels = _overconfident(4000, seed=0)
    fit = fit_temperature(logits[:2000], labels[:2000])
    assert 2.4 < fit["temperature"] < 3.6  # the planted factor is 3
    assert fit["nll_after"] < fit["nll_before"]
    before = softmax(logits[2000:], axis=1)
    after = softmax(logits[2000:] / fit["temperature"], axis=1)
    ece_before = expected_calibration_error(labels[2000:], before)
    ece_after = expected_calibration_error(labels[2000:], after)
    assert ece_after < 0.5 * ece_before and ece_before > 0.1
    np.testing.assert_array_equal(before.argmax(axis=1), after.argmax(axis=1))


def test_reliability_diagram_is_drawn(tmp_path):
    logits, labels = _overconfident(500, seed=1)
    path = plot_reliability(labels, softmax(logits, axis=1), tmp_path / "r.png", "synthetic")
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 400
