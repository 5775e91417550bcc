"""Unbiased estimators of repeated-sampling metrics from per-problem counts.

Every function here takes counts (samples drawn, samples correct, answer-class sizes),
never raw text, so metrics can be recomputed from a per-problem summary.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations
from math import comb
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln
from scipy.stats import hypergeom

from lm_eval_monkeys.errors import MonkeysError

# Probability mass below this is dropped from the majority-vote recursion; the answer
# stays exact to ~1e-12 absolute (documented in README).
_NEGLIGIBLE = 1e-15
# Events whose probability is bounded below this are settled without the recursion (the
# bounds are summed over rivals and vote counts, so this sits well below _NEGLIGIBLE).
_PRUNE = 1e-18


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
    return _scalar_or_array(0.0 - np.expm1(_log_choose_ratio_of(n_arr - c_arr, n_arr, k_arr)))


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
    decided = _decided(m_gold, others, n, k)
    if decided is not None:
        return decided
    xs = np.arange(1, min(m_gold, k) + 1)
    p_xs = hypergeom(n, m_gold, k).pmf(xs)
    pool = n - m_gold
    total = 0.0
    for x, p_x in zip(xs.tolist(), p_xs, strict=True):
        if p_x > _NEGLIGIBLE:
            # Rivals that reach x only with negligible probability join the non-rival pool.
            rivals = others[(others >= x) & (_tail_bound(x, others, pool, k - x) > _PRUNE)]
            total += p_x * _no_rival_beats(x, rivals, pool, k - x)
    return total


def _decided(m_gold: int, others: np.ndarray, n: int, k: int) -> float | None:
    """0 or 1 when Hoeffding's bound (which holds for draws without replacement) puts the
    outcome beyond doubt to within ``_PRUNE``; None when the recursion is needed.

    For a rival r, D = (gold votes) - (r's votes) sums k draws valued in [-1, 1], so
    P(D - E[D] <= -t) <= exp(-t^2 / 2k): a large expected lead settles the pair.
    """
    lead = k * (m_gold - others.astype(np.float64)) / n
    bound = np.exp(-(lead**2) / (2 * k))
    if np.any((lead < 0) & (bound < _PRUNE)):
        return 0.0  # a rival out-votes gold except with negligible probability
    if others.size and np.all(lead > 0) and bound.sum() < _PRUNE:
        return 1.0  # gold out-votes every rival except with negligible probability
    return None


def _tail_bound(x: int, sizes: np.ndarray, pool: int, draws: int) -> np.ndarray:
    """Hoeffding's bound on P(a class of each size gets >= x of ``draws`` from ``pool``)."""
    if draws <= 0:
        return np.zeros(sizes.shape)
    gap = np.maximum(x - draws * sizes / pool, 0.0)
    return np.exp(-2 * gap**2 / draws)


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
