"""Inference-scaling fits: coverage as an exponentiated power law of k.

The paper (Brown et al. 2024, appendix) models ``log c(k) = a * k**b`` (a < 0, b < 0, so
coverage rises towards 1) and fits it on log-spaced k. ``fit_power_law`` starts from the
straight line ``log(-log c) = log(-a) + b log k`` and refines by least squares on log c.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import curve_fit

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.estimators import coverage_at_k


def power_law(k: ArrayLike, a: float, b: float) -> np.ndarray:
    """Coverage predicted at k: ``exp(a * k**b)``."""
    return np.exp(a * np.power(np.asarray(k, dtype=np.float64), b))


def fit_power_law(ks: Sequence[float], coverages: Sequence[float]) -> tuple[float, float]:
    """(a, b) of ``log c(k) = a * k**b`` fitted to coverages strictly between 0 and 1."""
    k = np.asarray(ks, dtype=np.float64)
    c = np.asarray(coverages, dtype=np.float64)
    usable = (c > 0) & (c < 1) & (k > 0)
    if usable.sum() < 2:
        raise MonkeysError(
            "a power-law fit needs coverage strictly between 0 and 1 at two or more k values; "
            "draw more samples or report more k values (--ks)"
        )
    k, log_c = k[usable], np.log(c[usable])
    b0, intercept = np.polyfit(np.log(k), np.log(-log_c), 1)
    try:
        (a, b), _ = curve_fit(
            lambda x, a, b: a * np.power(x, b), k, log_c, p0=(-np.exp(intercept), b0), maxfev=10_000
        )
    except RuntimeError:  # least squares did not converge: keep the straight-line fit
        a, b = -np.exp(intercept), b0
    return float(a), float(b)


def bootstrap_band(
    n: Sequence[int],
    c: Sequence[int],
    ks: Sequence[int],
    at: Sequence[float],
    iters: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise band of the fitted curve at ``at``, resampling problems with replacement.

    ``n[i], c[i]`` are problem i's samples and correct samples; each bootstrap replicate
    recomputes coverage@ks over resampled problems, refits and predicts at ``at``.
    """
    n_arr, c_arr = np.asarray(n), np.asarray(c)
    table = coverage_at_k(n_arr[:, None], c_arr[:, None], np.asarray(ks)[None, :])
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(iters):
        pick = rng.integers(0, len(n_arr), size=len(n_arr))
        try:
            curves.append(power_law(at, *fit_power_law(ks, table[pick].mean(axis=0))))
        except MonkeysError:
            continue  # a degenerate resample (all 0 or all 1) has no fit
    if not curves:
        raise MonkeysError("no bootstrap resample could be fitted; coverage is all 0 or all 1")
    tail = (1 - level) / 2
    return np.quantile(curves, tail, axis=0), np.quantile(curves, 1 - tail, axis=0)
