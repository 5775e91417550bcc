"""majority@k at n = 10,000 and every default k: this version against an earlier one.

    python benchmarks/bench_majority.py [--baseline 9386c47] [--budget 15]

Problems (n = 10,000 samples, 5% unparsable unless stated):
- ``report``: the report benchmark's mix, p ~ Beta(0.3, 2), wrong answers over 20
  Zipf(1.5) classes (5 problems);
- ``long tail``: wrong answers over 8,000 Zipf(0.8) classes (2,400-3,800 non-empty, most
  of 1-3 votes), correct share 0.05, 0.25 and 0.5;
- ``all singletons``: 5 correct samples, every wrong one distinct (a code task);
- ``big + singletons``: 3,000 correct, the rest distinct; and 50 correct, one wrong
  class of 3,000, the rest distinct;
- ``several big``: 2,000 correct against 1,900, 1,800, 1,500 and 1,000, plus a tail;
- ``3-vote classes``: 1,000 correct, 3,000 wrong classes of 3 votes.

The baseline is the estimator module of an earlier commit (``git show REV:PATH``), run
per problem until ``--budget`` seconds are spent: the k values it reached, its time, and
the largest difference from this version on them.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lm_eval_monkeys.metrics.estimators import default_ks, majority_at_k

N = 10_000
Problem = tuple[list[int], list[bool], int]


def zipf_wrong(rng: np.random.Generator, wrong: int, classes: int, s: float) -> list[int]:
    weights = np.arange(1, classes + 1, dtype=np.float64) ** -s
    counts = rng.multinomial(wrong, weights / weights.sum())
    return [int(c) for c in counts if c]


def problem(correct: int, wrong: list[int], invalid: int) -> Problem:
    assert correct + sum(wrong) + invalid == N
    return [correct, *wrong], [True] + [False] * len(wrong), invalid


def problems() -> dict[str, Problem]:
    rng = np.random.default_rng(0)
    invalid = N // 20
    out = {}
    for i in range(5):
        correct = int(rng.binomial(N - invalid, rng.beta(0.3, 2)))
        out[f"report {i}"] = problem(
            correct, zipf_wrong(rng, N - invalid - correct, 20, 1.5), invalid
        )
    for share in (0.05, 0.25, 0.5):
        correct = int(share * (N - invalid))
        wrong = zipf_wrong(rng, N - invalid - correct, 8_000, 0.8)
        out[f"long tail {share:.0%} ({len(wrong)} classes)"] = problem(correct, wrong, invalid)
    out["all singletons"] = problem(5, [1] * (N - invalid - 5), invalid)
    out["big + singletons"] = problem(3_000, [1] * (N - invalid - 3_000), invalid)
    out["small + big wrong + singletons"] = problem(
        50, [3_000] + [1] * (N - invalid - 3_050), invalid
    )
    big = [1_900, 1_800, 1_500, 1_000]
    tail = zipf_wrong(rng, N - invalid - 2_000 - sum(big), 300, 1.1)
    out["several big"] = problem(2_000, big + tail, invalid)
    out["3-vote classes"] = problem(1_000, [3] * 3_000, 0)
    return out


def load_baseline(rev: str) -> Callable[..., float]:
    """``majority_at_k`` of the estimator module at ``rev`` (its path before the package
    was split into subpackages, else after)."""
    for path in ("lm_eval_monkeys/estimators.py", "lm_eval_monkeys/metrics/estimators.py"):
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            break
    else:
        sys.exit(f"no estimator module at {rev}; pass --baseline with an existing commit")
    file = Path(tempfile.mkdtemp()) / "baseline_estimators.py"
    file.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location("baseline_estimators", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.majority_at_k


def timed(
    fn: Callable[..., float], case: Problem, ks: list[int], budget: float
) -> tuple[float, list[float]]:
    sizes, correct, invalid = case
    start, values = time.perf_counter(), []
    for k in ks:
        values.append(fn(sizes, correct, invalid, k))
        if time.perf_counter() - start > budget:
            break
    return time.perf_counter() - start, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="9386c47", help="commit of the earlier version")
    parser.add_argument("--budget", type=float, default=15.0, help="baseline seconds per problem")
    args = parser.parse_args()
    baseline, ks = load_baseline(args.baseline), default_ks(N)
    print(
        f"n = {N:,}, {len(ks)} k values per problem; "
        f"baseline {args.baseline}, {args.budget:g} s per problem"
    )
    print(
        f"{'problem':40s} {'classes':>7s} {'now s':>7s} {'before s':>9s} "
        f"{'ks':>6s} {'max diff':>9s}"
    )
    worst = 0.0
    for name, case in problems().items():
        now_s, now = timed(majority_at_k, case, ks, float("inf"))
        before_s, before = timed(baseline, case, ks, args.budget)
        diff = max(abs(a - b) for a, b in zip(now, before, strict=False))
        worst = max(worst, now_s)
        print(
            f"{name:40s} {len(case[0]):7d} {now_s:7.2f} {before_s:9.2f} "
            f"{len(before):3d}/{len(ks):<2d} {diff:9.1e}"
        )
    print(f"slowest problem now: {worst:.2f} s")


if __name__ == "__main__":
    main()
