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
from lm_eval_monkeys.forecasts.extrapolation import (
    POINT_RATIO,
    REFUSE_RATIO,
    Estimate,
    extrapolated,
    none,
    times,
)
from lm_eval_monkeys.forecasts.scaling import (
    Backtest,
    SuccessDistribution,
    backtest,
    bootstrap_band,
    fit_power_law,
    fit_success_distribution,
    forecast_band,
    power_law,
)
from lm_eval_monkeys.metrics.estimators import coverage_at_k, coverage_variance

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
    forecast_band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # at, low, high
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
        """Log-spaced k from 1 to ``REFUSE_RATIO`` times the samples drawn, for curves
        and bands (point forecasts stop at ``POINT_RATIO`` times)."""
        return np.unique(np.geomspace(1, REFUSE_RATIO * self.k_max, 80).round())

    def coverage(self, k: float) -> Estimate:
        """Coverage at k with its 90% interval: measured (unbiased estimator) up to
        k_max, the per-problem forecast beyond, under the ratio rule (``extrapolation``)."""
        if k <= self.k_max:
            at = np.array([int(k)])
            low, high = coverage_band(self.n, self.c, at)
            point = float(np.mean(coverage_at_k(self.n, self.c, int(k))))
            return Estimate(k, point, float(low[0]), float(high[0]), k / self.k_max, "measured")
        if self.forecast is None or self.forecast_band is None:
            return none(k, "beyond the samples drawn, no forecast")
        return extrapolated(
            k, self.k_max, float(self.forecast.coverage(k)), *_interpolate(self.forecast_band, k)
        )

    def power_law_at(self, k: float) -> Estimate:
        """The power-law fit at k with its bootstrap band, under the same ratio rule."""
        if self.fit is None:
            return none(k, "no power-law fit")
        point = float(power_law(k, *self.fit))
        low, high = _interpolate(self.band, k) if self.band is not None else (math.nan,) * 2
        if k <= self.k_max:
            return Estimate(k, point, low, high, k / self.k_max, "fit")
        return extrapolated(k, self.k_max, point, low, high)

    def smallest_k(self, target: float) -> tuple[float, str]:
        """Samples per problem reaching ``target`` coverage: measured, else forecast (not
        as a number beyond ``POINT_RATIO`` times the samples drawn)."""
        measured = smallest_measured_k(self.n, self.c, target)
        if measured is not None:
            return float(measured), "measured"
        if self.forecast is None or self.forecast_band is None:
            return math.nan, "not reached, no forecast"
        k = self.forecast.smallest_k(target)
        at, _, high = self.forecast_band
        reached = at[(high >= target) & (at > self.k_max)]
        earliest = f"{reached[0]:,.0f}" if reached.size else f"> {at[-1]:,.0f}"
        if not math.isfinite(k):
            return k, f"never (forecast plateau); 90% interval: from {earliest}"
        ratio = k / self.k_max
        if ratio > POINT_RATIO:
            return math.nan, (
                f"forecast {times(ratio)} the measured k, beyond {times(POINT_RATIO)}: "
                f"not shown as one number; 90% interval: from {earliest}"
            )
        return k, f"forecast, {times(ratio)} the measured k; 90% interval: from {earliest}"


def _interpolate(band: tuple[np.ndarray, np.ndarray, np.ndarray], k: float) -> tuple[float, float]:
    """A band's (low, high) at k, linear in log k between its points."""
    at, low, high = band
    x = np.log(at)
    return float(np.interp(np.log(k), x, low)), float(np.interp(np.log(k), x, high))


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
    if result.forecast is not None:
        grid = result.grid()
        bounds = forecast_band(n, c, grid, iters=band_iters)
        result.forecast_band = (grid, *bounds)
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
