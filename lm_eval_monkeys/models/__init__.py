"""The lm-eval models of repeated sampling, registered with lm-eval on import.

``monkeys-synthetic`` (no network), ``monkeys-hf`` (transformers, one prompt encoding per
problem) and ``monkeys-vllm`` (``SamplingParams(n=k)``; vLLM is imported only when used).
"""

from lm_eval_monkeys.models import hf, synthetic, vllm  # noqa: F401
