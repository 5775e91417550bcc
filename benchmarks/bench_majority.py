"""Exact majority@k at n = 10,000: with and without settling votes by Hoeffding's bound.

    python benchmarks/bench_majority.py [--problems 20]

Problems like the report benchmark's: per-problem accuracy p ~ Beta(0.3, 2), wrong answers
over 20 Zipf(1.5) classes, 5% unparsable; every default k (powers of two up to 10,000).
Baseline, in the same run: the same recursion with pruning switched off.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lm_eval_monkeys.metrics import estimators
from lm_eval_monkeys.metrics.estimators import default_ks, majority_at_k


def problems(count: int, n: int = 10_000) -> list[tuple[list[int], list[bool], int]]:
    rng = np.random.default_rng(0)
    invalid = n // 20
    weights = np.arange(1, 21) ** -1.5
    out = []
    for _ in range(count):
        correct = int(rng.binomial(n - invalid, rng.beta(0.3, 2)))
        wrong = rng.multinomial(n - invalid - correct, weights / weights.sum())
        out.append(([correct, *wrong.tolist()], [True] + [False] * 20, invalid))
    return out


def timed(cases: list, ks: list[int]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    values = np.array([[majority_at_k(s, c, i, k) for k in ks] for s, c, i in cases])
    return time.perf_counter() - start, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20)
    args = parser.parse_args()
    cases, ks = problems(args.problems), default_ks(10_000)
    pruned_s, pruned = timed(cases, ks)
    setting, estimators._PRUNE = estimators._PRUNE, 0.0
    full_s, full = timed(cases, ks)
    estimators._PRUNE = setting
    print(f"{args.problems} problems x {len(ks)} k values (n = 10,000)")
    print(f"pruned: {pruned_s:.2f} s ({pruned_s / args.problems * 1000:.0f} ms per problem)")
    print(f"full recursion: {full_s:.2f} s ({full_s / args.problems * 1000:.0f} ms per problem)")
    print(f"speed-up: {full_s / pruned_s:.2f}x, max difference {np.abs(pruned - full).max():.1e}")


if __name__ == "__main__":
    main()
