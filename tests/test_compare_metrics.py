"""passall@k, G-Pass@k_τ and the variance of coverage@k against brute force and exact
rationals; their registration as opt-in metrics."""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations, pairwise
from math import ceil, comb

import numpy as np
import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.fits import coverage_band
from lm_eval_monkeys.metrics import ProblemSummary, check_metric, metric_families, problem_curves
from lm_eval_monkeys.metrics.estimators import (
    coverage_at_k,
    coverage_variance,
    gpass_at_k,
    passall_at_k,
)
from lm_eval_monkeys.tasks.run_options import parse_metrics

TAUS = ("0.25", "0.5", "0.7", "0.75", "1")


def subsets(n: int, c: int, k: int) -> list[int]:
    """Correct samples in every k-subset of n samples, the first c of them correct."""
    return [sum(i < c for i in subset) for subset in combinations(range(n), k)]


def test_passall_and_gpass_equal_brute_force_for_every_small_case() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                hits = subsets(n, c, k)
                assert passall_at_k(n, c, k) == pytest.approx(
                    sum(h == k for h in hits) / len(hits), abs=1e-12
                )
                for tau in TAUS:
                    # Fraction("0.7") * 10 is exactly 7: the right threshold; 0.7 * 10 in
                    # floating point is 7.000000000000001, whose ceiling (8) is wrong.
                    needed = ceil(Fraction(tau) * k)
                    expected = sum(h >= needed for h in hits) / len(hits)
                    assert gpass_at_k(n, c, k, float(tau)) == pytest.approx(expected, abs=1e-12)


def exact_gpass(n: int, c: int, k: int, needed: int) -> Fraction:
    total = sum(comb(c, j) * comb(n - c, k - j) for j in range(needed, min(c, k) + 1))
    return Fraction(total, comb(n, k))


@pytest.mark.parametrize(
    ("c", "k", "tau"),
    [
        (9_000, 10, "1"),
        (9_990, 1000, "1"),
        (5_000, 16, "0.5"),
        (3, 2, "0.5"),
        (7_000, 100, "0.7"),
        (9_999, 10_000, "1"),
        (100, 1000, "0.1"),
        (5_000, 4096, "0.5"),
    ],
)
def test_exact_to_1e9_at_10000_samples(c: int, k: int, tau: str) -> None:
    n = 10_000
    needed = ceil(Fraction(tau) * k)
    expected = float(exact_gpass(n, c, k, needed))
    assert gpass_at_k(n, c, k, float(tau)) == pytest.approx(expected, abs=1e-9)
    if tau == "1":
        assert passall_at_k(n, c, k) == pytest.approx(expected, abs=1e-9)


def test_gpass_extremes_are_passall_and_coverage_and_it_falls_with_tau() -> None:
    n, c = np.array([[50], [50], [50]]), np.array([[0], [20], [50]])
    ks = np.array([1, 5, 25, 50])
    assert np.allclose(gpass_at_k(n, c, ks, 1.0), passall_at_k(n, c, ks), atol=1e-13)
    assert np.allclose(gpass_at_k(n, c, ks, 1e-6), coverage_at_k(n, c, ks), atol=1e-13)
    curve = [gpass_at_k(50, 20, 25, t) for t in (0.2, 0.4, 0.6, 0.8, 1.0)]
    assert all(a > b for a, b in pairwise(curve))


@pytest.mark.parametrize("tau", [0.0, -0.5, 1.5, float("nan")])
def test_gpass_rejects_thresholds_outside_0_1(tau: float) -> None:
    with pytest.raises(MonkeysError, match="threshold"):
        gpass_at_k(10, 3, 2, tau)


def test_passall_rejects_k_beyond_samples() -> None:
    with pytest.raises(MonkeysError, match="k <= n"):
        passall_at_k(4, 2, 5)


def binomial_moments(n: int, p: Fraction, k: int) -> tuple[Fraction, Fraction]:
    """E and Var over C ~ Binomial(n, p) of coverage_at_k(n, C, k), exactly."""
    weights = [comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    values = [1 - Fraction(comb(n - c, k), comb(n, k)) for c in range(n + 1)]
    mean = sum(w * v for w, v in zip(weights, values, strict=True))
    return mean, sum(w * (v - mean) ** 2 for w, v in zip(weights, values, strict=True))


def test_coverage_variance_is_unbiased_up_to_half_the_samples_and_bounded_beyond() -> None:
    n = 12
    for p in (Fraction(1, 50), Fraction(1, 5), Fraction(1, 2), Fraction(9, 10)):
        weights = [float(comb(n, c) * p**c * (1 - p) ** (n - c)) for c in range(n + 1)]
        for k in range(1, n + 1):
            _, variance = binomial_moments(n, p, k)
            estimates = [coverage_variance(n, c, k) for c in range(n + 1)]
            if 2 * k <= n:
                # Unbiased before clipping; clipping at 0 only raises it, and is rare.
                raw = [
                    (comb(n - c, k) / comb(n, k)) ** 2 - comb(n - c, 2 * k) / comb(n, 2 * k)
                    for c in range(n + 1)
                ]
                assert np.dot(weights, raw) == pytest.approx(float(variance), abs=1e-12)
                assert np.dot(weights, estimates) >= float(variance) - 1e-12
            else:
                assert min(estimates) == max(estimates) == pytest.approx(k / (4 * n))
                assert float(variance) <= k / (4 * n)


def summary(n: int, c: int) -> ProblemSummary:
    sizes = tuple(x for x in (c, n - c) if x)
    return ProblemSummary(
        n, c, 0, ("right", "wrong")[: len(sizes)], sizes, (c > 0, False)[: len(sizes)]
    )


def test_new_metrics_are_opt_in_and_named_on_request() -> None:
    s = summary(10, 6)
    assert metric_families(rewards=False) == ["coverage", "majority"]
    curves = problem_curves(s, [1, 4], ["passall", "gpass_0.5", "gpass_1"])
    assert curves["passall"][4] == pytest.approx(comb(6, 4) / comb(10, 4))
    assert curves["gpass_1"][4] == pytest.approx(curves["passall"][4])
    assert curves["gpass_0.5"][4] == pytest.approx(float(exact_gpass(10, 6, 4, 2)))
    assert curves["gpass_0.5"][1] == pytest.approx(0.6)
    assert check_metric("gpass_0.75") == "gpass_0.75"


@pytest.mark.parametrize("name", ["gpass_0", "gpass_1.5", "gpass_x", "gpass", "pass_all"])
def test_unknown_or_malformed_metric_names_are_refused(name: str) -> None:
    with pytest.raises(MonkeysError, match="unknown metric"):
        problem_curves(summary(4, 1), [1], [name])


def test_coverage_band_covers_the_mean_of_fixed_problems() -> None:
    """The benchmark's problems fixed, only the samples redrawn: the band on the mean
    coverage@k holds the true mean in at least 90% of repetitions (within 3 SE), at a k
    below half the samples (unbiased variance) and above it (Hoeffding's bound)."""
    p = np.random.default_rng(0).beta(0.3, 1.5, 60)
    n, ks = 20, np.array([4, 16])
    truth = (1 - (1 - p[:, None]) ** ks).mean(axis=0)
    covered = np.zeros(2)
    for rep in range(300):
        c = np.random.default_rng(rep).binomial(n, p)
        low, high = coverage_band(np.full(p.size, n), c, ks)
        covered += (low <= truth) & (truth <= high)
    assert (covered / 300 >= 0.9 - 3 * np.sqrt(0.9 * 0.1 / 300)).all()


def test_coverage_band_adds_the_per_problem_variance_to_the_spread_over_problems() -> None:
    n, c, ks = np.full(5, 10), np.full(5, 3), np.array([2, 8])
    low, high = coverage_band(n, c, ks)  # identical problems: no spread, only the samples
    half = 1.6449 * np.sqrt(5 * np.array([coverage_variance(10, 3, 2), 8 / 40])) / 5
    mean = coverage_at_k(10, 3, ks)
    assert np.allclose(low, np.clip(mean - half, 0, 1)) and np.allclose(
        high, np.clip(mean + half, 0, 1)
    )


def test_task_metadata_can_ask_for_the_opt_in_metrics() -> None:
    assert parse_metrics("coverage,passall,gpass_0.75") == ("coverage", "passall", "gpass_0.75")
    with pytest.raises(MonkeysError, match="unknown metric 'gpass_2'"):
        parse_metrics("coverage,gpass_2")
