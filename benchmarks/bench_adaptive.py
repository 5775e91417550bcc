"""Sampling until verified against uniform k = 10,000, and budget allocation rules.

A paper-shaped synthetic benchmark: per-problem success rates spanning 0 to 1 with many
near 0: a share that no sample solves, the rest log-uniform from 10^-LOW to 1. Two
shapes: ``gsm8k`` (5% unsolvable, rates from 1e-4: about 90% solved by 10,000 samples, as
for the paper's GSM8K and MATH curves) and ``hard`` (25% unsolvable, rates from 1e-5:
about 60% solved, as for its CodeContests and SWE-bench curves). Each
problem's index of first success is drawn from its geometric law, which is all a rule
needs: a rule sees a problem's verdicts only up to its first success.

1. Until verified, k = 10,000: problems solved and samples drawn against uniform
   sampling of 10,000 per problem, for several round sizes.
2. At equal budgets: problems solved by uniform sampling (the budget spread evenly
   over all problems), the even rule (each round to every unsolved problem, the last
   round spread evenly: the product's ``round_shares``), and depth-first (each problem
   in turn until verified or k).

    python benchmarks/bench_adaptive.py [PROBLEMS SEEDS]   (both shapes)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from lm_eval_monkeys.models.rounds import round_shares

K = 10_000
SHAPES = {"gsm8k": (0.05, 4.0), "hard": (0.25, 5.0)}  # unsolvable share, LOW


def success_rates(problems: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    unsolvable, low = SHAPES[shape]
    rates = 10 ** rng.uniform(-low, 0, problems)
    rates[rng.random(problems) < unsolvable] = 0.0
    return rates


def first_successes(rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each problem's 1-based index of first success (beyond K when none by K)."""
    safe = np.where(rates > 0, rates, 1.0)
    return np.where(rates > 0, rng.geometric(safe), K + 1)


def until_verified(first: np.ndarray, round_size: int | None) -> int:
    """Samples drawn with rounds of ``round_size`` (None: doubling, 1, 2, 4, ...) up to K."""
    if round_size is None:  # rounds end at 1, 3, 7, ...: a problem stops at 2^j - 1 >= first
        ends = 2 ** np.ceil(np.log2(first + 1)) - 1
    else:
        ends = np.ceil(first / round_size) * round_size
    return int(np.minimum(ends, K).sum())


def even_rule(first: np.ndarray, budget: int, round_size: int) -> int:
    """Problems solved by the product's rule: rounds to the unsolved, the last spread."""
    level, spent = 0, 0
    open_ = np.arange(first.size)
    solved = 0
    while open_.size and level < K:
        step = min(K, level + round_size) - level
        shares = np.array(round_shares(open_.size, step, budget - spent))
        if not shares.any():
            break
        hit = first[open_] <= level + shares
        solved += int(hit.sum())
        spent += int(shares.sum())
        open_ = open_[~hit & (shares == step)]
        level += step
    return solved


def depth_first(first: np.ndarray, budget: int) -> int:
    """Problems solved sampling each problem in turn until verified or K."""
    spent = np.cumsum(np.minimum(first, K))
    return int(((spent <= budget) & (first <= K)).sum())


def measure(problems: int, seeds: int, shape: str) -> None:
    rows: dict[str, list[float]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        first = first_successes(success_rates(problems, shape, rng), rng)
        rows.setdefault("uniform k=10,000: solved", []).append(int((first <= K).sum()))
        for size in (1, 4, 64, None):
            name = f"until verified, rounds of {size or 'doubling'}"
            drawn = until_verified(first, size)
            rows.setdefault(f"{name}: samples", []).append(drawn)
            rows.setdefault(f"{name}: x fewer", []).append(problems * K / drawn)
        for per in (10, 100, 1000):
            budget = per * problems
            rows.setdefault(f"budget {per}/problem: uniform", []).append((first <= per).sum())
            rows.setdefault(f"budget {per}/problem: even, rounds of 4", []).append(
                even_rule(first, budget, 4)
            )
            rows.setdefault(f"budget {per}/problem: depth-first", []).append(
                depth_first(first, budget)
            )
    print(f"\n{shape}: {problems} problems, {seeds} seeds, k = {K:,}")
    print(f"uniform k=10,000 draws {problems * K:,} samples")
    for name, values in rows.items():
        print(f"{name:>45}: mean {np.mean(values):12,.1f}  (min {np.min(values):,.1f})")


def main() -> None:
    problems, seeds = (int(x) for x in (sys.argv[1:] or [1319, 20]))
    start = time.perf_counter()
    for shape in SHAPES:
        measure(problems, seeds, shape)
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
