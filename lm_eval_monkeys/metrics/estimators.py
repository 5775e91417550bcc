"""Unbiased estimators of repeated-sampling metrics from per-problem counts.

Every function here takes counts (samples drawn, samples correct, answer-class sizes),
never raw text, so metrics can be recomputed from a per-problem summary.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations
from math import comb
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import fftconvolve
from scipy.special import gammaln
from scipy.stats import hypergeom, norm

from lm_eval_monkeys.errors import MonkeysError

# Probability majority@k may neglect per correct class and k in each of its four kinds of
# shortcut (rare vote counts, pairs settled by Hoeffding's bound, rivals that cannot reach
# a count or surely beat it, convolution edges): 4e-14 in all, exact to 1e-12 (README).
_BUDGET = 1e-14
# 2-d convolutions up to this many cell products run directly (exact sums), larger by FFT
# (absolute error ~1e-16 per cell, far inside the budget once summed).
_DIRECT_CELLS = 20_000_000


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
    n_arr, c_arr, k_arr = _counts(n, c, k, "coverage_at_k")
    # c = 0 gives a log ratio of exactly 0 (the same log-gamma terms cancel): coverage 0
    # (subtracted from 0.0, not negated, so it is +0.0).
    logged = 0.0 - np.expm1(_log_choose_ratio_of(n_arr - c_arr, n_arr, k_arr))
    # At k = 1 exactly c / n, the figure majority@1 gives too (equal to the last bit).
    return _scalar_or_array(np.where(k_arr == 1, c_arr / n_arr, logged))


def majority_at_k(
    class_sizes: Sequence[int], class_correct: Sequence[bool], n_invalid: int, k: int
) -> float:
    """Expected accuracy of a majority vote over a uniformly random k-subset.

    ``class_sizes[i]`` samples gave an answer in equivalence class ``i``; ``n_invalid``
    samples gave no parsable answer and cast no vote. The most-voted class wins; a tie
    among t classes picks each with probability 1/t; a subset with no valid votes scores 0.

    Exact to 1e-12: for each vote count x of a correct class, the chance that no rival
    gets more than x votes, shared among the t rivals tied at x. Given x, the other
    k - x draws follow a multivariate hypergeometric law, which equals independent
    binomials Bin(size, p) conditioned on their sum (any p; p = draws / samples left):
    rivals become independent kernels convolved into the distribution of (ties, votes
    they took), weighed by the remaining samples' binomial. Closed forms: a class
    bigger than every rival wins when it reaches more votes than the largest rival can
    take; at x = 1 rivals tie with each vote they get (binomials per rival size, which
    covers all-singleton and one-class-plus-singletons problems); a rival beyond doubt
    by Hoeffding's bound settles a vote count. Each kind of neglected probability (vote
    counts, rivals and states below it) is bounded by ``_BUDGET`` per class and k.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    correct = np.asarray(class_correct, dtype=bool)
    n = int(sizes.sum()) + int(n_invalid)
    if not 1 <= k <= n:
        raise MonkeysError(f"majority@{k} needs 1 <= k <= {n} (the samples drawn)")
    if k == n:
        return _full_vote(sizes, correct)
    if k == 1:  # one vote: its class wins; c / n as coverage@1 computes it
        return float(int(sizes[correct].sum()) / n)
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
    others = others[others > 0]
    decided = _decided(m_gold, others, n, k)
    if decided is not None:
        return decided
    pool = n - m_gold
    xs = np.arange(max(1, k - pool), min(m_gold, k) + 1)
    p_xs = np.exp(_log_hypergeom(n, m_gold, k, xs)).astype(np.float64)
    largest = int(others.max()) if others.size else 0
    sure = xs > largest  # no rival can reach x votes
    contested = ~sure & (p_xs > _BUDGET / xs.size)
    budget = _BUDGET / max(1, int(contested.sum()))
    big = np.sort(others[others >= 2])[::-1]
    singles = int(others.size - big.size)
    total = float(p_xs[sure].sum())
    for x, p_x in zip(xs[contested].tolist(), p_xs[contested].tolist(), strict=True):
        total += p_x * _win_given(x, k - x, pool, big, singles, budget / p_x)
    return total


def _decided(m_gold: int, others: np.ndarray, n: int, k: int) -> float | None:
    """0 or 1 when Hoeffding's bound (which holds for draws without replacement) puts the
    outcome beyond doubt to within ``_BUDGET``; None when the computation is needed.

    For a rival r, D = (gold votes) - (r's votes) sums k draws valued in [-1, 1], so
    P(D - E[D] <= -t) <= exp(-t^2 / 2k): a large expected lead settles the pair.
    """
    lead = k * (m_gold - others.astype(np.float64)) / n
    bound = np.exp(-(lead**2) / (2 * k))
    if np.any((lead < 0) & (bound < _BUDGET)):
        return 0.0  # a rival out-votes gold except with negligible probability
    if others.size and np.all(lead > 0) and bound.sum() < _BUDGET:
        return 1.0  # gold out-votes every rival except with negligible probability
    return None


def _win_given(x: int, draws: int, pool: int, big: np.ndarray, singles: int, tol: float) -> float:
    """E[1/(1 + ties) if no rival beats x] for ``draws`` taken from the ``pool`` of samples
    outside the class; ``big`` are rival sizes >= 2, ``singles`` rivals of size 1.
    Neglects at most ``tol``."""
    if draws == 0:
        return 1.0
    rivals = big[big >= x]
    mean = draws * rivals / pool
    # Hoeffding: P(Y >= x) <= exp(-2 (x - E Y)^2 / draws) above the mean, and the mirror.
    if np.any((mean > x) & (np.exp(-2 * (mean - x) ** 2 / draws) <= tol / 2)):
        return 0.0  # this rival beats x except with negligible probability
    reach = np.where(mean < x, np.exp(-2 * (x - mean) ** 2 / draws), 1.0)
    rivals = rivals[reach > tol / (2 * rivals.size + 2)]  # rest: never reach x, join the pool
    tying_singles = singles if x == 1 else 0
    if rivals.size == 0 and tying_singles == 0:
        return 1.0
    if draws == pool:  # every sample is drawn: votes are the class sizes
        tied = int((rivals == x).sum()) + tying_singles
        return 0.0 if np.any(rivals > x) else 1.0 / (1 + tied)
    p = draws / pool
    rest = pool - int(rivals.sum()) - tying_singles
    log_rest = _log_binom_pmf(rest, p, draws - np.arange(draws + 1))
    log_rest -= _log_binom_pmf(pool, p, np.array([draws]))[0]
    weight = np.exp(log_rest).astype(np.float64)  # weight[u]: rivals took u of the draws
    cut = tol / (2 * (rivals.size + 2) * max(1.0, float(weight.max())))
    if x == 1:  # ties and votes taken coincide: the state is its diagonal
        ties, offset = _votes_at_one(rivals, tying_singles, p, cut)
        u = offset + np.arange(max(0, min(ties.size, draws + 1 - offset)))
        return float((ties[: u.size] * weight[u] / (1 + u)).sum())
    state, t0, u0 = _rival_votes(x, rivals, p, cut)
    u = u0 + np.arange(max(0, min(state.shape[1], draws + 1 - u0)))
    per_tie = state[:, : u.size] @ weight[u]
    return float((per_tie / (1 + t0 + np.arange(state.shape[0]))).sum())


def _votes_at_one(rivals: np.ndarray, singles: int, p: float, cut: float) -> tuple[np.ndarray, int]:
    """At x = 1 every vote a rival gets ties with gold (two beat it): the distribution
    (unnormalised, from ``offset`` on) of the number of ties, each rival Bin(size, p) kept
    at 0 or 1 votes. c rivals of one size give (a + b z)^c = (a + b)^c Bin(c, b / (a + b))."""
    dist, offset = np.ones(1), 0
    sizes, counts = np.unique(rivals, return_counts=True)
    groups = [(int(s), int(c)) for s, c in zip(sizes, counts, strict=True)]
    if singles:
        groups.append((1, singles))
    log_p, log_q = np.log(np.longdouble(p)), np.log1p(-np.longdouble(p))
    for size, count in groups:
        log_none, log_one = size * log_q, np.log(np.longdouble(size)) + log_p + (size - 1) * log_q
        log_kept = np.logaddexp(log_none, log_one)
        share = float(np.exp(log_one - log_kept))
        group = np.exp(count * log_kept + _log_binom_pmf(count, share, np.arange(count + 1)))
        trimmed, _, lo = _trim(np.convolve(dist, group.astype(np.float64))[None, :], cut)
        if trimmed.size == 0:
            return np.zeros(0), 0  # every state was negligible
        dist, offset = trimmed[0], offset + lo
    return dist, offset


def _rival_votes(x: int, rivals: np.ndarray, p: float, cut: float) -> tuple[np.ndarray, int, int]:
    """The joint distribution ``state[t, u]`` (unnormalised, window from ``(t0, u0)``) of
    ties at x and votes taken by rivals that each stay at or below x, every rival an
    independent Bin(size, p): one 2-d convolution per rival size, the largest groups
    first. Each size drops at most ``2 cut`` of mass (its kernel's edges and the state's)."""
    state, t0, u0 = np.ones((1, 1)), 0, 0
    sizes, counts = np.unique(rivals, return_counts=True)
    for size, count in sorted(zip(sizes.tolist(), counts.tolist(), strict=True), key=_by_count):
        if state.size == 0:
            break  # every state was negligible
        votes = np.exp(_log_binom_pmf(size, p, np.arange(x + 1))).astype(np.float64)
        group, gt0, gu0 = _group_votes(votes, count, cut)
        if group.size == 0:
            return group, t0, u0
        state, dt, du = _trim(_convolve_2d(state, group), cut)
        t0, u0 = t0 + gt0 + dt, u0 + gu0 + du
    return state, t0, u0


def _convolve_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The full 2-d convolution of two non-negative arrays: exact sums in as few numpy calls
    as the shapes allow (rows against rows, or shifted copies of the larger array), by FFT
    only when the products are too many (absolute error ~1e-16 per cell, clipped at 0)."""
    if a.size * b.size > _DIRECT_CELLS:
        return np.maximum(fftconvolve(a, b), 0.0)
    small, big = (a, b) if a.size <= b.size else (b, a)
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    if a.shape[0] * b.shape[0] <= small.size:  # few rows: one C-level convolution per pair
        for i, row_a in enumerate(a):
            for j, row_b in enumerate(b):
                out[i + j] += np.convolve(row_a, row_b)
    else:
        for i, j in zip(*np.nonzero(small), strict=True):
            out[i : i + big.shape[0], j : j + big.shape[1]] += small[i, j] * big
    return out


def _by_count(size_count: tuple[int, int]) -> int:
    return -size_count[1]


def _group_votes(votes: np.ndarray, count: int, cut: float) -> tuple[np.ndarray, int, int]:
    """``group[j, u]`` (window from ``(j0, u0)``): ``count`` rivals of one size, each with
    ``votes[y]`` = P(y votes) for y <= x (more beats gold), j of them tied at x, u votes in
    all. Exchangeable: (b(z) + t w z^x)^c = kept^c Bin(c, t/kept)(j) b̂^(*(c-j)), with b the
    votes below x, t the tie, kept = b(1) + t and b̂ = b / b(1); the powers of b̂ by
    squaring, then one factor at a time across the window of j. Drops at most ``cut``."""
    x = votes.size - 1
    below, tie = votes[:x], float(votes[x])
    mass = float(below.sum())
    if mass + tie == 0.0:
        return np.zeros((0, 0)), 0, 0
    share = tie / (mass + tie)
    log_j = count * np.log(np.longdouble(mass + tie)) + _log_binom_pmf(
        count, share, np.arange(count + 1)
    )
    ties = np.exp(log_j).astype(np.float64)
    steps = 2 * count.bit_length() + 4
    j_lo, j_hi = _edges(ties, cut / 4)
    if j_lo == j_hi:
        return np.zeros((0, 0)), 0, 0
    if mass == 0.0:  # every rival ties (or beats): only j = count remains
        return np.array([[ties[count]]]), count, count * x
    unit = below / mass
    power, offset = _power(unit, count - (j_hi - 1), cut / (2 * steps))
    rows: list[tuple[int, np.ndarray, int]] = []  # (j, votes below x of the others, offset)
    for j in range(j_hi - 1, j_lo - 1, -1):
        rows.append((j, ties[j] * power, offset + j * x))
        if j > j_lo:
            trimmed, lo = _trim_1d(np.convolve(power, unit), cut / (2 * steps))
            power, offset = trimmed, offset + lo
    u_lo = min(start for _, _, start in rows)
    u_hi = max(start + row.size for _, row, start in rows)
    group = np.zeros((j_hi - j_lo, u_hi - u_lo))
    for j, row, start in rows:
        group[j - j_lo, start - u_lo : start - u_lo + row.size] = row
    return group, j_lo, u_lo


def _power(unit: np.ndarray, exponent: int, cut: float) -> tuple[np.ndarray, int]:
    """``unit`` convolved with itself ``exponent`` times (window from ``offset``), by
    squaring; each product's edges trimmed by at most ``cut``."""
    result, offset = np.ones(1), 0
    base, base_offset = unit, 0
    while exponent:
        if exponent & 1:
            result, lo = _trim_1d(np.convolve(result, base), cut)
            offset += base_offset + lo
        exponent >>= 1
        if exponent:
            base, lo = _trim_1d(np.convolve(base, base), cut)
            base_offset = 2 * base_offset + lo
    return result, offset


def _trim_1d(values: np.ndarray, cut: float) -> tuple[np.ndarray, int]:
    lo, hi = _edges(values, cut / 2)
    return values[lo:hi], lo


def _trim(state: np.ndarray, cut: float) -> tuple[np.ndarray, int, int]:
    """``state`` without edge rows and columns holding at most ``cut`` of mass in all, and
    the offsets of what is kept."""
    r_lo, r_hi = _edges(state.sum(axis=1), cut / 4)
    c_lo, c_hi = _edges(state.sum(axis=0), cut / 4)
    return state[r_lo:r_hi, c_lo:c_hi], r_lo, c_lo


def _edges(mass: np.ndarray, cut: float) -> tuple[int, int]:
    """The window of ``mass`` left after dropping at most ``cut`` from each end."""
    lo = int(np.searchsorted(np.cumsum(mass), cut, side="right"))
    hi = mass.size - int(np.searchsorted(np.cumsum(mass[::-1]), cut, side="right"))
    return (lo, hi) if lo < hi else (0, 0)


def _log_binom_pmf(size: int, p: float, ys: np.ndarray) -> np.ndarray:
    """log P(Y = y) for Y ~ Bin(size, p), in extended precision; -inf off the support."""
    ok = (ys >= 0) & (ys <= size)
    y = np.where(ok, ys, 0)
    lf = _log_factorials(size)
    p_ld = np.longdouble(p)
    with np.errstate(divide="ignore"):
        out = lf[size] - lf[y] - lf[size - y] + y * np.log(p_ld) + (size - y) * np.log1p(-p_ld)
    return np.where(ok, out, -np.inf)


def _log_hypergeom(n: int, m: int, k: int, xs: np.ndarray) -> np.ndarray:
    """log P(X = x) for X ~ Hypergeometric(n samples, m in the class, k drawn), extended
    precision; the xs must lie in the support."""
    lf = _log_factorials(n)
    return (
        lf[m]
        - lf[xs]
        - lf[m - xs]
        + lf[n - m]
        - lf[k - xs]
        - lf[n - m - k + xs]
        - lf[n]
        + lf[k]
        + lf[n - k]
    )


def _log_factorials(up_to: int) -> np.ndarray:
    """log(i!) for i <= up_to (at least), in extended precision (numpy's longdouble); one
    table serves every n up to 16,383, built once (about 10 ms)."""
    return _log_factorial_table(1 << max(14, int(up_to).bit_length()))


@lru_cache(maxsize=4)
def _log_factorial_table(size: int) -> np.ndarray:
    """log(i!) for i < size. Stirling's series for i >= 30 (its next term is below 1e-19),
    logs of exact factorials below: accurate to the last bits of a longdouble, where
    float64 log-gamma values near 8e4 (n = 10,000) carry errors of ~1e-11."""
    z = np.arange(1, size + 1, dtype=np.longdouble)  # z = i + 1: log(i!) = log Gamma(z)
    half_log_2pi = np.log(2 * np.longdouble("3.14159265358979323846264338327950288")) / 2
    series = 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5) - 1 / (1680 * z**7)
    table = (z - 0.5) * np.log(z) - z + half_log_2pi + series + 1 / (1188 * z**9)
    small = min(size, 30)
    table[:small] = [np.log(np.longdouble(math.factorial(i))) for i in range(small)]
    table.setflags(write=False)
    return table


# -- reward-model selection ----------------------------------------------------------------

# Subsets sampled per problem when RM-weighted majority has no tractable exact form, and
# the largest enumeration (subsets x max(k, classes) cells) done exactly instead.
RM_MAJORITY_SUBSETS = 200
_MAX_ENUMERATED_CELLS = 2_000_000
_MC_SEED = 20240731
# Class weights this close (relatively) to the top one count as tied: summing the same
# weights in another order moves the last bits, which must not break a tie.
_TIE_TOLERANCE = 1e-9


class RewardEstimate(NamedTuple):
    """Per-k values and their Monte-Carlo standard errors (0.0 where computed exactly, or
    where every sampled subset gave the same credit)."""

    value: np.ndarray
    stderr: np.ndarray


def rm_best_at_k(rewards: ArrayLike, correct: ArrayLike, ks: Sequence[int]) -> np.ndarray:
    """Expected correctness of the highest-reward sample of a uniformly random k-subset.

    Samples tied at the subset's top reward share the credit (as if one of them were
    picked at random). Exact: with the samples sorted by reward, a reward value shared by
    m samples, b of them ranked strictly below, tops a random k-subset with probability
    ``(C(b+m, k) - C(b, k)) / C(n, k)``, and then the pick among its tied samples is
    uniform. ``C(a, k) / C(n, k)`` is taken in log space as a running sum of
    ``log1p(-k/j)``, exact to ~1e-15 for n up to 10,000 (log-gamma differences lose
    ~2e-11 there). Returns one value per k in ``ks``.
    """
    r = np.asarray(rewards, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    ks_arr = _check_rewards(r, ok.shape, ks, "rm_best")
    values, group, sizes = np.unique(r, return_inverse=True, return_counts=True)
    share = np.bincount(group, weights=ok, minlength=values.size) / sizes
    above = np.cumsum(sizes)
    log_top = _log_choose_ratio(r.size, tuple(ks_arr.tolist()))
    p_top = np.exp(log_top[:, above]) - np.exp(log_top[:, above - sizes])
    return p_top @ share


def rm_majority_at_k(
    rewards: ArrayLike,
    classes: ArrayLike,
    class_correct: Sequence[bool],
    ks: Sequence[int],
    subsets: int = RM_MAJORITY_SUBSETS,
) -> RewardEstimate:
    """Expected accuracy of a reward-weighted majority vote over a random k-subset.

    Sample i votes for answer class ``classes[i]`` (-1: no parsable answer, no vote) with
    weight ``vote_weights(rewards)[i]``; the class with the largest total weight wins, a
    tie among t classes counts 1/t, a subset without votes scores 0.

    Exact where that is tractable: k = 1, k = n, problems without a correct vote or with
    a single voting class, and small cases (all k-subsets enumerated). Otherwise a
    seeded Monte-Carlo estimate over ``subsets`` uniformly random k-subsets, the nested
    prefixes of random permutations (so one permutation serves every k), seeded by the
    problem's data: deterministic, independent across problems, with its standard error.
    """
    r = np.asarray(rewards, dtype=np.float64)
    cls = np.asarray(classes, dtype=np.int64)
    ks_arr = _check_rewards(r, cls.shape, ks, "rm_majority")
    correct = np.asarray(class_correct, dtype=bool)
    if cls.size and (cls.max() >= correct.size or cls.min() < -1):
        raise MonkeysError(f"rm_majority: sample classes must lie in -1..{correct.size - 1}")
    n, weights = r.size, vote_weights(r)
    votes = cls >= 0
    right = votes & np.append(correct, False)[cls]
    value, stderr = np.zeros(ks_arr.size), np.zeros(ks_arr.size)
    if not right.any():
        return RewardEstimate(value, stderr)
    if np.unique(cls[votes]).size == 1:  # only the correct class votes: it wins if present
        return RewardEstimate(np.asarray(coverage_at_k(n, int(votes.sum()), ks_arr)), stderr)
    sampled = []
    for i, k in enumerate(ks_arr.tolist()):
        if k == 1:
            value[i] = right.sum() / n
        elif k == n:
            value[i] = _weighted_vote(_class_weights(cls[None, :], weights, correct.size), correct)[
                0
            ]
        elif comb(n, k) * max(k, correct.size) <= _MAX_ENUMERATED_CELLS:
            subsets_k = np.array(list(combinations(range(n), k)), dtype=np.int64)
            value[i] = _weighted_vote(
                _class_weights(cls[subsets_k], weights[subsets_k], correct.size), correct
            ).mean()
        else:
            sampled.append(i)
    if sampled:
        if subsets < 2:
            raise MonkeysError(f"rm_majority needs at least 2 sampled subsets, got {subsets}")
        value[sampled], stderr[sampled] = _sampled_votes(
            r, cls, weights, correct, ks_arr[sampled], subsets
        )
    return RewardEstimate(value, stderr)


def vote_weights(rewards: np.ndarray) -> np.ndarray:
    """A sample's vote weight: ``exp(reward - max reward)``, floored at the smallest float.

    Reward-model outputs are logits of any sign; exp turns them into positive strengths
    (the Bradley-Terry reading of a reward), and the vote's winner does not change when
    every reward shifts by a constant. The floor keeps a far-below sample's vote present.
    """
    if rewards.size == 0:
        return rewards
    return np.maximum(np.exp(rewards - rewards.max()), np.finfo(np.float64).tiny)


def _check_rewards(
    rewards: np.ndarray, shape: tuple[int, ...], ks: Sequence[int], name: str
) -> np.ndarray:
    ks_arr = np.asarray(ks, dtype=np.int64).reshape(-1)
    n = rewards.size
    if rewards.ndim != 1 or shape != rewards.shape:
        raise MonkeysError(f"{name}: pass one reward and one verdict per sample (1-d, same length)")
    if not np.isfinite(rewards).all():
        raise MonkeysError(
            f"{name}: rewards must be finite numbers; rescore the samples with NaN/inf"
        )
    if ks_arr.size and (ks_arr.min() < 1 or ks_arr.max() > n):
        raise MonkeysError(f"{name}@k needs 1 <= k <= {n} (the samples drawn)")
    return ks_arr


@lru_cache(maxsize=8)
def _log_choose_ratio(n: int, ks: tuple[int, ...]) -> np.ndarray:
    """``log(C(a, k) / C(n, k))`` for a = 0..n (columns) and each k (rows); -inf for a < k.

    ``C(a-1, k) / C(a, k) = 1 - k/a``, so the log ratio is a running sum of log1p(-k/j)
    over j = a+1..n: each term exact, no large log-gamma values cancelling. Cached: a
    run's problems mostly share n and the k values, and the table is most of the cost.
    """
    j = np.arange(1, n + 1, dtype=np.float64)
    k = np.asarray(ks, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore"):
        terms = np.where(j > k, np.log1p(-np.minimum(k / j, 1.0)), 0.0)
    tail = np.zeros((len(ks), n + 1))
    tail[:, :n] = np.cumsum(terms[:, ::-1], axis=1)[:, ::-1]
    table = np.where(np.arange(n + 1) >= k, tail, -np.inf)
    table.setflags(write=False)
    return table


def _class_weights(cls: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows of sample classes and weights -> rows of total weight per class (no-vote dropped)."""
    rows = np.arange(cls.shape[0])[:, None] * (n_classes + 1)
    flat = rows + np.where(cls < 0, n_classes, cls)
    totals = np.bincount(
        flat.ravel(), np.broadcast_to(weights, cls.shape).ravel(), cls.shape[0] * (n_classes + 1)
    )
    return totals.reshape(cls.shape[0], n_classes + 1)[:, :n_classes]


def _weighted_vote(totals: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Each row's credit: the share of correct classes among those tied at the top weight."""
    top = totals.max(axis=1, keepdims=True)
    tied = (totals >= top * (1 - _TIE_TOLERANCE)) & (top > 0)
    count = tied.sum(axis=1)
    return np.where(count > 0, (tied & correct).sum(axis=1) / np.maximum(count, 1), 0.0)


def _sampled_votes(
    rewards: np.ndarray,
    cls: np.ndarray,
    weights: np.ndarray,
    correct: np.ndarray,
    ks: np.ndarray,
    subsets: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo mean and standard error of the vote over random k-subsets, each k."""
    seed = [_MC_SEED, zlib.crc32(rewards.tobytes()), zlib.crc32(cls.tobytes())]
    rng = np.random.default_rng(seed)
    order = np.argsort(ks)
    n_classes, last = correct.size, int(ks.max())
    perms = rng.permuted(np.broadcast_to(np.arange(rewards.size), (subsets, rewards.size)), axis=1)
    perms = perms[:, :last]
    totals = np.zeros((subsets, n_classes))
    value, stderr = np.zeros(ks.size), np.zeros(ks.size)
    done = 0
    for i in order:  # grow every permutation's prefix from one k to the next
        k = int(ks[i])
        part = perms[:, done:k]
        totals += _class_weights(cls[part], weights[part], n_classes)
        done = k
        credit = _weighted_vote(totals, correct)
        value[i] = credit.mean()
        stderr[i] = credit.std(ddof=1) / np.sqrt(subsets)
    return value, stderr


# -- all-of-k, G-Pass@k and the uncertainty of coverage@k -----------------------------------


def passall_at_k(n: ArrayLike, c: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """P(all k samples drawn without replacement from n are correct): pass^k.

    The unbiased estimator ``C(c, k) / C(n, k)`` (0 when c < k), in log space; broadcasts
    like ``coverage_at_k``.
    """
    n_arr, c_arr, k_arr = _counts(n, c, k, "passall_at_k")
    return _scalar_or_array(np.exp(_log_choose_ratio_of(c_arr, n_arr, k_arr)))


def gpass_at_k(n: ArrayLike, c: ArrayLike, k: ArrayLike, tau: float) -> np.ndarray | float:
    """G-Pass@k_τ: P(at least ⌈τ·k⌉ of k samples drawn without replacement are correct).

    The unbiased estimator from n samples with c correct is the hypergeometric tail
    ``sum_{j >= ⌈τk⌉} C(c, j) C(n-c, k-j) / C(n, k)`` (OpenCompass, arXiv 2412.13147).
    τ = 1 is ``passall_at_k``; any τ ≤ 1/k is ``coverage_at_k``. Broadcasts the same way.
    """
    if not 0 < tau <= 1:
        raise MonkeysError(f"G-Pass@k needs a threshold τ in (0, 1], got {tau}; e.g. gpass_0.5")
    n_arr, c_arr, k_arr = _counts(n, c, k, "gpass_at_k")
    # Rounded first: 0.7 * 10 is 7.000000000000001 in floating point, and needs 7 correct.
    needed = np.maximum(np.ceil(np.round(tau * k_arr, 9)), 1).astype(np.int64)
    return _scalar_or_array(hypergeom.sf(needed - 1, n_arr, c_arr, k_arr))


def coverage_variance(n: ArrayLike, c: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """An estimate of Var(coverage_at_k(n, C, k)) over the binomial draw of C correct.

    With q_k = C(n-c, k) / C(n, k) (an unbiased estimate of (1-p)^k), ``q_k**2 - q_2k`` is
    unbiased for the variance when 2k <= n (clipped at 0, below which it can fall).
    Beyond that no unbiased estimate exists; coverage@k is a U-statistic of degree k over
    n samples with a 0/1 kernel, so Hoeffding's bound Var <= (k/n)·θ(1-θ) <= k / 4n is
    used instead (conservative).
    """
    n_arr, c_arr, k_arr = _counts(n, c, k, "coverage_variance")
    q_k = np.exp(_log_choose_ratio_of(n_arr - c_arr, n_arr, k_arr))
    double = np.minimum(2 * k_arr, n_arr)
    q_2k = np.exp(_log_choose_ratio_of(n_arr - c_arr, n_arr, double))
    unbiased = np.maximum(q_k**2 - q_2k, 0.0)
    return _scalar_or_array(np.where(2 * k_arr <= n_arr, unbiased, k_arr / (4.0 * n_arr)))


def first_success_coverage(first_correct: int | None, ks: Sequence[int]) -> np.ndarray:
    """coverage@k of one problem sampled until verified: 1 if its first correct sample
    (0-based index ``first_correct``; None: none) is among its first k, else 0.

    Samples are independent draws, so P(first success <= k) = 1 - (1-p)^k, and its
    indicator is unbiased for it whatever rule stopped the sampling; it is known for
    every k up to the samples drawn, and for every k once a sample is correct.
    """
    return np.asarray([float(first_correct is not None and first_correct < k) for k in ks])


def wilson_interval(successes: float, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion of ``successes`` out of ``trials``.

    Used for coverage@k of an adaptive run, a mean of per-problem 0/1 indicators with
    different success probabilities: their sum varies less than a binomial with the
    mean probability, so a binomial interval is conservative; Wilson's (unlike the Wald
    interval) keeps its width at proportions of 0 and 1, where coverage curves start
    and end.
    """
    if trials < 1:
        raise MonkeysError("an interval needs at least one problem")
    z = float(norm.ppf(0.5 + level / 2))
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))) / (
        1 + z * z / trials
    )
    # At 0 (or all) successes the bound is exactly 0 (1); computed, it is off by rounding.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return low, high


def _counts(
    n: ArrayLike, c: ArrayLike, k: ArrayLike, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_arr, c_arr, k_arr = np.broadcast_arrays(
        np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64), np.asarray(k, dtype=np.int64)
    )
    if np.any(k_arr < 1) or np.any(k_arr > n_arr) or np.any((c_arr < 0) | (c_arr > n_arr)):
        raise MonkeysError(
            f"{name} needs 1 <= k <= n and 0 <= c <= n; "
            "request only k values up to the number of samples drawn"
        )
    return n_arr, c_arr, k_arr


def _log_choose_ratio_of(a: np.ndarray, n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log(C(a, k) / C(n, k)) elementwise, -inf where a < k."""
    safe = np.where(a < k, k, a).astype(np.float64)
    log_ratio = gammaln(safe + 1) - gammaln(safe - k + 1) - gammaln(n + 1.0) + gammaln(n - k + 1.0)
    return np.where(a < k, -np.inf, np.minimum(log_ratio, 0.0))


def _scalar_or_array(values: np.ndarray) -> np.ndarray | float:
    return float(values) if values.ndim == 0 else values
