"""Repeated sampling for lm-evaluation-harness: coverage@k, majority@k, verifiers, a run store.

The public API is small: the estimators (loaded on first use), the ``lm-eval-monkeys``
command and the ``monkeys_*`` task configs.
"""

from typing import Any

__all__ = ["coverage_at_k", "default_ks", "majority_at_k"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so `import lm_eval_monkeys.verifiers` (a checker on a worker) loads no scipy.
    if name in __all__:
        from lm_eval_monkeys import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'lm_eval_monkeys' has no attribute {name!r}")
