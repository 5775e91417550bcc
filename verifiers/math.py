"""MATH: final-answer extraction and equivalence via math-verify, plus a numeric fallback.

The answer is taken from the Minerva format ("Final Answer: The final answer is X") or,
failing that, the last ``\\boxed{}``; it is normalised with lm-eval's Minerva rules and
compared with ``math_verify.verify``. Where math-verify says no, both sides are evaluated
numerically (complex-valued) and compared to 1e-9 relative: this catches identities it
misses, such as ``e^{i\\pi} = -1``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import sympy
from lm_eval.tasks.minerva_math.utils import (
    last_boxed_only_string,
    normalize_final_answer,
    remove_boxed,
)
from math_verify import parse, verify

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import AnswerChecker

_MINERVA = re.compile(
    r"[Ff]inal [Aa]nswer: The final answer is\s*(.+?)(?:\.\s*I hope|\.?\s*$)", re.S
)
_TIMEOUT_S = 5


def extract_math_answer(text: str) -> str | None:
    """The final answer of a MATH-style solution, normalised, or None."""
    match = _MINERVA.search(text)
    if match:
        raw = match.group(1).strip()
    else:
        boxed = last_boxed_only_string(text)
        if boxed is None:
            return None
        try:
            raw = remove_boxed(boxed)
        except (AssertionError, IndexError):
            return None
    answer = normalize_final_answer(raw)
    return answer or None


@lru_cache(maxsize=1 << 16)
def _parsed(answer: str) -> tuple[Any, ...]:
    return tuple(parse(f"${answer}$", parsing_timeout=_TIMEOUT_S))


def _numeric(parsed: tuple[Any, ...]) -> complex | None:
    """The complex value of a parsed answer without free variables (``i`` = imaginary unit)."""
    for item in parsed:
        if isinstance(item, sympy.Expr):
            item = item.subs({s: sympy.I for s in item.free_symbols if str(s) == "i"})
            if item.free_symbols:
                return None
            try:
                return complex(sympy.N(item, 30))
            except (TypeError, ValueError):
                return None
    return None


@lru_cache(maxsize=1 << 16)
def math_equivalent(a: str, b: str) -> bool:
    """Whether two normalised MATH answers denote the same mathematical object."""
    if a == b:
        return True
    pa, pb = _parsed(a), _parsed(b)
    if not pa or not pb:
        return False
    if isinstance(pa[0], sympy.Rational) and isinstance(pb[0], sympy.Rational):
        return bool(pa[0] == pb[0])  # exact numbers: skip sympy's simplify
    if verify(list(pa), list(pb), timeout_seconds=_TIMEOUT_S):
        return True
    va, vb = _numeric(pa), _numeric(pb)
    return va is not None and vb is not None and abs(va - vb) <= 1e-9 * max(1.0, abs(vb))


class MathChecker(AnswerChecker):
    """Equivalence-based checker for MATH and MATH-500."""

    def extract(self, completion: str) -> str | None:
        return extract_math_answer(completion)

    def target(self, doc: dict[str, Any]) -> str:
        # MATH-500 records carry the short answer; MATH records only the solution.
        if doc.get("answer"):
            return normalize_final_answer(str(doc["answer"]))
        answer = extract_math_answer(doc["solution"])
        return answer if answer is not None else ""

    def is_correct(self, answer: str, target: str) -> bool:
        return math_equivalent(target, answer)

    def equivalent(self, a: str, b: str) -> bool:
        return math_equivalent(a, b)

    def group_key(self, answer: str) -> str:
        return ""  # no canonical form yet: any two answers may be equivalent


def math(options: str) -> MathChecker:
    if options:
        raise MonkeysError(f"math takes no options, got math:{options}")
    return MathChecker()
