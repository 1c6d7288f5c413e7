"""Confidence intervals and McNemar's test agree with statsmodels' own implementations on the same counts."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from glyphlab.evaluation.significance import bootstrap_interval, mcnemar, wilson_interval


def _vectors(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither, bool)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither, bool)
    order = np.random.default_rng(0).permutation(len(a))  # the test must not depend on the order of images
    return a[order], b[order]


@pytest.mark.parametrize(
    "counts", [(9000, 7, 2, 50), (400, 0, 5, 3), (100, 12, 11, 7), (5000, 60, 31, 100), (10, 0, 0, 1)]
)
def test_mcnemar_matches_statsmodels(counts):
    both, only_a, only_b, neither = counts
    a, b = _vectors(*counts)
    table = [[both, only_a], [only_b, neither]]
    exact = mcnemar(a, b, exact=True)
    assert (exact.only_a, exact.only_b) == (only_a, only_b)
    assert exact.pvalue == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-9)
    if only_a + only_b:
        chi2 = mcnemar(a, b, exact=False)
        ref = sm_mcnemar(table, exact=False, correction=True)
        assert chi2.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert chi2.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_mcnemar_chooses_exact_for_few_discordant_images():
    a, b = _vectors(900, 7, 2, 10)
    assert mcnemar(a, b).method == "exact"
    a, b = _vectors(900, 70, 20, 10)
    assert mcnemar(a, b).method == "chi2"


def test_mcnemar_refuses_different_test_sets():
    with pytest.raises(ValueError, match="same images"):
        mcnemar(np.ones(10, bool), np.ones(11, bool))


@pytest.mark.parametrize("correct,total", [(9902, 10000), (450, 450), (0, 30), (37, 50)])
def test_wilson_matches_statsmodels(correct, total):
    low, high = wilson_interval(correct, total)
    ref_low, ref_high = proportion_confint(correct, total, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)


def test_bootstrap_interval_is_seeded_and_brackets_the_score():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.85, y, rng.integers(0, 4, 400))
    first = bootstrap_interval(y, pred, 4, resamples=300, seed=3)
    assert first == bootstrap_interval(y, pred, 4, resamples=300, seed=3)
    from sklearn.metrics import f1_score

    score = f1_score(y, pred, average="macro")
    assert first[0] < score < first[1] and first[1] - first[0] < 0.15


def test_bootstrap_macro_f1_equals_scikit_learn_on_each_resample():
    """The vectorised resampling computes exactly scikit-learn's macro F1 (absent classes counting 0)."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 60)
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 5, 60))
    low, high = bootstrap_interval(y, pred, 5, confidence=0.0, resamples=1, seed=7)  # one resample: low == high
    idx = np.random.default_rng(7).integers(0, 60, (1, 60))[0]
    assert low == high == pytest.approx(f1_score(y[idx], pred[idx], labels=range(5), average="macro", zero_division=0))
