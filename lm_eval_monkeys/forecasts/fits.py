"""What a report concludes about one task of one run: fits, forecasts, backtest, cost.

Each step that cannot be done on the data (too few k values, coverage all 0 or all 1,
too few samples to hold some out) leaves its result empty and says why in ``warnings``;
the rest of the analysis still runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.cost import RunCost, smallest_measured_k
from lm_eval_monkeys.forecasts.scaling import (
    Backtest,
    SuccessDistribution,
    backtest,
    bootstrap_band,
    fit_power_law,
    fit_success_distribution,
    power_law,
)
from lm_eval_monkeys.metrics.estimators import coverage_at_k, coverage_variance

EXTRAPOLATE = 10  # forecasts reach this multiple of the samples drawn
HOLD_OUT = 10  # the backtest fits on the first 1/HOLD_OUT of each problem's samples
BAND_ITERS = 200
BAND_Z = 1.6449  # two-sided 90% normal quantile, the level of every band in the report


@dataclass
class TaskAnalysis:
    """One run's results on one task, with everything derived from them."""

    run: str
    model: str
    task: str
    n: np.ndarray  # samples per problem
    c: np.ndarray  # correct samples per problem
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # metric name -> (ks, values)
    cost: RunCost
    fit: tuple[float, float] | None = None
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # at, low, high
    coverage_band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # ks, low, high
    forecast: SuccessDistribution | None = None
    backtest: Backtest | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return int(self.n.size)

    @property
    def k_max(self) -> int:
        """The largest k every problem has samples for."""
        return int(self.n.min())

    def grid(self) -> np.ndarray:
        """Log-spaced k from 1 to ``EXTRAPOLATE`` times the samples drawn, for curves."""
        return np.unique(np.geomspace(1, EXTRAPOLATE * self.k_max, 60).round())

    def coverage(self, k: float) -> tuple[float, str]:
        """Coverage at k: measured (unbiased estimator) up to k_max, forecast beyond."""
        if k <= self.k_max:
            return float(np.mean(coverage_at_k(self.n, self.c, int(k)))), "measured"
        if self.forecast is None:
            return math.nan, "beyond the samples drawn, no forecast"
        return float(self.forecast.coverage(k)), "forecast"

    def power_law_at(self, k: float) -> float:
        return float(power_law(k, *self.fit)) if self.fit else math.nan

    def smallest_k(self, target: float) -> tuple[float, str]:
        """Samples per problem reaching ``target`` coverage: measured, else forecast."""
        measured = smallest_measured_k(self.n, self.c, target)
        if measured is not None:
            return float(measured), "measured"
        if self.forecast is None:
            return math.nan, "not reached, no forecast"
        k = self.forecast.smallest_k(target)
        return (k, "forecast") if math.isfinite(k) else (k, "never (forecast plateau)")


def analyse(
    run: str,
    model: str,
    task: str,
    n: np.ndarray,
    c: np.ndarray,
    c_first: np.ndarray | None,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    cost: RunCost,
    band_iters: int = BAND_ITERS,
) -> TaskAnalysis:
    """Fit, forecast and backtest one run's task; ``c_first``: correct counts among each
    problem's first ``k_max // HOLD_OUT`` samples (None skips the backtest)."""
    result = TaskAnalysis(run, model, task, n, c, curves, cost)
    ks, coverage = curves.get("coverage", (np.array([]), np.array([])))
    if ks.size:
        result.coverage_band = (ks, *coverage_band(n, c, ks))
    say = result.warnings
    result.fit = _attempt(
        say, f"{run} / {task}: no power-law fit", lambda: fit_power_law(ks, coverage)
    )
    if result.fit is not None:
        grid = result.grid()
        bounds = _attempt(
            say,
            f"{run} / {task}: no bootstrap band",
            lambda: bootstrap_band(n, c, ks, grid, iters=band_iters),
        )
        result.band = None if bounds is None else (grid, *bounds)
    result.forecast = _attempt(
        say, f"{run} / {task}: no per-problem forecast", lambda: fit_success_distribution(n, c)
    )
    if c_first is not None:
        m = result.k_max // HOLD_OUT
        result.backtest = _attempt(
            say, f"{run} / {task}: no forecast backtest", lambda: backtest(n, c, c_first, m)
        )
    return result


def coverage_band(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 90% band on measured coverage@k that counts both sources of uncertainty: which
    problems the benchmark drew (the bootstrap variance of a mean over problems,
    sum((x - mean)^2) / P^2, taken in closed form) and the finite samples per problem
    (each problem's estimator variance, ``coverage_variance``, summed / P^2)."""
    values = np.asarray(coverage_at_k(n[:, None], c[:, None], ks[None, :]))
    within = np.asarray(coverage_variance(n[:, None], c[:, None], ks[None, :]))
    problems = n.size
    mean = values.mean(axis=0)
    spread = ((values - mean) ** 2).sum(axis=0) + within.sum(axis=0)
    half = BAND_Z * np.sqrt(spread) / problems
    return np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)


T = TypeVar("T")


def _attempt(warnings: list[str], what: str, step: Callable[[], T]) -> T | None:
    """Run one analysis step; a ``MonkeysError`` becomes a warning instead of a failure."""
    try:
        return step()
    except MonkeysError as err:
        warnings.append(f"{what}: {err}")
        return None
