"""Exponentiated power-law fits recover known curves; bands bracket the truth."""

from __future__ import annotations

import numpy as np
import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.scaling import bootstrap_band, fit_power_law, power_law

KS = [2**i for i in range(14)]


@pytest.mark.parametrize(("a", "b"), [(-2.0, -0.3), (-0.5, -0.6), (-4.0, -0.15)])
def test_fit_recovers_known_parameters(a: float, b: float) -> None:
    fitted = fit_power_law(KS, power_law(KS, a, b))
    assert fitted == pytest.approx((a, b), rel=1e-6)


def test_fit_tolerates_noise_and_extrapolates() -> None:
    rng = np.random.default_rng(0)
    noisy = power_law(KS[:8], -2.0, -0.3) * (1 + rng.normal(0, 0.01, 8))
    a, b = fit_power_law(KS[:8], np.clip(noisy, 1e-6, 1 - 1e-9))
    assert (a, b) == pytest.approx((-2.0, -0.3), rel=0.1)
    assert power_law(10_000, a, b) == pytest.approx(power_law(10_000, -2.0, -0.3), abs=0.02)


@pytest.mark.parametrize("coverages", [[0.0] * 5, [1.0] * 5, [0.0, 0.0, 0.5, 1.0, 1.0]])
def test_too_few_usable_points_is_a_clear_error(coverages: list[float]) -> None:
    with pytest.raises(MonkeysError, match="strictly between 0 and 1"):
        fit_power_law([1, 2, 4, 8, 16], coverages)


def test_bootstrap_band_brackets_the_fit_of_all_problems() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(0.3, 1.5, size=300)
    n = np.full(300, 256)
    c = rng.binomial(256, p)
    ks = [1, 2, 4, 8, 16, 32, 64, 128]
    from lm_eval_monkeys.metrics.estimators import coverage_at_k

    mean = coverage_at_k(n[:, None], c[:, None], np.array(ks)[None, :]).mean(axis=0)
    central = power_law([1000], *fit_power_law(ks, mean))
    low, high = bootstrap_band(n, c, ks, at=[1000], iters=100)
    assert low[0] <= central[0] <= high[0]
    assert 0 < high[0] - low[0] < 0.2
