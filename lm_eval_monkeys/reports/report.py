"""Reports of results: the k-by-metric text table, and the ``report`` command's
figures, leaderboard (Markdown, CSV) and self-contained HTML over one or more runs."""

from __future__ import annotations

import csv
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lm_eval_monkeys.comparison.compare_runs import (
    Comparison,
    leaderboard,
    pair_runs,
    plan_comparison,
    read_facts,
)
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.cost import (
    Budget,
    Price,
    Unit,
    coverage_for_budget,
    load_prices,
    run_cost,
    token_flops,
)
from lm_eval_monkeys.forecasts.extrapolation import CANNOT_TELL, POINT_RATIO, best_of
from lm_eval_monkeys.forecasts.fits import HOLD_OUT, TaskAnalysis, analyse
from lm_eval_monkeys.metrics import Curves, coverage_at_k
from lm_eval_monkeys.metrics.estimators import first_success_coverage
from lm_eval_monkeys.reports.report_html import Table, render_html
from lm_eval_monkeys.store import SampleStore

if TYPE_CHECKING:
    from lm_eval_monkeys.scoring.run_data import RunData

_Entry = TypeVar("_Entry")


def curve_arrays(curves: Curves) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each metric's curve as (ks, values), coverage first, finite values only."""
    arrays = {}
    for name in sorted(curves, key=lambda n: (n != "coverage", n)):
        points = sorted((k, v) for k, v in curves[name].items() if math.isfinite(v))
        arrays[name] = (np.array([k for k, _ in points]), np.array([v for _, v in points]))
    return arrays


@dataclass
class Report:
    """What ``build_report`` wrote, what it warned about, and where the time went."""

    output: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


LEADERBOARD_COLUMNS = [
    "run",
    "model",
    "task",
    "problems",
    "max_k",
    "coverage@1",
    "coverage@max_k",
    "majority@max_k",
    "paired_k",
    "coverage@paired_k_vs_best",
    "not_worse_than_best",
    "fit_a",
    "fit_b",
    "forecast_k",
    "forecast_ratio",
    "power_law@forecast_k",
    "power_law_low@forecast_k",
    "power_law_high@forecast_k",
    "forecast@forecast_k",
    "forecast_low@forecast_k",
    "forecast_high@forecast_k",
    "forecast_kind",
    "params",
    "flops_per_problem@max_k",
    "usd_per_problem@max_k",
    "target",
    "k_for_target",
    "k_for_target_source",
    "backtest_m",
    "backtest_mae_power_law",
    "backtest_mae_forecast",
]


def build_report(
    run_dirs: Sequence[Path],
    output: Path,
    *,
    prices: Path | None = None,
    params: Mapping[str, float] | None = None,
    target: float = 0.9,
    budget: Budget | None = None,
    checker_spec: str | None = None,
    ks: Sequence[int] | None = None,
    reward_model: str | None = None,
    metrics: Sequence[str] | None = None,
    band_iters: int = 200,
) -> Report:
    """Read, fit and plot every run, then write figures, Markdown, CSV and HTML to ``output``.

    Problems with one run or task (no fit, no cost model, tasks missing from some runs, a
    run that cannot be rescored) become warnings; a directory that is not a run store, an
    unreadable price table or an unwritable output directory are errors.
    """
    if not 0 < target <= 1:
        raise MonkeysError(f"--target must be a coverage in (0, 1], got {target}")
    report = Report(Path(output))
    clock = _Clock(report.timings)
    price_table = load_prices(prices) if prices else {}
    with clock("rescore (read, verify, metrics)"):
        runs = _read_runs(run_dirs, report, checker_spec, ks, reward_model, metrics)
    comparison = None
    if len(runs) > 1:
        with clock("paired comparisons"):
            comparison = _compare(runs, checker_spec, ks, report.warnings)
    with clock("fits, forecasts, bootstrap"):
        parameters = {run.label: _parameters(run, params or {}) for run in runs}
        results = _analyse_runs(runs, parameters, price_table, band_iters, report.warnings)
    with clock("figures"):
        figures = _write_figures(report, results, comparison)
    with clock("tables, HTML"):
        _write_tables(report, runs, results, comparison, figures, target, budget, parameters)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return report


def _read_runs(
    run_dirs: Sequence[Path],
    report: Report,
    checker_spec: str | None,
    ks: Sequence[int] | None,
    reward_model: str | None,
    metrics: Sequence[str] | None,
) -> list[RunData]:
    """Every run rescored; one that cannot be is a warning. A directory that is not a run
    store or an unwritable output directory are errors, found first."""
    from lm_eval_monkeys.scoring.run_data import read_run

    labels = run_labels(run_dirs)
    stores = [SampleStore(Path(run_dir), writer=False) for run_dir in run_dirs]
    try:
        _prepare_output(report.output)
        runs = []
        for store, label in zip(stores, labels, strict=True):
            try:
                runs.append(read_run(store, label, checker_spec, ks, reward_model, metrics))
            except MonkeysError as err:
                report.warnings.append(f"{label}: left out of the report: {err}")
    finally:
        for store in stores:
            store.close()
    if not runs:
        raise MonkeysError("no run could be read: " + "; ".join(report.warnings))
    return runs


def _parameters(run: RunData, params: Mapping[str, float]) -> float | None:
    """The run's model's parameter count: ``--params`` for its label or model, else counted
    from its weights; None when neither gives it."""
    from lm_eval_monkeys.forecasts.cost import count_parameters

    n_params = _lookup(params, run.label, run.model)
    return count_parameters(run.config) if n_params is None else n_params


def _analyse_runs(
    runs: Sequence[RunData],
    parameters: Mapping[str, float | None],
    price_table: Mapping[str, Price],
    band_iters: int,
    warnings: list[str],
) -> dict[str, list[TaskAnalysis]]:
    """Each run's tasks fitted, forecast and costed, by task (``parameters``: each run's
    parameter count, by label)."""
    results: dict[str, list[TaskAnalysis]] = {}
    for run in runs:
        n_params = parameters[run.label]
        price = _lookup(price_table, run.label, run.model)
        if n_params is None:
            warnings.append(
                f"{run.label}: no parameter count for model {run.model}, so no FLOPs; "
                f"pass --params {run.label}=135M (or the model's size)"
            )
        if price_table and price is None:
            warnings.append(
                f"{run.label}: the price table has no entry for {run.label} or {run.model}, "
                "so no dollars"
            )
        for task, data in run.tasks.items():
            if data.result is not None and data.result.adaptive is not None:
                warnings.append(
                    f"{run.label} / {task}: sampled until verified: coverage@k only (its table "
                    "below); no majority@k, rm_*, fits or forecasts (they need all k samples "
                    "of every problem)"
                )
                continue
            n, c = data.n, data.c
            m = int(n.min()) // HOLD_OUT
            result = analyse(
                run.label,
                run.model,
                task,
                n,
                c,
                data.c_first(m) if m >= 2 else None,
                curve_arrays(data.result.curves if data.result else {}),
                run_cost(
                    np.array(data.prompt_tokens),
                    np.array(data.completion_tokens),
                    n,
                    n_params,
                    price,
                ),
                band_iters,
            )
            if m < 2:
                result.warnings.append(
                    f"{run.label} / {task}: no forecast backtest: it needs at least "
                    f"{2 * HOLD_OUT} samples per problem (fits on the first 10%)"
                )
            warnings += result.warnings
            results.setdefault(task, []).append(result)
    warnings += _task_coverage_warnings(results, [r.label for r in runs])
    return results


@dataclass
class _Figures:
    """A report's figures, as written: each task's run figures and its cost figure."""

    runs: dict[str, list[tuple[str, bytes]]]
    cost: dict[str, bytes | None]


def _write_figures(
    report: Report, results: Mapping[str, list[TaskAnalysis]], comparison: Comparison | None
) -> _Figures:
    from lm_eval_monkeys.reports.figures import cost_figure, metric_figure, paired_figure

    figures = _Figures({}, {})
    for task, task_results in results.items():
        run_figures = [(r.run, metric_figure(r)) for r in task_results]
        if comparison is not None and task in comparison.tasks:
            run_figures += _paired_figures(comparison, task, paired_figure)
        for name, png in run_figures:
            report.files.append(_write(report.output / "figures" / _png_name(task, name), png))
        units = _units(task_results)
        figure = cost_figure(task, task_results, units) if units else None
        if figure is not None:
            path = report.output / "figures" / _png_name(task, "coverage_vs_cost")
            report.files.append(_write(path, figure))
        figures.runs[task], figures.cost[task] = run_figures, figure
    return figures


def _write_tables(
    report: Report,
    runs: Sequence[RunData],
    results: Mapping[str, list[TaskAnalysis]],
    comparison: Comparison | None,
    figures: _Figures,
    target: float,
    budget: Budget | None,
    parameters: Mapping[str, float | None],
) -> None:
    """The leaderboard CSV, report.md and report.html."""
    standings = _standings(comparison)
    rows = [
        _leaderboard_row(r, target, standings.get((r.task, r.run)))
        for rs in results.values()
        for r in rs
    ]
    report.files.append(_write_csv(report.output / "leaderboard.csv", rows))
    leaderboard = Table("Leaderboard", LEADERBOARD_COLUMNS, [_formatted(r) for r in rows])
    task_tables = {
        task: [
            *_paired_tables(comparison, task),
            *_cost_tables(task, rs, budget, report.warnings),
        ]
        for task, rs in results.items()
    }
    for task, table in _adaptive_tables(runs, parameters):
        task_tables.setdefault(task, []).append(table)
    markdown = [
        "# lm-eval-monkeys report",
        leaderboard.markdown(),
        *[t.markdown() for tables in task_tables.values() for t in tables],
        "### Warnings\n\n" + "\n".join(f"- {w}" for w in report.warnings or ["none"]),
    ]
    report.files.append(_write(report.output / "report.md", "\n\n".join(markdown) + "\n"))
    html = render_html(
        runs=_runs_table(runs, results),
        leaderboard=leaderboard,
        warnings=report.warnings,
        tasks={
            task: (
                tables,
                figures.cost.get(task),
                figures.runs.get(task, []),
                _fit_tables(results.get(task, [])),
            )
            for task, tables in task_tables.items()
        },
    )
    report.files.append(_write(report.output / "report.html", html))


class _Clock:
    """``with clock("phase"):`` adds the phase's wall time to a timings dict."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, phase: str) -> _Clock:
        self.phase = phase
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self.timings[self.phase] = time.perf_counter() - self.start


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's name: its directory's, with its parent's where two would collide."""
    names = [Path(d).resolve().name for d in run_dirs]
    return [
        name if names.count(name) == 1 else f"{Path(d).resolve().parent.name}/{name}"
        for d, name in zip(run_dirs, names, strict=True)
    ]


def _lookup(table: Mapping[str, _Entry], label: str, model: str) -> _Entry | None:
    """A table entry for the run's label, else for its model (run-specific wins)."""
    return table.get(label, table.get(model))


def _prepare_output(output: Path) -> None:
    try:
        (output / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MonkeysError(f"cannot create the report directory {output}: {err.strerror}") from None


def _write(path: Path, content: str | bytes) -> Path:
    try:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    except OSError as err:
        raise MonkeysError(
            f"cannot write {path}: {err.strerror}; choose another --output"
        ) from None
    return path


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, LEADERBOARD_COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if _missing(v) else v) for k, v in row.items()} for row in rows)
    return path


def _png_name(task: str, what: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{task}__{what}") + ".png"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _task_coverage_warnings(results: dict[str, list[TaskAnalysis]], runs: list[str]) -> list[str]:
    """Tasks some runs lack: compared only across the runs that have them."""
    warnings = []
    for task, task_results in results.items():
        present = {r.run for r in task_results}
        missing = [run for run in runs if run not in present]
        if missing:
            warnings.append(
                f"task {task} is not in every run (missing from {', '.join(missing)}); "
                f"it is compared across {', '.join(sorted(present))} only"
            )
    return warnings


def _units(results: list[TaskAnalysis]) -> list[Unit]:
    """Cost units at least one run of the task has a cost model for."""
    return [u for u in ("flops", "usd") if any(r.cost.at(1, u) is not None for r in results)]


def _compare(
    runs: list[RunData], checker_spec: str | None, ks: Sequence[int] | None, warnings: list[str]
) -> Comparison | None:
    """Coverage@k of every pair of runs, paired on the problems all runs hold, from the
    counts already read (a warning, and no paired columns, when the runs cannot be
    compared: other prompts or checkers, no shared task)."""
    labels = [r.label for r in runs]
    try:
        facts = [read_facts(r.run_dir, checker_spec) for r in runs]
        plans, notes = plan_comparison(facts, labels, ks, intersection=True)
    except MonkeysError as err:
        warnings.append(f"no paired comparison of the runs: {err}")
        return None
    values: dict[str, dict[str, np.ndarray]] = {}
    for run in runs:
        for task, plan in plans.items():
            data = run.tasks[task]
            row = {doc_id: i for i, doc_id in enumerate(data.doc_ids)}
            if data.result is not None and data.result.adaptive is not None:
                values.setdefault(run.label, {})[task] = np.array(
                    [_first_success(data.verdicts[row[d]], plan.ks) for d in plan.doc_ids]
                )
                continue
            # Like with like: each problem's first n samples, n held by every run.
            n = np.array([plan.samples[d] for d in plan.doc_ids], dtype=np.int64)
            c = np.array(
                [int(data.verdicts[row[d]][: plan.samples[d]].sum()) for d in plan.doc_ids],
                dtype=np.int64,
            )
            values.setdefault(run.label, {})[task] = np.asarray(
                coverage_at_k(n[:, None], c[:, None], plan.ks)
            )
    return pair_runs(labels, plans, ["coverage"], values, notes=notes)


def _first_success(verdicts: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """coverage@k of a problem sampled until verified, from its verdicts in order."""
    first = int(np.argmax(verdicts)) if verdicts.any() else None
    return first_success_coverage(first, ks)


Standing = tuple[int, float, bool]  # paired k, coverage difference to the best run, top group


def _standings(comparison: Comparison | None) -> dict[tuple[str, str], Standing]:
    """(task, run) -> its place at the largest k compared, against the best run's mean."""
    found: dict[tuple[str, str], Standing] = {}
    if comparison is None:
        return found
    for task in comparison.tasks.values():
        column = task.columns[-1]
        board = leaderboard(task, column, comparison.alpha)
        for s in board:
            found[(task.task, s.run)] = (int(column.split("@")[1]), s.mean - board[0].mean, s.top)
    return found


def _paired_tables(comparison: Comparison | None, task: str) -> list[Table]:
    from lm_eval_monkeys.comparison.gate import pair_rows

    if comparison is None or task not in comparison.tasks:
        return []
    compared = comparison.tasks[task]
    headers, rows = pair_rows(comparison, compared)
    title = (
        f"{task}: paired differences of coverage@k on the {len(compared.doc_ids)} problems "
        f"every run holds (p-value correction: {comparison.correction})"
    )
    return [Table(title, headers, rows)]


def _paired_figures(comparison: Comparison, task: str, draw: Any) -> list[tuple[str, bytes]]:
    """Per-problem scatter of coverage at the largest k compared: the first run against each."""
    compared = comparison.tasks[task]
    base = comparison.runs[0]
    return [
        (f"paired: {other} vs {base}", draw(compared, base, other, compared.columns[-1]))
        for other in comparison.runs[1:]
    ]


def _leaderboard_row(
    result: TaskAnalysis, target: float, standing: Standing | None
) -> dict[str, object]:
    ks, _ = result.curves.get("coverage", (np.array([result.k_max]), None))
    max_k = int(ks[-1])
    majority = dict(zip(*result.curves.get("majority", ([], [])), strict=True))
    forecast_k = int(POINT_RATIO) * result.k_max
    by_power_law, forecast = result.power_law_at(forecast_k), result.coverage(forecast_k)
    k_target, source = result.smallest_k(target)
    errors = result.backtest.mean_abs_errors() if result.backtest else (None, None)
    return {
        "run": result.run,
        "model": result.model,
        "task": result.task,
        "problems": result.problems,
        "max_k": max_k,
        "coverage@1": result.coverage(1).point,
        "coverage@max_k": result.coverage(max_k).point,
        "majority@max_k": majority.get(max_k),
        "paired_k": standing and standing[0],
        "coverage@paired_k_vs_best": standing and standing[1],
        "not_worse_than_best": None if standing is None else ("yes" if standing[2] else "no"),
        "fit_a": result.fit[0] if result.fit else None,
        "fit_b": result.fit[1] if result.fit else None,
        "forecast_k": forecast_k,
        "forecast_ratio": forecast_k / result.k_max,
        "power_law@forecast_k": by_power_law.point,
        "power_law_low@forecast_k": by_power_law.low,
        "power_law_high@forecast_k": by_power_law.high,
        "forecast@forecast_k": forecast.point,
        "forecast_low@forecast_k": forecast.low,
        "forecast_high@forecast_k": forecast.high,
        "forecast_kind": forecast.source(),
        "params": None if result.cost.n_params is None else int(result.cost.n_params),
        "flops_per_problem@max_k": result.cost.flops(max_k),
        "usd_per_problem@max_k": result.cost.dollars(max_k),
        "target": target,
        "k_for_target": int(k_target) if math.isfinite(k_target) else k_target,
        "k_for_target_source": source,
        "backtest_m": result.backtest.m if result.backtest else None,
        "backtest_mae_power_law": errors[0],
        "backtest_mae_forecast": errors[1],
    }


def _cell(value: object) -> str:
    """A table cell: numbers at a readable precision, missing values as a dash."""
    if _missing(value):
        return "–"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        return f"{value:.4g}" if abs(value) >= 1e4 or 0 < abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _formatted(row: dict[str, object]) -> list[str]:
    return [_cell(row[column]) for column in LEADERBOARD_COLUMNS]


def _cost_tables(
    task: str, results: list[TaskAnalysis], budget: Budget | None, warnings: list[str]
) -> list[Table]:
    """The cost-matched comparison of the task's runs and, with a budget, what it buys."""
    tables = []
    units: tuple[Unit, ...] = ("flops", "usd")
    unit = next((u for u in units if all(r.cost.at(1, u) for r in results)), None)
    if len(results) > 1 and unit is None:
        warnings.append(
            f"task {task}: no cost-matched comparison: it needs --params (FLOPs) or "
            "--prices (dollars) for every run"
        )
    elif len(results) > 1 and unit is not None:
        levels = sorted((r.cost.at(r.k_max, unit) or 0.0, r.run) for r in results)
        rows = []
        for amount, owner in levels:
            bought = {
                r.run: coverage_for_budget(r.coverage, r.cost, Budget(amount, unit))
                for r in results
            }
            cells = [f"{e.text()} ({e.source()})" for e in bought.values()]
            ranking = best_of(bought)
            rows.append(
                [f"{Budget(amount, unit)} ({owner}'s samples)", *cells, ranking or CANNOT_TELL]
            )
        tables.append(
            Table(
                f"{task}: coverage at equal cost per problem [90% interval]",
                ["cost", *[r.run for r in results], "best"],
                rows,
            )
        )
    if budget is not None:
        bought = {r.run: coverage_for_budget(r.coverage, r.cost, budget) for r in results}
        best = best_of(bought)
        rows = []
        for r in results:
            k = r.cost.affordable_k(budget)
            samples = None if k is None else math.floor(k)
            # Unranked runs say so; with a best run, the others are simply below it.
            unranked = best is None and len(results) > 1
            mark = "best" if r.run == best else (CANNOT_TELL if unranked else "")
            rows.append([r.run, _cell(samples), bought[r.run].text(), bought[r.run].source(), mark])
        tables.append(
            Table(
                f"{task}: what {budget} per problem buys (coverage [90% interval])",
                ["run", "samples per problem", "coverage", "source", ""],
                rows,
            )
        )
    return tables


def _adaptive_tables(
    runs: Sequence[RunData], parameters: Mapping[str, float | None]
) -> list[tuple[str, Table]]:
    """Each task a run sampled until verified: coverage@k with its interval, and what the
    run did not generate (FLOPs too, where the model's parameter count is known)."""
    tables = []
    for run in runs:
        for task, data in run.tasks.items():
            result = data.result
            if result is None or result.adaptive is None:
                continue
            saving = result.adaptive
            rows = [
                [str(k), _cell(value), f"[{low:.4f}, {high:.4f}]"]
                for k, value in sorted(result.curves["coverage"].items())
                for low, high in [saving.intervals[k]]
            ]
            title = f"{task}: {run.label}, " + saving.describe(result.problems).replace("\n", "; ")
            n_params = parameters[run.label]
            if n_params is not None:
                tokens = saving.tokens_not_generated(result.problems)
                title += f"; ~{token_flops(n_params, tokens):.3g} FLOPs not generated"
            tables.append((task, Table(title, ["k", "coverage@k", "95% interval"], rows)))
    return tables


def _fit_tables(results: list[TaskAnalysis]) -> dict[str, list[Table]]:
    """Per run: fitted parameters, forecasts at 1x/10x/100x the samples, the backtest."""
    tables: dict[str, list[Table]] = {}
    for r in results:
        rows = [
            ["power law log c = a·k^b", _fits(r.fit, ("a", "b"))],
            [
                "per-problem Beta (α, β, mass at p = 0)",
                _fits(
                    None
                    if r.forecast is None
                    else (r.forecast.alpha, r.forecast.beta, r.forecast.zero_mass),
                    ("α", "β", "zero"),
                ),
            ],
        ]
        forecast_rows = []
        for k in (r.k_max, int(POINT_RATIO) * r.k_max, 100 * r.k_max, 1000 * r.k_max):
            by_power_law, forecast = r.power_law_at(k), r.coverage(k)
            forecast_rows.append(
                [f"{k:,}", by_power_law.text(), forecast.text(), forecast.source()]
            )
        run_tables = [
            Table("fitted parameters", ["model", "parameters"], rows),
            Table(
                "coverage forecasts",
                ["k", "power law [90% band]", "per-problem [90% interval]", "source"],
                forecast_rows,
            ),
        ]
        if r.backtest is not None:
            b = r.backtest
            run_tables.append(
                Table(
                    f"backtest: fitted on the first {b.m} samples of each problem",
                    ["held-out k", "measured", "power law", "per-problem forecast"],
                    [
                        [f"{k:,}", _cell(m), _cell(p), _cell(f)]
                        for k, m, p, f in zip(
                            b.ks, b.measured, b.power_law, b.per_problem, strict=True
                        )
                    ],
                )
            )
        tables[r.run] = run_tables
    return tables


def _fits(values: tuple[float, ...] | None, names: tuple[str, ...]) -> str:
    if values is None:
        return "no fit (see warnings)"
    return ", ".join(f"{name} = {value:.4g}" for name, value in zip(names, values, strict=True))


def _runs_table(runs: Sequence[RunData], results: Mapping[str, list[TaskAnalysis]]) -> Table:
    params = {
        r.run: r.cost.n_params and int(r.cost.n_params) for rs in results.values() for r in rs
    }
    rows = [
        [
            run.label,
            str(run.run_dir),
            run.model,
            _cell(params.get(run.label)),
            ", ".join(run.tasks),
        ]
        for run in runs
    ]
    return Table("Runs", ["run", "directory", "model", "parameters", "tasks"], rows)
