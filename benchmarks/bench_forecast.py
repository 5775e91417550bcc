"""Forecast error at held-out large k (power law vs the per-problem forecast), and the
calibration of the per-problem forecast's 90% interval.

    python benchmarks/bench_forecast.py [--calibration-only] [RUN_DIR ...]
    python benchmarks/bench_forecast.py --real-check RUN_DIR


Backtest: synthetic sets with known truth: 1,319 problems, per-problem success p from a
named distribution, n = 10,000 binomial samples each. Both methods see only the first m
samples of each problem (m = 10 and 100) and predict coverage at the held-out k; the
truth is the unbiased coverage from all 10,000 samples. Each RUN_DIR (a stored run) is
backtested the same way with m = a tenth of its samples per problem.

Real check (``--real-check``): a stored run of K samples per problem (e.g. the embedded
model, ``--limit 5 --repeats 256``); the per-problem forecast and its 90% interval from
each block of 16 samples per problem (0-15, 16-31, ...: each a 16-sample run), at k = K,
against the coverage@K the whole run measured.

Calibration: benchmarks of P problems (20 and 200) drawn from each shape, 16 samples per
problem; ``forecast_band`` (200 resamples, the report's setting) at k = 256, 512, 1,024 and
1,600 (16x to 100x the measured k) against the true coverage of the problems drawn,
``mean(1 - (1 - p)^k)``. Each (shape, P) is drawn REPLICATES times.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lm_eval_monkeys.forecasts.scaling import (
    Backtest,
    backtest,
    fit_success_distribution,
    forecast_band,
)

PROBLEMS, SAMPLES = 1319, 10_000
MEASURED_K, FAR_KS = 16, np.array([256, 512, 1024, 1600])
REPLICATES, CALIBRATION_PROBLEMS = 30, (20, 200)


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
CALIBRATION_SETS = {
    **{name: SETS[name] for name in ("Beta(0.3, 3)", "Beta(0.1, 1)", "Kumaraswamy(0.2, 2)")},
    "20% unsolvable + Beta(0.5, 2)": SETS["20% unsolvable + Beta(0.5, 2)"],
    # Shaped like the README quick start: most problems never solved, the rest rarely.
    "80% unsolvable + Beta(0.5, 20)": with_unsolvable(0.8, 0.5, 20.0),
}


def errors(result: Backtest, far: int = 1000) -> str:
    keep = result.ks >= far
    power = np.abs(result.power_law - result.measured)[keep].mean()
    problem = np.abs(result.per_problem - result.measured)[keep].mean()
    return f"{power:.4f} | {problem:.4f} | {power / problem:.1f}x"


def calibration() -> None:
    """How often the 90% interval at 16x-100x the measured k holds the true coverage."""
    rng = np.random.default_rng(1)
    print("| shape | problems | truth at k=1,600 | interval holds truth (all k) |", end="")
    print(" by k = 256 / 512 / 1,024 / 1,600 | mean width | point MAE |", end="")
    print(" baseline: resampling alone holds truth | its width |")
    print("|---|---|---|---|---|---|---|---|---|")
    start, bands = time.perf_counter(), 0
    for name, draw in CALIBRATION_SETS.items():
        for problems in CALIBRATION_PROBLEMS:
            held, widths, errors, truths, base_held, base_widths = [], [], [], [], [], []
            drawn = 0
            while drawn < REPLICATES:
                p = draw(rng, problems)
                c = rng.binomial(MEASURED_K, p)
                n = np.full(problems, MEASURED_K)
                if c.sum() == 0:
                    continue  # nothing solved: the forecast refuses; draw again
                drawn += 1
                truth = np.mean(-np.expm1(FAR_KS[None, :] * np.log1p(-p[:, None])), axis=0)
                low, high = forecast_band(n, c, FAR_KS)
                point = fit_success_distribution(n, c).coverage(FAR_KS)
                base_low, base_high = forecast_band(n, c, FAR_KS, profile_zero_mass=False)
                bands += 2
                base_held.append((base_low <= truth) & (truth <= base_high))
                base_widths.append(base_high - base_low)
                held.append((low <= truth) & (truth <= high))
                widths.append(high - low)
                errors.append(np.abs(point - truth))
                truths.append(truth[-1])
            by_k = np.mean(held, axis=0)
            print(
                f"| {name} | {problems} | {np.mean(truths):.3f} | "
                f"**{np.mean(held):.0%}** | {' / '.join(f'{v:.0%}' for v in by_k)} | "
                f"{np.mean(widths):.3f} | {np.mean(errors):.3f} | "
                f"{np.mean(base_held):.0%} | {np.mean(base_widths):.3f} |",
                flush=True,
            )
    print(f"\n{bands} intervals in {time.perf_counter() - start:.1f} s")


def real_check(run_dir: Path) -> None:
    """The forecast from 16 samples per problem against the run's coverage@K: the run's
    samples are independent draws, so each block of 16 (samples 0-15, 16-31, ...) is a
    16-sample run of its own; every block's forecast and 90% interval are set against
    the coverage@K the whole run measured."""
    from lm_eval_monkeys.scoring.run_data import read_run
    from lm_eval_monkeys.store import SampleStore

    with SampleStore(run_dir, writer=False) as store:
        run = read_run(store, run_dir.name)
    for task, data in run.tasks.items():
        k = int(data.n.min())
        solved = sum(bool(v[:k].any()) for v in data.verdicts)
        measured = solved / len(data.verdicts)
        print(f"{task}: {len(data.verdicts)} problems, measured coverage@{k} {measured:.3f}")
        print("| samples | problems solved in the block | forecast | 90% interval | holds |")
        print("|---|---|---|---|---|")
        held = blocks = 0
        for start in range(0, k - MEASURED_K + 1, MEASURED_K):
            c = np.array([int(v[start : start + MEASURED_K].sum()) for v in data.verdicts])
            n = np.full(c.size, MEASURED_K)
            label = f"{start}-{start + MEASURED_K - 1}"
            if c.sum() == 0:
                print(f"| {label} | 0 | none (nothing solved) | | |")
                continue
            low, high = forecast_band(n, c, [k])
            point = float(fit_success_distribution(n, c).coverage(np.array([k]))[0])
            inside = bool(low[0] <= measured <= high[0])
            held, blocks = held + inside, blocks + 1
            print(
                f"| {label} | {int((c > 0).sum())} | {point:.3f} | "
                f"[{low[0]:.3f}, {high[0]:.3f}] | {'yes' if inside else 'NO'} |"
            )
        print(f"\n{held} of {blocks} intervals hold the measured coverage@{k}")


def main() -> None:
    if "--real-check" in sys.argv:
        real_check(Path(sys.argv[sys.argv.index("--real-check") + 1]))
        return
    if "--calibration-only" in sys.argv:
        calibration()
        return
    calibration()
    print()
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

    if any(not a.startswith("--") for a in sys.argv[1:]):
        from lm_eval_monkeys.scoring.run_data import read_run
        from lm_eval_monkeys.store import SampleStore

        print("\n| run | task | problems | n | m | held-out k | power law MAE | per-problem MAE |")
        print("|---|---|---|---|---|---|---|---|")
        for run_dir in [a for a in sys.argv[1:] if not a.startswith("--")]:
            with SampleStore(Path(run_dir), writer=False) as store:
                run = read_run(store, Path(run_dir).name)
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
