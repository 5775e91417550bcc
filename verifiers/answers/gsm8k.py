"""GSM8K: final-number extraction and exact numeric comparison.

Modes:
- ``strict`` (default, the paper's few-shot format): the line after ``####``, which must be
  one number and nothing else.
- ``flexible``: the number stated by "The answer is ..." (that sentence must name exactly
  one number), else the last number anywhere.

A number is written in one valid format: an optional ``-`` and ``$``, digits with or
without thousands commas (``1,018``, never ``1,8``), an optional decimal part, an optional
final period. Fractions, exponents, powers and digit groups split by spaces are not one
number. Numbers are compared exactly, digit by digit, at any length, with no rounding:
``$1,000.00`` equals ``1000``, ``17.99999999999999999999999999999`` is not ``18``.

A hedged answer is no answer: several ``####`` lines or "The answer is" sentences naming
different numbers, a sentence naming two different numbers (``18 or 20``, ``18-20``) or
saying "or", or a last number joined to the one before it by "or".
"""

from __future__ import annotations

import re
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import AnswerChecker

# One number in a valid format: sign, dollar sign, digits (grouped by threes or not),
# decimal part, final period.
_VALID = re.compile(
    r"(?P<sign>-)?\$?\s?(?(sign)|-?)"
    r"(?P<integer>\d{1,3}(?:,\d{3})+|\d+)?(?:\.(?P<fraction>\d+))?\.?"
)
# Anything a reader would take for one number, valid or not (``1,8``, ``18e3``, ``18/5``,
# ``18^2``): each is judged as a whole, never read as the digits it starts with.
_NUMERAL = re.compile(r"-?\$?\s?-?\.?\d[\d,.]*(?:(?:[eE][+-]?|\^|\*\*|/|:)\d[\d,.]*)*")
_STRICT = re.compile(r"####[ \t]*\n?([^\n]*)")
_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is:?([^\n]*?)(?:\.(?=\s|$)|$)", re.M)
_CALCULATION = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator notes: ``<<9*2=18>>18``
_OR = re.compile(r"\b(?:or|either)\b", re.I)
_JUST_OR = re.compile(r"\W*\bor\b\W*", re.I)  # "18 or 20", "18, or 20"
MODES = ("strict", "flexible")


def normalize_number(text: str) -> str | None:
    """The canonical decimal string of one number in a valid format (exact, at any
    length), or None when ``text`` is anything else."""
    match = _VALID.fullmatch(text.strip())
    if match is None or (match["integer"] is None and match["fraction"] is None):
        return None
    negative = "-" in text
    integer = (match["integer"] or "").replace(",", "").lstrip("0") or "0"
    fraction = (match["fraction"] or "").rstrip("0")
    digits = f"{integer}.{fraction}" if fraction else integer
    return "-" + digits if negative and digits != "0" else digits


def _stated_number(statement: str) -> str | None:
    """The number a final-answer statement names: its numerals (calculator notes aside)
    must all be valid and one value, and it must not say "or"."""
    statement = _CALCULATION.sub("", statement)
    if _OR.search(statement):
        return None
    return _one_value([normalize_number(n.rstrip(",.")) for n in _NUMERAL.findall(statement)])


def _one_value(values: list[str | None]) -> str | None:
    """The value every statement names; None when there are none, or any is unreadable
    or differs (a hedge)."""
    if not values or None in values or len(set(values)) != 1:
        return None
    return values[0]


class GSM8KChecker(AnswerChecker):
    """Numeric final-answer checker for GSM8K-style problems."""

    def __init__(self, mode: str = "strict") -> None:
        if mode not in MODES:
            raise MonkeysError(f"unknown gsm8k mode {mode!r}; use gsm8k:strict or gsm8k:flexible")
        self.mode = mode

    def extract(self, completion: str) -> str | None:
        if self.mode == "strict":
            return _one_value([normalize_number(s) for s in _STRICT.findall(completion)])
        statements = _ANSWER_IS.findall(completion)
        if statements:
            return _one_value([_stated_number(s) for s in statements])
        return _last_number(completion)

    def target(self, doc: dict[str, Any]) -> str:
        answer = normalize_number(doc["answer"].split("####")[-1])
        if answer is None:
            raise MonkeysError(f"GSM8K record has no numeric '#### N' answer: {doc['answer']!r}")
        return answer

    def is_correct(self, answer: str, target: str) -> bool:
        return answer == target


def _last_number(text: str) -> str | None:
    """The last numeral of ``text``: valid, and not the second half of "A or B"."""
    before = last = None
    for numeral in _NUMERAL.finditer(text):
        before, last = last, numeral
    if last is None:
        return None
    value = normalize_number(last.group().rstrip(",."))
    if before is not None and _JUST_OR.fullmatch(text, before.end(), last.start()):
        return _one_value([normalize_number(before.group().rstrip(",.")), value])
    return value


def gsm8k(options: str) -> GSM8KChecker:
    """``gsm8k`` (strict: the ``#### N`` line) or ``gsm8k:flexible`` (the last number)."""
    return GSM8KChecker(options or "strict")
