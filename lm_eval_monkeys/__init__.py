"""Repeated sampling for lm-evaluation-harness: coverage@k, majority@k, verifiers, a run store.

The public API is small: the estimators below, the ``lm-eval-monkeys`` command and the
``monkeys_*`` task configs.
"""

from lm_eval_monkeys.estimators import coverage_at_k, default_ks, majority_at_k

__all__ = ["coverage_at_k", "default_ks", "majority_at_k"]
__version__ = "0.1.0"
