"""Metrics: the estimators, the per-problem summary they read, and the metric registry.

Light on purpose: importing it loads numpy and scipy, not lm-eval, torch or any checker.
"""

from lm_eval_monkeys.metrics.estimators import coverage_at_k, default_ks, majority_at_k
from lm_eval_monkeys.metrics.registry import (
    ADAPTIVE_METRICS,
    Curves,
    adaptive_curves,
    check_adaptive,
    check_metric,
    flat_name,
    flatten,
    ks_within,
    metric_families,
    needs_rewards,
    needs_votes,
    problem_curves,
)
from lm_eval_monkeys.metrics.summary import ProblemSummary

__all__ = [
    "ADAPTIVE_METRICS",
    "Curves",
    "ProblemSummary",
    "adaptive_curves",
    "check_adaptive",
    "check_metric",
    "coverage_at_k",
    "default_ks",
    "flat_name",
    "flatten",
    "ks_within",
    "majority_at_k",
    "metric_families",
    "needs_rewards",
    "needs_votes",
    "problem_curves",
]
