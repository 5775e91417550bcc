"""The per-problem forecast (Schaeffer et al. 2025): recovery, closed form, and beating the
power-law extrapolation on heavy-tailed problem sets with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.scaling import (
    SuccessDistribution,
    backtest,
    fit_success_distribution,
    forecast_coverage,
)


def draw_counts(
    p: np.ndarray, n: int, m: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n binomial samples per problem, and how many of the first m of them were correct."""
    c = rng.binomial(n, p)
    return np.full(p.size, n), c, rng.hypergeometric(c, n - c, m)


def test_fit_recovers_known_beta_parameters() -> None:
    rng = np.random.default_rng(0)
    c = rng.binomial(50, rng.beta(0.3, 3.0, size=4000))
    fitted = fit_success_distribution(np.full(4000, 50), c)
    assert fitted.zero_mass == 0.0  # a plain Beta: the point mass does not pay for itself
    assert fitted.alpha == pytest.approx(0.3, rel=0.1)
    assert fitted.beta == pytest.approx(3.0, rel=0.15)


def test_fit_finds_unsolvable_problems_as_a_point_mass() -> None:
    rng = np.random.default_rng(1)
    p = np.where(rng.random(3000) < 0.25, 0.0, rng.beta(0.5, 2.0, size=3000))
    fitted = fit_success_distribution(np.full(3000, 200), rng.binomial(200, p))
    assert fitted.zero_mass == pytest.approx(0.25, abs=0.04)
    # Coverage plateaus at the solvable fraction instead of creeping towards 1.
    assert fitted.coverage(10**9) == pytest.approx(0.75, abs=0.04)


def test_closed_form_matches_numerical_integration() -> None:
    dist = SuccessDistribution(alpha=0.4, beta=2.5, zero_mass=0.1, log_likelihood=0.0)
    for k in (1, 7, 100, 5000):
        miss, _ = integrate.quad(
            lambda p, k=k: (1 - p) ** k * stats.beta.pdf(p, 0.4, 2.5), 0, 1, limit=200
        )
        assert dist.coverage(k) == pytest.approx(0.9 * (1 - miss), abs=1e-7)


def test_smallest_k_inverts_the_forecast() -> None:
    dist = SuccessDistribution(alpha=0.3, beta=3.0, zero_mass=0.0, log_likelihood=0.0)
    k = dist.smallest_k(0.9)
    assert dist.coverage(k) >= 0.9 > dist.coverage(k - 1)
    assert SuccessDistribution(0.3, 3.0, 0.2, 0.0).smallest_k(0.9) == float("inf")


@pytest.mark.parametrize(
    ("name", "m", "bound"),
    # Kumaraswamy is outside the Beta family the forecast fits: looser, still ahead.
    [("beta(0.3, 3)", 10, 0.02), ("kumaraswamy(0.2, 2)", 100, 0.04)],
)
def test_forecast_beats_power_law_extrapolation(name: str, m: int, bound: float) -> None:
    """Fit on the first m samples of 1,319 problems; predict coverage at k = 1,000-10,000."""
    rng = np.random.default_rng(2)
    if name.startswith("beta"):
        p = rng.beta(0.3, 3.0, size=1319)
    else:  # Kumaraswamy(a, b) by inversion: heavier near 0 than the Beta family
        p = (1 - (1 - rng.random(1319)) ** (1 / 2.0)) ** (1 / 0.2)
    n, c, c_first = draw_counts(p, 10_000, m, rng)
    result = backtest(n, c, c_first, m)
    far = result.ks >= 1000
    power_error = np.abs(result.power_law - result.measured)[far].mean()
    forecast_error = np.abs(result.per_problem - result.measured)[far].mean()
    assert forecast_error < 0.75 * power_error
    assert forecast_error < bound


def test_forecast_coverage_matches_the_data_it_saw() -> None:
    rng = np.random.default_rng(3)
    n, c, _ = draw_counts(rng.beta(0.5, 1.5, size=2000), 100, 10, rng)
    predicted, fitted = forecast_coverage(n, c, [1, 10, 100])
    assert predicted[0] == pytest.approx(c.sum() / n.sum(), abs=0.01)
    assert fitted.alpha > 0 and fitted.beta > 0


@pytest.mark.parametrize(
    ("n", "c", "message"),
    [
        ([10, 10, 10], [0, 0, 0], "no sample of any problem is correct"),
        ([10, 10, 10], [10, 10, 10], "every sample of every problem is correct"),
        ([1, 1, 1], [0, 1, 0], "at least 2 samples per problem"),
        ([], [], "one \\(samples, correct\\) count per problem"),
        ([5, 5], [6, 1], "0 <= correct <= samples"),
    ],
)
def test_degenerate_counts_are_clear_errors(n: list[int], c: list[int], message: str) -> None:
    with pytest.raises(MonkeysError, match=message):
        fit_success_distribution(n, c)


def test_backtest_needs_held_out_samples() -> None:
    with pytest.raises(MonkeysError, match="backtest needs"):
        backtest([8, 8], [2, 3], [2, 3], 8)
