"""Forecasts that say how much they know: intervals that profile the unsolvable mass, the
ratio rule (a number up to 10x the measured k, the interval alone to 100x, nothing beyond)
and the ranking rule (rank only on measured figures or intervals that do not overlap),
on stores written here through ``SampleStore`` and reported by the real ``report``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from lm_eval_monkeys.forecasts.extrapolation import (
    CANNOT_TELL,
    Estimate,
    best_of,
    extrapolated,
)
from lm_eval_monkeys.forecasts.scaling import fit_success_distribution, forecast_band
from lm_eval_monkeys.store import Sample, SampleStore, prompt_hash


def write_store(run_dir: Path, data_dir: Path, correct: list[int], samples: int) -> Path:
    """GSM8K problems with ``correct[i]`` right answers among ``samples`` each (the
    right ones first); 150 prompt and 100 completion tokens per sample."""
    docs = [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").open()]
    docs = docs[: len(correct)]
    store = SampleStore(run_dir)
    store.bind_config({"model": "hand-written"})
    store.register_docs(
        [
            ("monkeys_gsm8k", i, doc, prompt_hash(doc["question"], {}), {})
            for i, doc in enumerate(docs)
        ]
    )
    store.add(
        (
            "monkeys_gsm8k",
            i,
            Sample(
                j,
                f" So.\n#### {doc['answer'].split('####')[-1].strip() if j < right else -1}",
                150,
                100,
            ),
        )
        for i, (doc, right) in enumerate(zip(docs, correct, strict=True))
        for j in range(samples)
    )
    store.close()
    return run_dir


def report(tmp_path: Path, runs: list[Path], *extra: str) -> tuple[str, list[dict[str, str]]]:
    """``report`` with $0.01 / $0.011 per 1M input / output tokens for every run: $0.001
    per problem buys 907 samples. The Markdown and the leaderboard rows."""
    prices = tmp_path / "prices.yaml"
    prices.write_text("hand-written: {input: 0.01, output: 0.011}\n")
    output = tmp_path / "report"
    result = run_cli(
        *("report", *map(str, runs), "--output", str(output), "--prices", str(prices)),
        *("--budget", "$0.001", *extra),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with (output / "leaderboard.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return (output / "report.md").read_text(), rows


def test_the_quick_start_gets_no_best_and_no_point_far_out(tmp_path: Path, data_dir: Path) -> None:
    """The issue's quick start: 10 problems x 16 samples, one problem with a correct
    sample. It used to read 0.9999 at k = 1,600 with no interval, and "best" (alone)."""
    run = write_store(tmp_path / "quickstart", data_dir, [1] + [0] * 9, 16)
    markdown, rows = report(tmp_path, [run])
    assert "| best" not in markdown and "<td>best" not in markdown
    (row,) = rows
    assert row["forecast_ratio"] == "10.0" and row["forecast_kind"].startswith("forecast, 10×")
    low, high = float(row["forecast_low@forecast_k"]), float(row["forecast_high@forecast_k"])
    # Nine in ten never solved and "every problem is hard" both fit: the interval says so.
    assert low < 0.2 and high > 0.9
    html = (tmp_path / "report" / "report.html").read_text()
    rows_html = {row.split("</td>")[0]: row for row in html.split("<tr><td>")}
    far = rows_html["1,600"]  # 100x the 16 samples: the interval only, no number
    assert "0.9999" not in far and "interval only, 100× the measured k" in far
    assert far.count("<td>[") == 2  # the power law's band and the per-problem interval
    assert "not forecast: 1,000× the measured k is beyond 100×" in rows_html["16,000"]
    bought = next(line for line in markdown.splitlines() if line.startswith("| quickstart | 907"))
    assert "interval only, 56.7× the measured k" in bought and "0.99" not in bought.split("[")[0]


def test_runs_whose_forecasts_overlap_cannot_be_told_apart(tmp_path: Path, data_dir: Path) -> None:
    """Two runs of 10 x 16 with 2 and 3 problems solved once: at 907 samples (57x) their
    intervals overlap, so neither is best; at their own measured cost the more solved
    run ranks first."""
    weak = write_store(tmp_path / "weak", data_dir, [1, 1] + [0] * 8, 16)
    strong = write_store(tmp_path / "strong", data_dir, [2, 1, 1] + [0] * 7, 16)
    markdown, _ = report(tmp_path, [weak, strong])
    budget = [
        line
        for line in markdown.splitlines()
        if line.startswith(("| weak | 907 |", "| strong | 907 |"))
    ]
    assert len(budget) == 2 and all(line.rstrip().endswith(f"{CANNOT_TELL} |") for line in budget)
    equal_cost = [line for line in markdown.splitlines() if "'s samples)" in line]
    # Both runs drew 16 samples at the same cost: measured, so ranked by the number.
    assert equal_cost and all(line.rstrip().endswith("| strong |") for line in equal_cost)


def test_ratio_rule() -> None:
    near = extrapolated(160, 16, 0.6, 0.4, 0.8)
    assert (near.point, near.kind, near.ratio) == (0.6, "forecast", 10.0)
    far = extrapolated(161, 16, 0.6, 0.4, 0.8)
    assert math.isnan(far.point) and far.text() == "[0.4000, 0.8000]"
    refused = extrapolated(1601, 16, 0.6, 0.4, 0.8)
    assert refused.text() == "–" and "beyond 100×" in refused.source()


def measured(point: float, low: float, high: float) -> Estimate:
    return Estimate(16, point, low, high, 1.0, "measured")


def forecast(point: float, low: float, high: float) -> Estimate:
    return Estimate(160, point, low, high, 10.0, "forecast")


def test_ranking_rule() -> None:
    # Measured figures rank by the number, overlapping intervals or not; a tie does not.
    assert best_of({"a": measured(0.5, 0.3, 0.7), "b": measured(0.6, 0.4, 0.8)}) == "b"
    assert best_of({"a": measured(0.5, 0.3, 0.7), "b": measured(0.5, 0.4, 0.8)}) is None
    # A forecast among them: only an interval wholly above every other ranks.
    assert best_of({"a": measured(0.5, 0.45, 0.55), "b": forecast(0.9, 0.5, 0.95)}) is None
    assert best_of({"a": measured(0.5, 0.45, 0.55), "b": forecast(0.9, 0.6, 0.95)}) == "b"
    assert best_of({"a": forecast(0.2, 0.1, 0.3), "b": forecast(0.9, 0.05, 0.95)}) is None
    # One run, or one with a figure, is no ranking.
    assert best_of({"a": measured(0.5, 0.4, 0.6)}) is None
    nothing = Estimate(160, math.nan, math.nan, math.nan, 200.0, "refused")
    assert best_of({"a": measured(0.5, 0.4, 0.6), "b": nothing}) is None


@pytest.mark.parametrize("zero_share", [0.0, 0.3])
def test_interval_holds_the_truth_the_point_misses(zero_share: float) -> None:
    """From 16 samples of 200 problems, the 90% interval at 100x holds the true coverage
    (with or without unsolvable problems) and contains the point forecast."""
    rng = np.random.default_rng(7)
    p = np.where(rng.random(200) < zero_share, 0.0, rng.beta(0.3, 3.0, 200))
    c = rng.binomial(16, p)
    truth = float(np.mean(-np.expm1(1600 * np.log1p(-p))))
    low, high = forecast_band(np.full(200, 16), c, [1600], iters=100)
    point = float(fit_success_distribution(np.full(200, 16), c).coverage(1600))
    assert low[0] <= truth <= high[0] and low[0] <= point <= high[0]
    assert high[0] - low[0] < 0.6  # informative, not [0, 1]
