"""Per-problem metrics over a ``ProblemSummary``, one registered function per name.

lm-eval averages each ``name@k`` over problems, which gives the dataset-level figure
because every metric here is an expectation per problem. Reward-model metrics
(``@reward_metric``) take every k at once, since they share work across k (one sort by
reward, one set of sampled subsets), and are computed only for summaries with rewards.
Opt-in metrics (``passall``, ``gpass_τ``) are computed only when named.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics.estimators import (
    coverage_at_k,
    default_ks,
    first_success_coverage,
    gpass_at_k,
    majority_at_k,
    passall_at_k,
    rm_best_at_k,
    rm_majority_at_k,
)
from lm_eval_monkeys.metrics.summary import ProblemSummary, SampleRewards

MetricFn = Callable[[ProblemSummary, int], float]
CurveFn = Callable[[ProblemSummary, Sequence[int]], Sequence[float] | np.ndarray]


@dataclass(frozen=True)
class _Registered:
    curve: CurveFn  # every requested k at once
    needs_rewards: bool
    needs_votes: bool = False  # reads the vote classes, so answers must be grouped
    opt_in: bool = False  # computed only when named


_METRICS: dict[str, _Registered] = {}
# G-Pass@k at threshold τ is named gpass_τ (gpass_0.5, gpass_1): one metric per τ.
_GPASS = "gpass_"


def metric(
    name: str, *, votes: bool = False, opt_in: bool = False
) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn(summary, k) -> float`` as metric ``name`` (reported as ``name@k``);
    ``votes``: it reads the summary's vote classes; ``opt_in``: computed only when named."""

    def register(fn: MetricFn) -> MetricFn:
        _METRICS[name] = _Registered(
            lambda s, ks: [fn(s, k) for k in ks], False, needs_votes=votes, opt_in=opt_in
        )
        return fn

    return register


def reward_metric(name: str, *, votes: bool = False) -> Callable[[CurveFn], CurveFn]:
    """Register ``fn(summary, ks) -> values`` as ``name``, for summaries carrying rewards."""

    def register(fn: CurveFn) -> CurveFn:
        _METRICS[name] = _Registered(fn, True, needs_votes=votes)
        return fn

    return register


@metric("coverage")
def coverage(summary: ProblemSummary, k: int) -> float:
    """Probability that at least one of k samples is correct (pass@k)."""
    return float(coverage_at_k(summary.n, summary.c, k))


@metric("majority", votes=True)
def majority(summary: ProblemSummary, k: int) -> float:
    """Expected accuracy of a majority vote over k samples."""
    return majority_at_k(summary.class_sizes, summary.class_correct, summary.n_invalid, k)


@metric("passall", opt_in=True)
def passall(summary: ProblemSummary, k: int) -> float:
    """Probability that all k samples are correct (pass^k)."""
    return float(passall_at_k(summary.n, summary.c, k))


def gpass(tau: float) -> CurveFn:
    """G-Pass@k_τ: probability that at least ⌈τ·k⌉ of k samples are correct."""
    return lambda summary, ks: np.asarray(gpass_at_k(summary.n, summary.c, np.asarray(ks), tau))


@reward_metric("rm_best")
def rm_best(summary: ProblemSummary, ks: Sequence[int]) -> np.ndarray:
    """Expected correctness of the highest-reward of k samples (ties share credit)."""
    scores = _rewards(summary)
    correct = np.append(np.asarray(summary.class_correct, dtype=bool), False)[scores.classes]
    return rm_best_at_k(scores.rewards, correct, ks)


@reward_metric("rm_majority", votes=True)
def rm_majority(summary: ProblemSummary, ks: Sequence[int]) -> np.ndarray:
    """Expected accuracy of a reward-weighted majority vote over k samples."""
    scores = _rewards(summary)
    return rm_majority_at_k(scores.rewards, scores.classes, summary.class_correct, ks).value


def _rewards(summary: ProblemSummary) -> SampleRewards:
    if summary.rewards is None:
        raise ValueError("reward metrics need a summary with rewards")  # problem_metrics skips
    return summary.rewards


Curves = dict[str, dict[int, float]]  # metric -> k -> value


def ks_within(ks: Sequence[int] | None, samples: int, held: str, fix: str) -> list[int]:
    """The ks to report, sorted (default: powers of two up to ``samples``); one beyond
    ``samples`` is one line: "k=K exceeds the N samples ``held``; ``fix``"."""
    chosen = sorted(set(ks)) if ks else default_ks(samples)
    if chosen[-1] > samples:
        raise MonkeysError(f"k={chosen[-1]} exceeds the {samples} samples {held}; {fix}")
    return chosen


def metric_families(*, rewards: bool = True) -> list[str]:
    """Registered metric names computed by default (with or without those that need
    reward-model scores); the opt-in ones are left out."""
    return [
        name for name, m in _METRICS.items() if not m.opt_in and (rewards or not m.needs_rewards)
    ]


def needs_rewards(name: str) -> bool:
    return _lookup(name).needs_rewards


def check_metric(name: str) -> str:
    """``name`` if it is a metric (registered, or ``gpass_τ`` with τ in (0, 1]); else an
    error naming the known ones."""
    _lookup(name)
    return name


def _lookup(name: str) -> _Registered:
    if name in _METRICS:
        return _METRICS[name]
    if name.startswith(_GPASS):
        try:
            tau = float(name[len(_GPASS) :])
        except ValueError:
            tau = float("nan")
        if 0 < tau <= 1:
            return _Registered(gpass(tau), False, opt_in=True)
    known = ", ".join([*_METRICS, f"{_GPASS}τ (τ in (0, 1], e.g. {_GPASS}0.5)"])
    raise MonkeysError(f"unknown metric {name!r}; choose from {known}")


def needs_votes(names: Sequence[str]) -> bool:
    """Whether any of these metrics reads vote classes: grouping answers by equivalence
    (math-verify calls for MATH) is skipped for the others."""
    return any(_lookup(name).needs_votes for name in names)


def problem_curves(summary: ProblemSummary, ks: Sequence[int], names: Sequence[str]) -> Curves:
    """Each named metric at every k for one problem (reward metrics only with rewards)."""
    curves: Curves = {}
    for name in names:
        registered = _lookup(name)
        if registered.needs_rewards and summary.rewards is None:
            continue
        values = registered.curve(summary, ks)
        curves[name] = {k: float(v) for k, v in zip(ks, values, strict=True)}
    return curves


# What a run sampled until verified can give: each problem stops at its first verified
# sample, so metrics reading all k samples (votes, rewards, pass^k) have nothing to read.
ADAPTIVE_METRICS = ("coverage",)


def check_adaptive(names: Sequence[str], what: str) -> None:
    """Refuse, in one line, metrics that ``what`` (an adaptive run) cannot give."""
    refused = [name for name in names if name not in ADAPTIVE_METRICS]
    if refused:
        raise MonkeysError(
            f"{', '.join(refused)} need all k samples of every problem, and {what} sampled "
            "until verified (each problem stops at its first verified sample); ask for "
            "coverage only, or sample every problem k times (no --until_verified/--budget)"
        )


def adaptive_curves(summary: ProblemSummary, ks: Sequence[int]) -> Curves:
    """coverage@k of a problem sampled until verified, from its first correct sample;
    NaN where it is unknown (unsolved, with fewer than k samples: a budget ran out)."""
    known = [summary.first_correct is not None or k <= summary.n for k in ks]
    values = first_success_coverage(summary.first_correct, ks)
    return {
        "coverage": {
            k: float(v) if ok else math.nan for k, v, ok in zip(ks, values, known, strict=True)
        }
    }


def flat_name(name: str, k: int) -> str:
    """How lm-eval and rescore.json name a metric at k."""
    return f"{name}@{k}"


def flatten(curves: Curves) -> dict[str, float]:
    return {flat_name(name, k): v for name, curve in curves.items() for k, v in curve.items()}
