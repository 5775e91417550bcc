"""Per-problem metrics over a ``ProblemSummary``, one registered function per name.

lm-eval averages each ``name@k`` over problems, which gives the dataset-level figure
because every metric here is an expectation per problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lm_eval_monkeys.estimators import coverage_at_k, majority_at_k
from lm_eval_monkeys.selection import ProblemSummary

MetricFn = Callable[[ProblemSummary, int], float]
_METRICS: dict[str, MetricFn] = {}


def metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn(summary, k) -> float`` as metric ``name`` (reported as ``name@k``)."""

    def register(fn: MetricFn) -> MetricFn:
        _METRICS[name] = fn
        return fn

    return register


@metric("coverage")
def coverage(summary: ProblemSummary, k: int) -> float:
    """Probability that at least one of k samples is correct (pass@k)."""
    return coverage_at_k(summary.n, summary.c, k)


@metric("majority")
def majority(summary: ProblemSummary, k: int) -> float:
    """Expected accuracy of a majority vote over k samples."""
    return majority_at_k(summary.class_sizes, summary.class_correct, summary.n_invalid, k)


def metric_names(ks: Sequence[int], names: Sequence[str] | None = None) -> list[str]:
    return [f"{name}@{k}" for name in (names or _METRICS) for k in ks]


def problem_metrics(
    summary: ProblemSummary, ks: Sequence[int], names: Sequence[str] | None = None
) -> dict[str, float]:
    """Every requested ``name@k`` for one problem."""
    return {f"{name}@{k}": _METRICS[name](summary, k) for name in (names or _METRICS) for k in ks}
