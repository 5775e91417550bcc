"""Inference-scaling fits and forecasts of coverage at large k.

Two models of coverage(k):

- the paper's (Brown et al. 2024, appendix) curve fit ``log c(k) = a * k**b`` (a < 0,
  b < 0, so coverage rises towards 1) on log-spaced k. ``fit_power_law`` starts from the
  straight line ``log(-log c) = log(-a) + b log k`` and refines by least squares on log c;
- the per-problem forecast of Schaeffer et al. 2025 ("How Do Large Language Monkeys Get
  Their Power (Laws)?"): each problem has a success probability p drawn from a
  distribution, so ``coverage(k) = 1 - E[(1 - p)**k]``. ``fit_success_distribution`` fits
  that distribution to the per-problem (n, c) counts by maximum likelihood; the large-k
  behaviour is set by its mass near p = 0, which a few samples per problem already show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import curve_fit, minimize
from scipy.special import betaln, expit, gammaln, logit

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics.estimators import coverage_at_k, default_ks


def power_law(k: ArrayLike, a: float, b: float) -> np.ndarray:
    """Coverage predicted at k: ``exp(a * k**b)``."""
    return np.exp(a * np.power(np.asarray(k, dtype=np.float64), b))


def fit_power_law(ks: ArrayLike, coverages: ArrayLike) -> tuple[float, float]:
    """(a, b) of ``log c(k) = a * k**b`` fitted to coverages strictly between 0 and 1."""
    k = np.asarray(ks, dtype=np.float64)
    c = np.asarray(coverages, dtype=np.float64)
    usable = (c > 0) & (c < 1) & (k > 0)
    if usable.sum() < 2:
        raise MonkeysError(
            "a power-law fit needs coverage strictly between 0 and 1 at two or more k values; "
            "draw more samples or report more k values (--ks)"
        )
    k, log_c = k[usable], np.log(c[usable])
    b0, intercept = np.polyfit(np.log(k), np.log(-log_c), 1)
    try:
        (a, b), _ = curve_fit(
            lambda x, a, b: a * np.power(x, b), k, log_c, p0=(-np.exp(intercept), b0), maxfev=10_000
        )
    except RuntimeError:  # least squares did not converge: keep the straight-line fit
        a, b = -np.exp(intercept), b0
    return float(a), float(b)


def bootstrap_band(
    n: ArrayLike,
    c: ArrayLike,
    ks: ArrayLike,
    at: ArrayLike,
    iters: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise band of the fitted curve at ``at``, resampling problems with replacement.

    ``n[i], c[i]`` are problem i's samples and correct samples; each bootstrap replicate
    recomputes coverage@ks over resampled problems, refits and predicts at ``at`` (a
    resample that solves nothing, or everything, predicts 0, or 1, at every k).
    """
    n_arr, c_arr = np.asarray(n), np.asarray(c)
    table = np.asarray(coverage_at_k(n_arr[:, None], c_arr[:, None], np.asarray(ks)[None, :]))
    rng = np.random.default_rng(seed)
    curves = []
    flat = np.ones_like(np.asarray(at, dtype=np.float64))
    for _ in range(iters):
        pick = rng.integers(0, len(n_arr), size=len(n_arr))
        resampled = table[pick].mean(axis=0)
        if resampled.max() == 0 or resampled.min() == 1:
            # Nothing solved, or everything: no curve to fit, and that flat curve is the
            # resample's answer (leaving it out would bias the band up, or down).
            curves.append(flat * resampled[0])
            continue
        try:
            curves.append(power_law(at, *fit_power_law(ks, resampled)))
        except MonkeysError:
            continue  # too few usable k values in this resample
    if not curves:
        raise MonkeysError("no bootstrap resample could be fitted; coverage is all 0 or all 1")
    tail = (1 - level) / 2
    return np.quantile(curves, tail, axis=0), np.quantile(curves, 1 - tail, axis=0)


# -- per-problem forecast (Schaeffer et al. 2025) ----------------------------------------

# A point mass at p = 0 costs one parameter; keep it only when it buys this much
# log-likelihood (Akaike's criterion: one unit per extra parameter).
_AIC_PER_PARAMETER = 1.0
_LOG_BOUNDS = (-9.0, 9.0)  # alpha, beta within [1.2e-4, 8.1e3]


@dataclass(frozen=True)
class SuccessDistribution:
    """Per-problem success probability p: 0 with probability ``zero_mass``, else
    Beta(``alpha``, ``beta``). ``log_likelihood`` is that of the counts it was fitted to."""

    alpha: float
    beta: float
    zero_mass: float
    log_likelihood: float

    def coverage(self, ks: ArrayLike) -> np.ndarray:
        """Expected coverage at each k: ``(1 - zero_mass) * (1 - B(a, b + k) / B(a, b))``."""
        k = np.asarray(ks, dtype=np.float64)
        # B(a, b + k) / B(a, b) = E[(1 - p)^k] under Beta(a, b), in log-gamma form.
        log_miss = (
            gammaln(self.beta + k)
            + gammaln(self.alpha + self.beta)
            - gammaln(self.beta)
            - gammaln(self.alpha + self.beta + k)
        )
        return (1.0 - self.zero_mass) * -np.expm1(log_miss)

    def smallest_k(self, target: float, k_max: float = 1e12) -> float:
        """The least k whose forecast coverage reaches ``target``; inf if it never does."""
        if self.coverage(k_max) < target:
            return float("inf")
        lo, hi = 0.0, k_max  # coverage is increasing in k: bisect on log k
        while hi - lo > max(1.0, 1e-9 * hi):
            mid = np.sqrt(max(lo, 1.0) * hi) if hi > 2 * max(lo, 1.0) else (lo + hi) / 2
            lo, hi = (lo, mid) if self.coverage(mid) >= target else (mid, hi)
        return float(np.ceil(hi))


def fit_success_distribution(
    n: ArrayLike, c: ArrayLike, zero_mass: bool | None = None
) -> SuccessDistribution:
    """Maximum-likelihood Beta(alpha, beta) of per-problem success, from n[i] samples of
    problem i of which c[i] were correct (a beta-binomial likelihood).

    ``zero_mass=None`` also tries a point mass at p = 0 (problems no sample will ever
    solve, which cap coverage below 1) and keeps it only if Akaike's criterion prefers it;
    True or False forces the choice.
    """
    n_arr, c_arr = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    if n_arr.size == 0 or n_arr.shape != c_arr.shape:
        raise MonkeysError("the forecast needs one (samples, correct) count per problem")
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise MonkeysError("each problem needs 0 <= correct <= samples")
    if n_arr.max() < 2:
        raise MonkeysError(
            "the forecast needs at least 2 samples per problem to tell problems apart; "
            "draw more samples (--repeats)"
        )
    if c_arr.sum() == 0:
        raise MonkeysError(
            "no sample of any problem is correct, so the forecast has nothing to fit; "
            "draw more samples or check the verifier"
        )
    if np.all(c_arr == n_arr):
        raise MonkeysError("every sample of every problem is correct: coverage is 1 at every k")
    # Problems with the same (n, c) share one likelihood term.
    pairs, weight = np.unique(np.stack([n_arr, c_arr]), axis=1, return_counts=True)
    fits = [_fit(pairs[0], pairs[1], weight, with_zero) for with_zero in (False, True)]
    if zero_mass is not None:
        return fits[int(zero_mass)]
    plain, inflated = fits
    gain = inflated.log_likelihood - plain.log_likelihood
    return inflated if gain > _AIC_PER_PARAMETER else plain


def forecast_coverage(
    n: ArrayLike, c: ArrayLike, ks: ArrayLike
) -> tuple[np.ndarray, SuccessDistribution]:
    """Coverage forecast at ``ks`` (any size, beyond the samples drawn) from per-problem
    counts, and the fitted distribution behind it."""
    fitted = fit_success_distribution(n, c)
    return fitted.coverage(ks), fitted


def _fit(n: np.ndarray, c: np.ndarray, weight: np.ndarray, with_zero: bool) -> SuccessDistribution:
    never = c == 0
    # log C(n, c) does not depend on the parameters but makes log-likelihoods comparable.
    log_choose = gammaln(n + 1.0) - gammaln(c + 1.0) - gammaln(n - c + 1.0)

    def log_likelihood(theta: np.ndarray) -> float:
        alpha, beta = np.exp(np.clip(theta[:2], *_LOG_BOUNDS))
        ll = log_choose + betaln(c + alpha, n - c + beta) - betaln(alpha, beta)
        if with_zero:
            pi = expit(theta[2])
            ll = np.where(never, np.logaddexp(np.log(pi), np.log1p(-pi) + ll), np.log1p(-pi) + ll)
        return float((weight * ll).sum())

    # Start from the moments of per-problem success rates (a Beta with their mean and spread).
    rate = c / n
    mean = float(np.average(rate, weights=weight))
    var = float(np.average((rate - mean) ** 2, weights=weight)) + 1e-6
    spread = max(mean * (1 - mean) / var - 1, 0.05)
    start = [np.log(max(mean * spread, 1e-3)), np.log(max((1 - mean) * spread, 1e-3))]
    if with_zero:
        start.append(float(logit(np.clip(np.average(never, weights=weight) / 2, 1e-3, 0.5))))
    best = minimize(
        lambda t: -log_likelihood(t),
        np.array(start),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000},
    )
    alpha, beta = np.exp(np.clip(best.x[:2], *_LOG_BOUNDS))
    pi = float(expit(best.x[2])) if with_zero else 0.0
    return SuccessDistribution(float(alpha), float(beta), pi, -float(best.fun))


@dataclass(frozen=True)
class Backtest:
    """Both forecasts made from the first ``m`` samples of each problem, against the
    unbiased coverage from all samples at the held-out ``ks`` (> m)."""

    m: int
    ks: np.ndarray
    measured: np.ndarray
    power_law: np.ndarray  # nan when the small-k curve admits no fit
    per_problem: np.ndarray  # nan when the small-k counts admit no fit

    def mean_abs_errors(self) -> tuple[float, float]:
        """Mean absolute error over the held-out k: (power law, per-problem forecast)."""
        return (
            float(np.mean(np.abs(self.power_law - self.measured))),
            float(np.mean(np.abs(self.per_problem - self.measured))),
        )


def backtest(n: ArrayLike, c: ArrayLike, c_first: ArrayLike, m: int) -> Backtest:
    """Fit both models on k <= m (``c_first``: correct among each problem's first m
    samples) and score them at every default k in (m, min(n)] against all n samples."""
    n_arr, c_arr = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    held_out = np.array([k for k in default_ks(int(n_arr.min())) if k > m])
    if m < 2 or held_out.size == 0:
        raise MonkeysError(
            f"a backtest needs 2 <= m < the samples per problem (m={m}, "
            f"min samples={int(n_arr.min())})"
        )
    measured = np.asarray(coverage_at_k(n_arr[:, None], c_arr[:, None], held_out[None, :])).mean(
        axis=0
    )
    small_ks = default_ks(m)
    small = np.asarray(coverage_at_k(m, np.asarray(c_first)[:, None], np.array(small_ks)[None, :]))
    nan = np.full(held_out.size, np.nan)
    try:
        by_power_law = power_law(held_out, *fit_power_law(small_ks, small.mean(axis=0)))
    except MonkeysError:
        by_power_law = nan
    try:
        by_problem = fit_success_distribution(np.full(len(n_arr), m), c_first).coverage(held_out)
    except MonkeysError:
        by_problem = nan
    return Backtest(m, held_out, measured, by_power_law, by_problem)


# -- what the counts cannot identify: an interval on the per-problem forecast ------------

# Every model the interval considers, as a grid: a Beta(alpha, beta) for the solvable
# problems and a mass at p = 0. A grid, not an optimiser per resample, so that hundreds of
# bootstrap resamples are scored at once (a matrix product over the distinct (n, c) counts).
_GRID_LOG_ALPHA = np.linspace(-5.0, 5.0, 81)
_GRID_LOG_BETA = np.linspace(-4.0, 10.0, 71)
_GRID_ZERO_MASS = np.linspace(0.0, 0.98, 50)
# Half the 90% chi-square quantile with one degree of freedom: the zero masses whose
# profile log-likelihood is within this of the best are all plausible.
_PROFILE_DROP = 0.5 * 2.7055


def forecast_band(
    n: ArrayLike,
    c: ArrayLike,
    ks: ArrayLike,
    iters: int = 200,
    level: float = 0.9,
    seed: int = 0,
    profile_zero_mass: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise ``level`` interval on the per-problem forecast's coverage at ``ks``.

    Two things the counts cannot pin down widen it: which problems the benchmark drew
    (problems are resampled with replacement, ``iters`` times) and how many problems no
    sample will ever solve. That mass is profiled, not fixed at its best fit: within each
    resample every zero mass whose profile log-likelihood is within the 90% chi-square
    drop of the best is kept, and the resample spans the forecasts of all of them (a few
    correct samples among many zeros fit "every problem is hard" and "most problems are
    unsolvable" alike). The interval runs from the (1 - level)/2 quantile of the
    resamples' lowest forecasts to the (1 + level)/2 quantile of their highest.
    ``profile_zero_mass=False`` keeps only each resample's best zero mass (resampling
    alone: the baseline of the calibration benchmark).
    """
    n_arr, c_arr = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    fit_success_distribution(n_arr, c_arr, zero_mass=False)  # the same refusals as the fit
    k = np.asarray(ks, dtype=np.float64)
    pairs, cell = np.unique(np.stack([n_arr, c_arr]), axis=1, return_inverse=True)
    cells_n, cells_c = pairs[0].astype(np.float64), pairs[1].astype(np.float64)
    rng = np.random.default_rng(seed)
    weight = rng.multinomial(
        n_arr.size, np.bincount(cell.ravel(), minlength=cells_n.size) / n_arr.size, size=iters
    ).astype(np.float64)
    alpha, beta = (np.exp(g).ravel() for g in np.meshgrid(_GRID_LOG_ALPHA, _GRID_LOG_BETA))
    # log P(c | n, alpha, beta) per grid point and cell (log C(n, c) is a constant here).
    log_p = (
        betaln(cells_c + alpha[:, None], cells_n - cells_c + beta[:, None])
        - betaln(alpha, beta)[:, None]
    )
    never = cells_c == 0
    solved_ll = weight[:, ~never] @ log_p[:, ~never].T  # resamples x grid
    solved_count = weight[:, ~never].sum(axis=1, keepdims=True)
    reach = _beta_coverage(alpha[:, None], beta[:, None], k[None, :])  # grid x ks
    rows = np.arange(iters)
    profile = np.empty((iters, _GRID_ZERO_MASS.size))
    forecasts = np.empty((iters, _GRID_ZERO_MASS.size, k.size))
    for j, pi in enumerate(_GRID_ZERO_MASS):
        zero_ll = np.logaddexp(np.log(pi) if pi > 0 else -np.inf, np.log1p(-pi) + log_p[:, never])
        ll = solved_ll + solved_count * np.log1p(-pi) + weight[:, never] @ zero_ll.T
        best = ll.argmax(axis=1)
        profile[:, j] = ll[rows, best]
        forecasts[:, j] = (1.0 - pi) * reach[best]
    drop = _PROFILE_DROP if profile_zero_mass else 0.0
    plausible = profile >= profile.max(axis=1, keepdims=True) - drop
    lowest = np.where(plausible[..., None], forecasts, np.inf).min(axis=1)
    highest = np.where(plausible[..., None], forecasts, -np.inf).max(axis=1)
    tail = (1 - level) / 2
    return np.quantile(lowest, tail, axis=0), np.quantile(highest, 1 - tail, axis=0)


def _beta_coverage(alpha: ArrayLike, beta: ArrayLike, k: ArrayLike) -> np.ndarray:
    """``1 - E[(1 - p)^k]`` under Beta(alpha, beta): ``1 - B(a, b + k) / B(a, b)``."""
    a, b, kk = (np.asarray(x, dtype=np.float64) for x in (alpha, beta, k))
    return -np.expm1(gammaln(b + kk) + gammaln(a + b) - gammaln(b) - gammaln(a + b + kk))
