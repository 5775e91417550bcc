"""Report figures as PNG bytes (matplotlib, Agg; no display, no global pyplot state).

- ``metric_figure``: every ``name@k`` of one run's task against k on a log axis, with the
  power-law fit and the per-problem forecast extended past the data (as lines up to
  ``POINT_RATIO`` times the samples drawn, as their 90% bands up to ``REFUSE_RATIO``
  times, the multiples marked on the axis);
- ``cost_figure``: coverage against FLOPs and against dollars for every run of a task;
- ``paired_figure``: two runs' per-problem values of one metric@k against each other.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before any figure: reports are written, never shown

import numpy as np
from matplotlib.figure import Figure

from lm_eval_monkeys.comparison.compare_runs import TaskComparison
from lm_eval_monkeys.forecasts.cost import Unit
from lm_eval_monkeys.forecasts.extrapolation import POINT_RATIO, REFUSE_RATIO
from lm_eval_monkeys.forecasts.fits import TaskAnalysis

_DPI = 110
_LABELS = {"coverage": "coverage@k (any sample correct)", "majority": "majority@k (majority vote)"}
_UNIT_AXIS = {
    "flops": "inference FLOPs per problem (log scale)",
    "usd": "US dollars per problem (log scale)",
}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def metric_figure(result: TaskAnalysis) -> bytes:
    """Measured metrics, power-law fit with its band, and the per-problem forecast."""
    fig = Figure(figsize=(7.5, 5.4), layout="constrained")
    ax = fig.subplots()
    for name, (ks, values) in result.curves.items():
        ax.plot(ks, values, marker="o", markersize=4, label=_LABELS.get(name, f"{name}@k"))
    if result.coverage_band is not None:
        ks, low, high = result.coverage_band
        ax.vlines(
            ks,
            low,
            high,
            color="tab:blue",
            linewidth=3,
            alpha=0.5,
            label="coverage@k 90% interval (measured)",
        )
    grid = result.grid()
    grid = grid[grid <= POINT_RATIO * result.k_max]  # beyond, a line would be a guess
    if result.band is not None:
        at, low, high = result.band
        ax.fill_between(
            at, low, high, color="tab:blue", alpha=0.15, label="90% bootstrap band of the fit"
        )
    if result.forecast_band is not None:
        at, low, high = result.forecast_band
        beyond = at >= result.k_max
        ax.fill_between(
            at[beyond],
            low[beyond],
            high[beyond],
            facecolor="none",
            edgecolor="black",
            hatch="//",
            linewidth=0,
            alpha=0.4,
            label="forecast's 90% interval (zero mass profiled)",
        )
    if result.fit is not None:
        a, b = result.fit
        ax.plot(
            grid,
            np.exp(a * grid**b),
            linestyle="--",
            color="tab:blue",
            label=f"power-law fit: log c = {a:.3g}·k^{b:.3g}",
        )
    if result.forecast is not None:
        ax.plot(
            grid,
            result.forecast.coverage(grid),
            linestyle=":",
            linewidth=2,
            color="black",
            label="per-problem forecast (Beta fit)",
        )
    ax.axvline(result.k_max, color="grey", linewidth=0.8, label=f"samples drawn ({result.k_max:,})")
    ax.axvline(
        POINT_RATIO * result.k_max,
        color="grey",
        linewidth=0.8,
        linestyle="-.",
        label=f"{POINT_RATIO:.0f}× samples drawn: beyond, intervals only",
    )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("samples per problem, k (log scale)")
    ax.set_ylabel("fraction of problems")
    ax.set_title(f"{result.task}: {result.run} ({result.problems:,} problems)")
    ax.grid(True, which="major", alpha=0.3)
    # Below the axes, so it never hides a curve.
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return _png(fig)


def cost_figure(task: str, results: list[TaskAnalysis], units: list[Unit]) -> bytes:
    """Coverage against cost, one panel per unit, one line per run: measured (solid) up
    to the samples drawn, forecast (dotted) to ``POINT_RATIO`` times as many, and the
    forecast's 90% interval (shaded) to ``REFUSE_RATIO`` times."""
    fig = Figure(figsize=(6.5 * len(units), 5.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(units)))
    for ax, unit in zip(axes, units, strict=True):
        for index, result in enumerate(results):
            if result.cost.at(1, unit) is None:
                continue
            color = f"C{index % 10}"
            grid = np.union1d(result.grid(), [result.k_max])  # both lines meet at k_max
            measured = grid[grid <= result.k_max]
            cost = [result.cost.at(k, unit) for k in measured]
            ax.plot(
                cost, [result.coverage(k).point for k in measured], color=color, label=result.run
            )
            if result.forecast is not None:
                beyond = grid[(grid >= result.k_max) & (grid <= POINT_RATIO * result.k_max)]
                ax.plot(
                    [result.cost.at(k, unit) for k in beyond],
                    result.forecast.coverage(beyond),
                    color=color,
                    linestyle=":",
                )
            if result.forecast_band is not None:
                at, low, high = result.forecast_band
                keep = at >= result.k_max
                ax.fill_between(
                    [result.cost.at(k, unit) for k in at[keep]],
                    low[keep],
                    high[keep],
                    color=color,
                    alpha=0.12,
                )
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(_UNIT_AXIS[unit])
        ax.set_ylabel("coverage (fraction of problems solved)")
        ax.set_title(f"{task}: coverage vs {'FLOPs' if unit == 'flops' else 'dollars'}")
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            title=(
                f"run (solid: measured; dotted: forecast to {POINT_RATIO:.0f}×; "
                f"shaded: its 90% interval to {REFUSE_RATIO:.0f}×)"
            ),
            loc="outside lower center",
            ncols=min(len(handles), 4),
            fontsize=8,
        )
    return _png(fig)


def paired_figure(compared: TaskComparison, a: str, b: str, column: str) -> bytes:
    """Per-problem scatter of run b against run a on one metric@k: points above the
    diagonal are problems b does better on. Titled with the paired difference."""
    j = compared.columns.index(column)
    key, sign = ((a, b), 1.0) if (a, b) in compared.pairs else ((b, a), -1.0)
    result = compared.pairs[key][j]
    x, y = compared.values[a][:, j], compared.values[b][:, j]
    fig = Figure(figsize=(5.6, 5.6), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    # Problems with the same pair of values share one point, sized by how many they are.
    points, counts = np.unique(np.column_stack([x, y]), axis=0, return_counts=True)
    px, py = points[:, 0], points[:, 1]
    colours = np.where(py > px, "tab:green", np.where(py < px, "tab:red", "grey"))
    ax.scatter(px, py, s=12 * counts, alpha=0.5, color=colours)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{a}: {column} per problem")
    ax.set_ylabel(f"{b}: {column} per problem")
    won, lost = (result.won, result.lost) if sign > 0 else (result.lost, result.won)
    low, high = sorted((sign * result.ci_low, sign * result.ci_high))
    ax.set_title(
        f"{compared.task}: {b} − {a} = {sign * result.difference:+.4f}\n"
        f"CI [{low:+.4f}, {high:+.4f}], p = {result.p_value:.3g}; "
        f"{b} better on {won}, worse on {lost}",
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)
    return _png(fig)
