"""Forecast error at held-out large k: power-law extrapolation vs the per-problem forecast.

    python benchmarks/bench_forecast.py [RUN_DIR ...]

Synthetic sets with known truth: 1,319 problems, per-problem success p from a named
distribution, n = 10,000 binomial samples each. Both methods see only the first m samples
of each problem (m = 10 and 100) and predict coverage at the held-out k; the truth is the
unbiased coverage from all 10,000 samples. Each RUN_DIR (a stored run) is backtested the
same way with m = a tenth of its samples per problem.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lm_eval_monkeys.forecasts.scaling import Backtest, backtest

PROBLEMS, SAMPLES = 1319, 10_000


def kumaraswamy(a: float, b: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, size: (1 - (1 - rng.random(size)) ** (1 / b)) ** (1 / a)


def with_unsolvable(
    share: float, alpha: float, beta: float
) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, size: np.where(rng.random(size) < share, 0.0, rng.beta(alpha, beta, size))


SETS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "Beta(0.3, 3)": lambda rng, size: rng.beta(0.3, 3.0, size),
    "Beta(0.1, 1)": lambda rng, size: rng.beta(0.1, 1.0, size),
    "Beta(2, 5) (light tail)": lambda rng, size: rng.beta(2.0, 5.0, size),
    "Kumaraswamy(0.2, 2)": kumaraswamy(0.2, 2.0),
    "20% unsolvable + Beta(0.5, 2)": with_unsolvable(0.2, 0.5, 2.0),
}


def errors(result: Backtest, far: int = 1000) -> str:
    keep = result.ks >= far
    power = np.abs(result.power_law - result.measured)[keep].mean()
    problem = np.abs(result.per_problem - result.measured)[keep].mean()
    return f"{power:.4f} | {problem:.4f} | {power / problem:.1f}x"


def main() -> None:
    rng = np.random.default_rng(0)
    print("| set | m | truth at k=10,000 | power law MAE (k >= 1,000) | per-problem MAE | ratio |")
    print("|---|---|---|---|---|---|")
    start = time.perf_counter()
    for name, draw in SETS.items():
        p = draw(rng, PROBLEMS)
        c = rng.binomial(SAMPLES, p)
        n = np.full(PROBLEMS, SAMPLES)
        for m in (10, 100):
            result = backtest(n, c, rng.hypergeometric(c, SAMPLES - c, m), m)
            print(f"| {name} | {m} | {result.measured[-1]:.4f} | {errors(result)} |")
    print(f"\n{len(SETS) * 2} backtests in {time.perf_counter() - start:.1f} s")

    if len(sys.argv) > 1:
        from lm_eval_monkeys.scoring.run_data import read_run

        print("\n| run | task | problems | n | m | held-out k | power law MAE | per-problem MAE |")
        print("|---|---|---|---|---|---|---|---|")
        for run_dir in sys.argv[1:]:
            run = read_run(Path(run_dir), Path(run_dir).name)
            for task, data in run.tasks.items():
                n_min = int(data.n.min())
                m = n_min // 10
                result = backtest(data.n, data.c, data.c_first(m), m)
                power, problem = result.mean_abs_errors()
                print(
                    f"| {run.label} | {task} | {data.n.size} | {n_min} | {m} | "
                    f"{int(result.ks[0])}-{int(result.ks[-1])} | {power:.4f} | {problem:.4f} |"
                )


if __name__ == "__main__":
    main()
