"""How far beyond the samples drawn a coverage figure reaches, and what may be said of it.

Coverage at k is *measured* up to the largest k every problem has samples for (k_max)
and *forecast* beyond. The ratio k / k_max says how far. Up to ``POINT_RATIO`` a
forecast is shown as a number with its 90% interval; beyond it, as its interval only
(the number would be a guess the counts cannot back: ten problems with nine never solved
cannot tell "every problem is hard" from "nine in ten are unsolvable"); beyond
``REFUSE_RATIO`` not at all (the calibration benchmark checks the intervals up to 100x).

Runs are ranked only where that is not a guess: all figures measured, or the top one's
interval wholly above every other's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

POINT_RATIO = 10.0
REFUSE_RATIO = 100.0
CANNOT_TELL = "cannot be told apart"


@dataclass(frozen=True)
class Estimate:
    """Coverage at k: the number (nan where none may be shown), its 90% interval, the
    ratio of k to the largest measured k, and what it is (``kind``)."""

    k: float
    point: float
    low: float
    high: float
    ratio: float
    kind: str  # "measured", "forecast", "interval only", "refused" or why there is none

    @property
    def measured(self) -> bool:
        return self.kind == "measured"

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def source(self) -> str:
        """Where the figure comes from, with the ratio when it is extrapolated."""
        if self.kind in ("forecast", "interval only"):
            return f"{self.kind}, {times(self.ratio)} the measured k"
        if self.kind == "refused":
            return (
                f"not forecast: {times(self.ratio)} the measured k is beyond "
                f"{times(REFUSE_RATIO)}; draw more samples"
            )
        return self.kind

    def text(self) -> str:
        """``0.5123 [0.4410, 0.5830]``, ``[0.1022, 0.9990]`` (interval only) or ``–``."""
        interval = f"[{self.low:.4f}, {self.high:.4f}]" if self.has_interval else ""
        if math.isnan(self.point):
            return interval or "–"
        return f"{self.point:.4f} {interval}".strip()


def times(ratio: float) -> str:
    """``56.7×``, ``1,000×``: a ratio to the measured k as the tables print it."""
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.3g}×"


def none(k: float, why: str) -> Estimate:
    """No figure at k, and why."""
    return Estimate(k, math.nan, math.nan, math.nan, math.nan, why)


def extrapolated(k: float, k_max: int, point: float, low: float, high: float) -> Estimate:
    """A forecast at k > k_max under the ratio rule: number and interval up to
    ``POINT_RATIO`` x k_max, the interval alone up to ``REFUSE_RATIO`` x, nothing beyond."""
    ratio = k / k_max
    if ratio > REFUSE_RATIO:
        return Estimate(k, math.nan, math.nan, math.nan, ratio, "refused")
    if ratio > POINT_RATIO:
        return Estimate(k, math.nan, low, high, ratio, "interval only")
    return Estimate(k, point, low, high, ratio, "forecast")


def best_of(estimates: Mapping[str, Estimate]) -> str | None:
    """The run that ranks first, or None where the runs cannot be told apart: by the
    number when every figure is measured (a tie is no ranking), else only when one run's
    interval lies wholly above every other's. Runs without a figure are not ranked; fewer
    than two with one is no ranking."""
    shown = {run: e for run, e in estimates.items() if not math.isnan(e.point) or e.has_interval}
    if len(shown) < 2:
        return None
    if all(e.measured for e in shown.values()):
        ranked = sorted(shown, key=lambda run: shown[run].point, reverse=True)
        top, second = ranked[0], ranked[1]
        return top if shown[top].point > shown[second].point else None
    if not all(e.has_interval for e in shown.values()):
        return None
    top = max(shown, key=lambda run: shown[run].low)
    above = all(shown[top].low > e.high for run, e in shown.items() if run != top)
    return top if above else None
