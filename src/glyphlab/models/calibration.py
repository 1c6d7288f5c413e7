"""Temperature scaling (Guo et al. 2017): one number T that divides a network's logits before the softmax.

Modern networks are over-confident: their top-class probability is higher than their accuracy. Dividing
the logits by a T > 1 fitted on held-out data (the validation split, never the test split) softens every
prediction by the same factor, which lowers the calibration error without changing any argmax, so the
accuracy is exactly the same. T is chosen to minimise the validation negative log-likelihood.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from glyphlab.errors import ConfigError

CALIBRATION_FILE = "calibration.json"
METHODS = ("none", "temperature")
#: the search range of log T: T in [e^-4, e^4] covers every network we have seen (typical T is 1-3)
LOG_T_BOUNDS = (-4.0, 4.0)


def check_method(method: Any) -> str:
    if method not in METHODS:
        raise ConfigError(f"calibrate={method!r} is not known; use one of: {', '.join(METHODS)}")
    return str(method)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / float(temperature), axis=1)
    return float(-logp[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The T minimising the NLL of (logits, labels), with the NLL before and after (a bounded 1-D search on log T)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ConfigError(
            f"temperature scaling needs (N, C) logits and N labels, got {logits.shape} and {labels.shape}"
        )
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    t = float(np.exp(res.x))
    return {
        "temperature": t,
        "nll_before": nll(logits, labels, 1.0),
        "nll_after": nll(logits, labels, t),
        "n": int(len(labels)),
    }
