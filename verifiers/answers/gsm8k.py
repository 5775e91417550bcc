"""GSM8K: final-number extraction and numeric comparison.

Modes:
- ``strict`` (default, the paper's few-shot format): the number after the first ``####``.
- ``flexible``: the number after the last "The answer is", else the last number anywhere.
Numbers are normalised before comparison: ``$``, thousands commas, a trailing period and
trailing zeros after a decimal point are dropped, so ``$1,000.00`` equals ``1000``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import AnswerChecker

_NUMBER = r"-?\$?\s*-?\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+"
_STRICT = re.compile(rf"####\s*({_NUMBER})")
_ANSWER_IS = re.compile(rf"[Tt]he (?:final )?answer is:?\s*\**\s*({_NUMBER})")
_ANY_NUMBER = re.compile(_NUMBER)
MODES = ("strict", "flexible")


def normalize_number(text: str) -> str | None:
    """Canonical decimal string of a number written in a completion, or None."""
    cleaned = text.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    value = value.normalize()
    if value == 0:
        return "0"
    return format(value, "f")


class GSM8KChecker(AnswerChecker):
    """Numeric final-answer checker for GSM8K-style problems."""

    def __init__(self, mode: str = "strict") -> None:
        if mode not in MODES:
            raise MonkeysError(f"unknown gsm8k mode {mode!r}; use gsm8k:strict or gsm8k:flexible")
        self.mode = mode

    def extract(self, completion: str) -> str | None:
        if self.mode == "strict":
            match = _STRICT.search(completion)
            return normalize_number(match.group(1)) if match else None
        stated = _ANSWER_IS.findall(completion)
        candidates = stated or _ANY_NUMBER.findall(completion)
        return normalize_number(candidates[-1]) if candidates else None

    def target(self, doc: dict[str, Any]) -> str:
        answer = normalize_number(doc["answer"].split("####")[-1].strip())
        if answer is None:
            raise MonkeysError(f"GSM8K record has no numeric '#### N' answer: {doc['answer']!r}")
        return answer

    def is_correct(self, answer: str, target: str) -> bool:
        return answer == target


def gsm8k(options: str) -> GSM8KChecker:
    """``gsm8k`` (strict: the ``#### N`` line) or ``gsm8k:flexible`` (the last number)."""
    return GSM8KChecker(options or "strict")
