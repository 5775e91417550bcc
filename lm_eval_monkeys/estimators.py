"""Unbiased estimators of repeated-sampling metrics from per-problem counts.

Every function here takes counts (samples drawn, samples correct, answer-class sizes),
never raw text, so metrics can be recomputed from a per-problem summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln
from scipy.stats import hypergeom

from lm_eval_monkeys.errors import MonkeysError

# Probability mass below this is dropped from the majority-vote recursion; the answer
# stays exact to ~1e-12 absolute (documented in README).
_NEGLIGIBLE = 1e-15


def default_ks(n: int) -> list[int]:
    """Powers of two up to ``n``, plus ``n`` itself: the k values reported by default."""
    if n < 1:
        raise MonkeysError(f"k must be at least 1, got {n}; pass --repeats K with K >= 1")
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return ks if ks[-1] == n else [*ks, n]


def coverage_at_k(n: ArrayLike, c: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """P(at least one of k samples drawn without replacement from n is correct).

    The unbiased pass@k estimator ``1 - C(n-c, k) / C(n, k)``, computed in log space so
    it is exact to ~1e-11 for n up to 10^5. Arguments broadcast: pass ``n, c`` of shape
    ``(problems, 1)`` and ``k`` of shape ``(ks,)`` to get a ``(problems, ks)`` table.
    """
    n_arr, c_arr, k_arr = np.broadcast_arrays(
        np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64), np.asarray(k, dtype=np.int64)
    )
    if np.any(k_arr < 1) or np.any(k_arr > n_arr) or np.any((c_arr < 0) | (c_arr > n_arr)):
        raise MonkeysError(
            "coverage_at_k needs 1 <= k <= n and 0 <= c <= n; "
            "request only k values up to the number of samples drawn"
        )
    wrong = n_arr - c_arr
    certain = wrong < k_arr  # every k-subset contains a correct sample
    safe_wrong = np.where(certain, k_arr, wrong).astype(np.float64)
    log_ratio = (
        gammaln(safe_wrong + 1)
        - gammaln(safe_wrong - k_arr + 1)
        - gammaln(n_arr + 1.0)
        + gammaln(n_arr - k_arr + 1.0)
    )
    # c = 0 is exactly 0; clipping removes log-gamma rounding of order 1e-16 elsewhere.
    result = np.where(certain, 1.0, np.where(c_arr == 0, 0.0, np.clip(-np.expm1(log_ratio), 0, 1)))
    return float(result) if result.ndim == 0 else result


def majority_at_k(
    class_sizes: Sequence[int], class_correct: Sequence[bool], n_invalid: int, k: int
) -> float:
    """Expected accuracy of a majority vote over a uniformly random k-subset.

    ``class_sizes[i]`` samples gave an answer in equivalence class ``i``; ``n_invalid``
    samples gave no parsable answer and cast no vote. The most-voted class wins; a tie
    among t classes picks each with probability 1/t; a subset with no valid votes scores 0.

    Exact: the subset's class counts follow a multivariate hypergeometric law, drawn one
    class at a time (each a univariate hypergeometric given the draws left). For each
    count x of a correct class we track the distribution of (draws left, classes tied at
    x) through the classes that could reach x; classes smaller than x cannot matter.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    correct = np.asarray(class_correct, dtype=bool)
    n = int(sizes.sum()) + int(n_invalid)
    if not 1 <= k <= n:
        raise MonkeysError(f"majority@{k} needs 1 <= k <= {n} (the samples drawn)")
    if k == n:
        return _full_vote(sizes, correct)
    return float(
        sum(
            _win_probability(int(sizes[g]), np.delete(sizes, g), n, k)
            for g in np.flatnonzero(correct & (sizes > 0))
        )
    )


def _full_vote(sizes: np.ndarray, correct: np.ndarray) -> float:
    """Majority vote over all samples: fair share of the correct classes among the tied top."""
    if sizes.size == 0 or sizes.max() == 0:
        return 0.0
    top = sizes == sizes.max()
    return float((top & correct).sum() / top.sum())


def _win_probability(m_gold: int, others: np.ndarray, n: int, k: int) -> float:
    """P(a class of size m_gold wins the vote of a random k-subset), ties split fairly."""
    xs = np.arange(1, min(m_gold, k) + 1)
    p_xs = hypergeom(n, m_gold, k).pmf(xs)
    return sum(
        p_x * _no_rival_beats(int(x), others[others >= x], n - m_gold, k - int(x))
        for x, p_x in zip(xs, p_xs, strict=True)
        if p_x > _NEGLIGIBLE
    )


def _no_rival_beats(x: int, rivals: np.ndarray, pool: int, draws: int) -> float:
    """E[1/(1+ties)] that no rival class exceeds x, given `draws` taken from `pool`.

    State: ``prob[s, t]`` = P(s draws left, t rivals tied at x so far). Draws not spent on
    rivals fall on classes smaller than x or invalid samples, which cannot win.
    """
    if rivals.size == 0:
        return 1.0
    ties = rivals.size + 1
    prob = np.zeros((draws + 1, ties))
    prob[draws, 0] = 1.0
    for m in rivals:
        live = np.flatnonzero(prob.sum(axis=1) > _NEGLIGIBLE)
        if live.size == 0:
            return 0.0
        # pmf[y, j]: this rival receives y of the live[j] remaining draws (y <= x only).
        ys = _plausible_counts(live, pool, int(m), x)
        pmf = np.exp(_log_hypergeom_pmf(ys[:, None], pool, int(m), live[None, :]))
        rows, js = np.nonzero(pmf > _NEGLIGIBLE)
        ys = ys[rows]
        target = live[js] - ys
        weight = pmf[rows, js][:, None] * prob[live[js]]
        # A rival landing exactly on x adds one tie: shift its mass one column right.
        # (The last column is still empty here, so the shift never wraps into the next row.)
        flat = target[:, None] * ties + np.arange(ties)[None, :] + (ys == x)[:, None]
        prob = np.bincount(flat.ravel(), weight.ravel(), minlength=prob.size)[: prob.size]
        prob = prob.reshape(draws + 1, ties)
        pool -= int(m)
    # Draws left over fall on the non-rival pool; impossible states already have mass 0.
    return float((prob / (1 + np.arange(ties))).sum())


def _plausible_counts(draws: np.ndarray, pool: int, m: int, cap: int) -> np.ndarray:
    """Counts in [0, cap] a class of size m can receive with non-negligible probability
    from any of `draws` taken out of `pool` (12 standard deviations around the means)."""
    p = m / pool
    spread = 12 * np.sqrt(draws.max() * p * (1 - p)) + 1
    lo = max(0, int(draws.min() * p - spread))
    hi = min(cap, int(draws.max() * p + spread) + 1)
    return np.arange(lo, hi + 1)


def _log_hypergeom_pmf(y: np.ndarray, pool: int, m: int, draws: np.ndarray) -> np.ndarray:
    """log P(Y = y) for Y ~ Hypergeometric(pool, m successes, draws); -inf off support."""
    y, draws = np.broadcast_arrays(y, draws)
    ok = (y >= 0) & (y <= m) & (y <= draws) & (draws - y <= pool - m)
    yy, dd = np.where(ok, y, 0), np.where(ok, draws, 0)
    lf = _log_factorials(pool)
    out = (
        lf[m]
        - lf[yy]
        - lf[m - yy]
        + lf[pool - m]
        - lf[dd - yy]
        - lf[pool - m - dd + yy]
        - lf[pool]
        + lf[dd]
        + lf[pool - dd]
    )
    return np.where(ok, out, -np.inf)


_LOG_FACTORIALS = np.zeros(1)


def _log_factorials(up_to: int) -> np.ndarray:
    """Table of log(i!) for i <= up_to, grown on demand (indexing beats gammaln calls)."""
    global _LOG_FACTORIALS
    if _LOG_FACTORIALS.size <= up_to:
        _LOG_FACTORIALS = gammaln(np.arange(2 * up_to + 2, dtype=np.float64) + 1)
    return _LOG_FACTORIALS
