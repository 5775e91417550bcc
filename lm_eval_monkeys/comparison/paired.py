"""Paired statistics between two runs on the same problems.

Each problem gives one value per run (a metric@k, itself an expectation over samples), so
the runs are compared through the per-problem differences d = B - A: their mean, a
seeded bootstrap interval over problems, a sign-flip permutation test (exact up to
``EXACT_FLIPS`` non-zero differences, else ``RANDOM_FLIPS`` seeded random flips), and how
many problems each run wins. Every function takes a ``(problems, columns)`` array, one
column per metric@k, so all of a task's comparisons run as a few matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from lm_eval_monkeys.errors import MonkeysError

EXACT_FLIPS = 16  # up to 2**16 sign patterns enumerated
RANDOM_FLIPS = 10_000
BOOTSTRAP_ITERS = 2_000
# Differences this close (relative to their total size) count as equal: the same sums
# taken in another order differ in the last bits, which must not decide a p-value.
_RELATIVE_TIE = 1e-12
_CHUNK = 1_000  # random sign patterns per matrix product (bounds memory)


@dataclass(frozen=True)
class PairedDifference:
    """B - A on one metric@k over the problems both runs hold."""

    problems: int
    mean_a: float
    mean_b: float
    difference: float  # mean of the per-problem differences B - A
    ci_low: float  # percentile bootstrap interval over problems, at ``level``
    ci_high: float
    p_value: float  # two-sided sign-flip test of "no difference"
    test: str  # which sign-flip test gave p_value
    won: int  # problems where B > A
    lost: int  # problems where B < A
    tied: int


def paired_differences(
    a: np.ndarray,
    b: np.ndarray,
    *,
    level: float = 0.95,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = 0,
) -> list[PairedDifference]:
    """One ``PairedDifference`` per column of the ``(problems, columns)`` arrays a and b."""
    a, b = _columns(a), _columns(b)
    if a.shape != b.shape or a.shape[0] == 0:
        raise MonkeysError("a paired comparison needs values of the same problems from both runs")
    if not 0 < level < 1:
        raise MonkeysError(f"the confidence level must be in (0, 1), got {level}; e.g. 0.95")
    if iters < 1:
        raise MonkeysError(f"the bootstrap needs at least 1 iteration, got {iters}")
    rng = np.random.default_rng(seed)
    d = b - a
    low, high = bootstrap_interval(d, level, iters, rng)
    p_values, tests = sign_flip_test(d, rng)
    return [
        PairedDifference(
            problems=d.shape[0],
            mean_a=float(a[:, j].mean()),
            mean_b=float(b[:, j].mean()),
            difference=float(d[:, j].mean()),
            ci_low=float(low[j]),
            ci_high=float(high[j]),
            p_value=float(p_values[j]),
            test=tests[j],
            won=int((d[:, j] > 0).sum()),
            lost=int((d[:, j] < 0).sum()),
            tied=int((d[:, j] == 0).sum()),
        )
        for j in range(d.shape[1])
    ]


def _columns(values: np.ndarray) -> np.ndarray:
    """A 1-d array of per-problem values as one column."""
    array = np.asarray(values, dtype=np.float64)
    return array[:, None] if array.ndim == 1 else array


def bootstrap_interval(
    d: np.ndarray, level: float, iters: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the mean of d's rows, resampling problems with replacement.

    A resample is a vector of counts (how often each problem is drawn), so every column's
    resampled means are one matrix product; all zeros resample to exactly 0.
    """
    problems = d.shape[0]
    counts = rng.multinomial(problems, np.full(problems, 1.0 / problems), size=iters)
    means = counts @ d / problems
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail], axis=0)
    # Never narrower than the point estimate itself (an interval must contain it).
    mean = d.mean(axis=0)
    return np.minimum(low, mean), np.maximum(high, mean)


def sign_flip_test(d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Two-sided p-values of "B and A are exchangeable on each problem", per column.

    Under that hypothesis each difference is as likely to have either sign, so the
    statistic |sum d| is compared with its values under every sign pattern: all of them
    when at most ``EXACT_FLIPS`` differences are non-zero (zeros do not move the sum),
    else ``RANDOM_FLIPS`` seeded random patterns with p = (1 + hits) / (1 + patterns),
    the same patterns for every such column (one matrix product per chunk).
    """
    nonzero = (d != 0).sum(axis=0)
    observed = np.abs(d.sum(axis=0))
    tie = _RELATIVE_TIE * np.abs(d).sum(axis=0)
    p_values = np.ones(d.shape[1])
    tests = ["no differences"] * d.shape[1]
    for j in np.flatnonzero((nonzero > 0) & (nonzero <= EXACT_FLIPS)):
        values = d[d[:, j] != 0, j]
        signs = np.array(list(product((1.0, -1.0), repeat=values.size)))
        p_values[j] = float(np.mean(np.abs(signs @ values) >= observed[j] - tie[j]))
        tests[j] = f"exact sign-flip ({2**values.size:,} patterns)"
    sampled = np.flatnonzero(nonzero > EXACT_FLIPS)
    if sampled.size:
        hits = np.zeros(sampled.size, dtype=np.int64)
        for start in range(0, RANDOM_FLIPS, _CHUNK):
            rows = min(_CHUNK, RANDOM_FLIPS - start)
            signs = 1.0 - 2.0 * rng.integers(0, 2, size=(rows, d.shape[0]), dtype=np.int8)
            sums = np.abs(signs @ d[:, sampled])
            hits += (sums >= observed[sampled] - tie[sampled]).sum(axis=0)
        p_values[sampled] = (1 + hits) / (1 + RANDOM_FLIPS)
        for j in sampled:
            tests[j] = f"sign-flip, {RANDOM_FLIPS:,} random patterns"
    return p_values, tests


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: family-wise error at most the level, any dependence."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
