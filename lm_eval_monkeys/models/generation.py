"""Generation settings that ``monkeys-hf`` and ``monkeys-vllm`` honour, and nothing else.

lm-eval hands a model the task's ``generation_kwargs`` merged with ``--gen_kwargs``. A
setting a model silently ignored would make the run a different run from the one asked
for, so every key is either understood here or refused with one line, and the CLI checks
``--gen_kwargs`` before the model loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lm_eval_monkeys.errors import MonkeysError

# Models whose samples depend on these settings (monkeys-synthetic ignores them).
SAMPLING_MODELS = ("monkeys-hf", "monkeys-vllm")
SETTINGS = (
    "until",
    "max_gen_toks",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
)


@dataclass(frozen=True)
class GenerationSettings:
    """One request's sampling: temperature 0 means greedy; top_k 0 and min_p 0 mean off."""

    max_tokens: int
    until: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def generation_settings(
    gen_kwargs: Mapping[str, Any], default_max_tokens: int
) -> GenerationSettings:
    """Parse and check lm-eval's generation kwargs; unknown keys or bad values raise."""
    unknown = sorted(set(gen_kwargs) - set(SETTINGS))
    if unknown:
        raise MonkeysError(
            f"unknown generation setting {', '.join(unknown)}: monkeys-hf and monkeys-vllm "
            f"support {', '.join(SETTINGS)}; remove it from --gen_kwargs"
        )
    temperature = _number(gen_kwargs, "temperature", 0.0, lambda v: v >= 0, ">= 0")
    # lm-eval's convention: do_sample defaults to temperature > 0, and false means greedy.
    if not gen_kwargs.get("do_sample", temperature > 0):
        temperature = 0.0
    until = gen_kwargs.get("until")
    return GenerationSettings(
        max_tokens=int(
            _number(gen_kwargs, "max_gen_toks", default_max_tokens, lambda v: v >= 1, ">= 1")
        ),
        until=tuple(s for s in ([until] if isinstance(until, str) else until or []) if s),
        temperature=temperature,
        top_p=_number(gen_kwargs, "top_p", 1.0, lambda v: 0 < v <= 1, "in (0, 1]"),
        top_k=int(_number(gen_kwargs, "top_k", 0, lambda v: v >= 0 and v == int(v), "an int >= 0")),
        min_p=_number(gen_kwargs, "min_p", 0.0, lambda v: 0 <= v <= 1, "in [0, 1]"),
        repetition_penalty=_number(
            gen_kwargs, "repetition_penalty", 1.0, lambda v: v > 0, "> 0 (1 is off)"
        ),
    )


def check_gen_kwargs(model: str, gen_kwargs: Mapping[str, Any]) -> None:
    """``--gen_kwargs`` checked before ``model`` loads: a bad setting costs no model load."""
    if model in SAMPLING_MODELS:
        generation_settings(gen_kwargs, default_max_tokens=1)


def _number(
    gen_kwargs: Mapping[str, Any],
    key: str,
    default: float,
    valid: Callable[[float], bool],
    expected: str,
) -> float:
    raw = gen_kwargs.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not valid(value):
        raise MonkeysError(f"generation setting {key}={raw!r} must be {expected}")
    return value
