"""How sure is a score, and is one model really better than another on the same test set?

Two questions a person asks when two runs print 0.9902 and 0.9895:
- *How wide is the uncertainty of each?* :func:`wilson_interval` for accuracy (a proportion of independent test
  images) and :func:`bootstrap_interval` for macro F1 (no closed form), both at 95 % by default.
- *Do the two differ?* :func:`mcnemar`, the paired test on the images where exactly one model is right. It uses
  only the two discordant counts, which is why it needs both models scored on the same images in the same order.
  Exact binomial for small counts (the statsmodels default), chi-square with continuity correction otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

#: below this many discordant images the exact binomial test is used (as statsmodels' ``exact=True``)
EXACT_BELOW = 25


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: unlike the normal approximation it stays inside [0, 1] and is
    still right at 99.9 % accuracy, where most glyphlab scores sit."""
    if total <= 0:
        raise ValueError("an interval needs at least one test image")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of macro F1 over test images (seeded: the same inputs give the same bounds)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    rng = np.random.default_rng(seed)
    scores = np.empty(resamples)
    pair = y_true * n_classes + y_pred  # each image's cell of the confusion matrix
    for start in range(0, resamples, 100):  # 100 resamples at a time: one bincount each, no per-sample Python
        k = min(100, resamples - start)
        idx = rng.integers(0, len(y_true), (k, len(y_true)))
        cells = pair[idx] + (np.arange(k) * n_classes * n_classes)[:, None]
        cm = np.bincount(cells.ravel(), minlength=k * n_classes * n_classes).reshape(k, n_classes, n_classes)
        tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
        denom = cm.sum(axis=1) + cm.sum(axis=2)  # 2·TP + FP + FN per class
        # as scikit-learn's f1_score(average="macro", zero_division=0) over all n_classes labels
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        scores[start : start + k] = f1.mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(scores, alpha)), float(np.quantile(scores, 1 - alpha))


@dataclass(frozen=True)
class McNemar:
    """The paired comparison of two models: ``only_a`` images only A got right, ``only_b`` only B."""

    only_a: int
    only_b: int
    statistic: float
    pvalue: float
    method: str  # "exact" or "chi2"


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, exact: bool | None = None) -> McNemar:
    """McNemar's test on two boolean vectors (was each test image classified right by A, by B).

    ``exact=None`` chooses the exact binomial test when fewer than :data:`EXACT_BELOW` images are discordant.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs both models scored on the same images: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if exact is None:
        exact = n < EXACT_BELOW
    if n == 0:
        return McNemar(only_a, only_b, 0.0, 1.0, "exact" if exact else "chi2")
    if exact:
        return McNemar(
            only_a,
            only_b,
            float(min(only_a, only_b)),
            float(stats.binomtest(min(only_a, only_b), n, 0.5).pvalue),
            "exact",
        )
    chi2 = (abs(only_a - only_b) - 1) ** 2 / n
    return McNemar(only_a, only_b, float(chi2), float(stats.chi2.sf(chi2, 1)), "chi2")
