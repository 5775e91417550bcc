"""Paired statistics and the gate's decisions on per-problem values with known effects."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from lm_eval_monkeys.comparison.compare_runs import (
    Comparison,
    TaskComparison,
    compare_runs,
    leaderboard,
)
from lm_eval_monkeys.comparison.gate import evaluate, parse_condition
from lm_eval_monkeys.comparison.paired import holm, paired_differences, sign_flip_test
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics.estimators import coverage_at_k
from lm_eval_monkeys.store import Sample, SampleStore, prompt_hash

TASK = "monkeys_gsm8k"


def enumerated_p(d: list[float]) -> float:
    """Two-sided sign-flip p-value by listing every sign pattern of every difference."""
    observed = abs(sum(d))
    sums = [
        abs(sum(s * x for s, x in zip(signs, d, strict=True)))
        for signs in product((1, -1), repeat=len(d))
    ]
    return sum(s >= observed - 1e-12 for s in sums) / len(sums)


def test_exact_sign_flip_equals_enumeration_and_ignores_ties() -> None:
    rng = np.random.default_rng(3)
    for size in (1, 3, 7, 12):
        d = rng.normal(0.1, 1, size).round(2)
        with_ties = np.concatenate([d, np.zeros(5)])
        (p,), (test,) = sign_flip_test(with_ties[:, None], rng)
        assert p == pytest.approx(enumerated_p(list(d)), abs=1e-12)
        assert test.startswith("exact")
    # Four equal wins: only the all-plus and all-minus patterns reach |sum| = 4.
    assert sign_flip_test(np.ones((4, 1)), rng)[0][0] == pytest.approx(2 / 16)


def test_random_sign_flips_approach_the_exact_p_value() -> None:
    d = np.random.default_rng(5).normal(0.3, 1, 18)
    signs = np.array(list(product((1.0, -1.0), repeat=18)))
    exact = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12))
    (p,), (test,) = sign_flip_test(d[:, None], np.random.default_rng(0))
    assert "random" in test
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / 10_000) + 1e-4


def test_same_values_twice_give_exactly_zero_and_p_one() -> None:
    a = np.random.default_rng(1).random((300, 4))
    for r in paired_differences(a, a.copy()):
        assert (r.difference, r.ci_low, r.ci_high, r.p_value) == (0.0, 0.0, 0.0, 1.0)
        assert (r.won, r.lost, r.tied) == (0, 0, 300)


def test_bootstrap_is_seeded_and_its_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(11)
    a = rng.random((80, 1))
    b = a + rng.normal(0, 0.2, a.shape)
    assert paired_differences(a, b, seed=4) == paired_differences(a, b, seed=4)
    assert paired_differences(a, b, seed=4)[0].ci_low != paired_differences(a, b, seed=5)[0].ci_low
    covered = 0
    for rep in range(200):
        d = np.random.default_rng(rep).normal(0.05, 0.3, (60, 1))
        (r,) = paired_differences(np.zeros_like(d), d, iters=500, seed=rep)
        covered += r.ci_low <= 0.05 <= r.ci_high
    assert covered / 200 >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 200)


def test_holm_adjustment_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9]) == [0.9]


def coverage_values(p: np.ndarray, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Per-problem coverage@k of a run drawing n samples per problem with success p."""
    return np.asarray(coverage_at_k(n, rng.binomial(n, p), k))[:, None]


def two_run_comparison(
    a: np.ndarray, b: np.ndarray, seed: int, column: str = "coverage@4"
) -> Comparison:
    pairs = {("base", "cand"): paired_differences(a, b, iters=500, seed=seed)}
    task = TaskComparison(
        "t",
        list(range(a.shape[0])),
        [column],
        {"base": a, "cand": b},
        pairs,
        {("base", "cand"): [pairs[("base", "cand")][0].p_value]},
    )
    return Comparison(["base", "cand"], {"t": task}, 0.05, "none (one pair)")


def test_gate_false_positive_rate_on_runs_from_one_distribution() -> None:
    """Two runs of one model (same per-problem success rates, independent samples): the
    significant-drop gate may fail at most at its level, within 3 standard errors."""
    condition = parse_condition("coverage@4 significant_drop 0.05")
    p = np.random.default_rng(0).beta(0.5, 1.5, 150)
    failures = 0
    for rep in range(200):
        rng = np.random.default_rng(1000 + rep)
        a, b = coverage_values(p, 16, 4, rng), coverage_values(p, 16, 4, rng)
        (check,) = evaluate(two_run_comparison(a, b, rep), [condition])
        failures += check.failed
    assert failures / 200 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)


def test_gate_catches_a_real_drop_by_test_and_by_margin() -> None:
    conditions = [
        parse_condition("coverage@4 significant_drop 0.05"),
        parse_condition("coverage@4 < -0.02"),
    ]
    p = np.random.default_rng(0).beta(0.5, 1.5, 150)
    caught = np.zeros(2)
    for rep in range(50):
        rng = np.random.default_rng(rep)
        a, b = coverage_values(p, 16, 4, rng), coverage_values(np.maximum(p - 0.1, 0), 16, 4, rng)
        caught += [c.failed for c in evaluate(two_run_comparison(a, b, rep), conditions)]
    assert caught.min() >= 48


def test_margin_and_inclusive_margin_at_the_boundary() -> None:
    a = np.full((10, 1), 0.5)
    b = np.full((10, 1), 0.25)
    comparison = two_run_comparison(a, b, 0)
    strict, inclusive = evaluate(
        comparison, [parse_condition("coverage@4 < -0.25"), parse_condition("coverage@4 <= -0.25")]
    )
    assert not strict.failed and inclusive.failed
    assert strict.difference == -0.25


@pytest.mark.parametrize(
    "text",
    [
        "coverage@16 > 0.1",
        "coverage < -0.02",
        "coverage@16 < x",
        "coverage@16 significant_drop 2",
        "coverage@16 < inf",
    ],
)
def test_malformed_conditions_are_refused(text: str) -> None:
    with pytest.raises(MonkeysError, match=r"condition|level|margin"):
        parse_condition(text)


def test_condition_on_a_metric_not_compared_is_refused() -> None:
    a = np.zeros((5, 1))
    with pytest.raises(MonkeysError, match="no compared task holds coverage@8"):
        evaluate(two_run_comparison(a, a, 0), [parse_condition("coverage@8 < 0")])
    with pytest.raises(MonkeysError, match="no compared task"):
        evaluate(two_run_comparison(a, a, 0), [parse_condition("other_task/coverage@4 < 0")])


def test_leaderboard_keeps_runs_not_significantly_worse_than_the_best() -> None:
    rng = np.random.default_rng(2)
    base = rng.random((400, 1))
    # "close" is "best" plus noise: lower by chance or not at all; "low" is 0.2 lower.
    values = {"best": base + 0.2, "close": base + 0.2 + rng.normal(0, 0.3, base.shape), "low": base}
    pairs = {}
    for a, b in (("best", "close"), ("best", "low"), ("close", "low")):
        pairs[(a, b)] = paired_differences(values[a], values[b], iters=500)
    keys = list(pairs)
    adjusted = dict(
        zip(keys, ([p] for p in holm([pairs[k][0].p_value for k in keys])), strict=True)
    )
    task = TaskComparison("t", list(range(400)), ["coverage@1"], values, pairs, adjusted)
    standings = {s.run: s for s in leaderboard(task, "coverage@1", 0.05)}
    assert standings["low"].rank == 3 and not standings["low"].top
    assert standings["best"].top and standings["close"].top


def _write_store(run_dir: Path, docs: list[dict], correct: np.ndarray, wrong: np.ndarray) -> Path:
    """A run store of GSM8K problems whose sample j of problem i is right when
    ``correct[i, j]``, else one of three wrong answers (``wrong[i, j]``)."""
    with SampleStore(run_dir) as store:
        store.bind_config({"model": "hand-written"})
        store.register_docs(
            [(TASK, i, doc, prompt_hash(f"p{i}", {}), {}) for i, doc in enumerate(docs)]
        )
        rows = []
        for i, doc in enumerate(docs):
            target = int(doc["answer"].split("####")[-1].strip().replace(",", ""))
            for j in range(correct.shape[1]):
                answer = target if correct[i, j] else target + 1 + int(wrong[i, j])
                rows.append((TASK, i, Sample(j, f"#### {answer}", 10, 2)))
        store.add(rows)
    return run_dir


def test_unequal_sample_counts_keep_the_gates_false_positive_rate(
    tmp_path: Path, data_dir: Path
) -> None:
    """One model, a baseline of 16 samples per problem and a candidate of 32: whether the
    candidate extends the baseline (its first 16 samples are the baseline's) or was drawn
    anew, ``significant_drop 0.05`` fires at most at its nominal rate over seeded
    repetitions (each run's first 16 samples are compared). Compared on all 32 samples,
    as before, the extended candidate fired on 6 of the 40 seeds."""
    lines = (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines[:30]]
    condition = parse_condition("coverage@16 significant_drop 0.05")
    repetitions = 40
    fired = {"extends": 0, "independent": 0}
    for seed in range(repetitions):
        rng = np.random.default_rng(seed)
        rates = rng.beta(0.3, 1.2, size=(len(docs), 1))  # many hard problems, as in practice
        draws = rng.random((len(docs), 64)) < rates
        wrong = rng.integers(0, 3, size=(len(docs), 64))
        root = tmp_path / str(seed)
        base = _write_store(root / "base", docs, draws[:, :16], wrong[:, :16])
        runs = {
            "extends": _write_store(root / "extends", docs, draws[:, :32], wrong[:, :32]),
            "independent": _write_store(root / "new", docs, draws[:, 32:], wrong[:, 32:]),
        }
        for shape, candidate in runs.items():
            comparison = compare_runs(
                [base, candidate], ["base", shape], ks=[16], iters=50, seed=seed
            )
            (check,) = evaluate(comparison, [condition])
            fired[shape] += check.failed
            if shape == "extends":
                assert check.difference == 0.0
    # Binomial(40, 0.05) exceeds 6 with probability below 0.02; a drop is one-sided.
    assert fired["independent"] <= 6, fired
    assert fired["extends"] == 0, fired
