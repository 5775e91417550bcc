"""MATH: final-answer extraction and equivalence on math-verify's parse of the answer as written.

The answer is taken from the Minerva format ("Final Answer: The final answer is X") or,
failing that, the last ``\\boxed{}``. Only rewrites that cannot change its meaning are
applied (surrounding whitespace, ``$`` delimiters, a trailing period, a trailing percent
sign as MATH writes it); targets and answers are then parsed by math-verify's LaTeX reader
as written, so equations, matrices, intervals, sets, tuples and text answers keep their
structure.

A hedged answer never matches: an answer is read whole or not at all (math-verify's
fallback to the last number it can find, which reads ``18 \\lor 20`` or ``18 \\to 20`` as
``20``, is not used); a chain ``a = b = c`` (or with ``\\approx``) whose constant members
differ is unreadable; several Minerva final-answer statements must agree. On the parsed
forms:

- numbers are exact: a decimal is the number it writes (``11111111105.0`` is not
  ``11111111100``, ``0.33`` is not ``1/3``), compared as rationals;
- the one tolerance: a target written as a decimal is matched by an exact answer that
  rounds to it at the target's places (target ``0.33``, answer ``\\frac{1}{3}``);
- an equation matches only the same equation up to scaling and rearrangement
  (``5x - 7y + 11z + 4 = 0`` is ``-10x + 14y - 22z = 8``, not ``0``); a target ``x = v``
  with a constant ``v`` also accepts ``v``, and an answer ``x = v`` counts as ``v``;
- everything else is ``math_verify.verify`` with the target as gold, retried with ``i``
  read as the imaginary unit (``e^{i\\pi} = -1``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeVar

import sympy
from lm_eval.tasks.minerva_math.utils import last_boxed_only_string, remove_boxed
from math_verify import LatexExtractionConfig, parse, verify
from math_verify.errors import TimeoutException
from math_verify.utils import timeout

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import AnswerChecker

# Part of every target key: verdicts cached under an older comparison rule are not reused.
RULES_VERSION = "math-v3"
_KEY_PREFIX = f"{RULES_VERSION}|"
_MINERVA = re.compile(r"[Ff]inal [Aa]nswer: The final answer is")
# Every final-answer statement of a Minerva-format completion, with or without its prefix.
_STATEMENT = re.compile(r"(?:[Ff]inal [Aa]nswer:\s*)?[Tt]he final answer is")
_I_HOPE = re.compile(r"\.\s*I hope")
# Links of a chain: ``=`` (not ``<=``, ``>=``, ``!=``, ``:=``, ``\\=``) and ``\\approx``.
_LINK = re.compile(r"(?<![\\<>!:])=|\\approx(?![A-Za-z])")
# The answer as one LaTeX expression; no fallback to the numbers found inside it.
_WHOLE_LATEX = [LatexExtractionConfig()]
_INNER_DOLLAR = re.compile(r"(?<!\\)\$")
# A list (``x = 1, x = 2``, ``x = 1 \\text{ or } x = 2``); not the spaces ``\\,``, ``\\;``
# nor the thousands separator ``{,}``.
_LIST_SEPARATOR = re.compile(r"(?<![\\{])[,;]|\\(?:text|mbox|textrm|mathrm)\{\s*(?:or|and)\s*\}")
_DECIMAL = re.compile(r"\d*\.\d+")
_TIMEOUT_S = 5
# Fixed points at which free symbols are evaluated for grouping keys: distinct, far from
# special values, so different expressions almost never collide (a collision only costs a
# math-verify call, never a wrong grouping).
_PROBE = (0.5772156649, 1.4142135623, 2.7182818284, 0.3183098861, 1.6180339887)


def tidy_answer(raw: str) -> str | None:
    """The answer as written, less what cannot carry meaning: outer whitespace, ``$``
    delimiters, a final period and a final percent sign (MATH writes ``18\\%`` for 18)."""
    text, before = raw.strip(), None
    while text != before:
        before = text
        text = text.removesuffix(".").removesuffix("\\%").removesuffix("%").strip()
        if len(text) >= 2 and text[0] == "$" and text[-1] == "$":
            text = text[1:-1].strip()
    return text or None


def extract_math_answer(text: str) -> str | None:
    """The final answer of a MATH-style solution, tidied, or None (also when the solution
    states several different final answers)."""
    if _MINERVA.search(text):
        return _stated_answer(text)
    boxed = last_boxed_only_string(text)
    if boxed is None:
        return None
    try:
        return tidy_answer(remove_boxed(boxed))
    except (AssertionError, IndexError):
        return None


def _stated_answer(text: str) -> str | None:
    """The answer every "the final answer is" statement of ``text`` gives, or None when
    they differ (a hedge) or one is empty. A statement runs to the next one, to "I hope"
    or to the end."""
    starts = list(_STATEMENT.finditer(text))
    answers = []
    for statement, following in zip(starts, [*starts[1:], None], strict=True):
        segment = text[statement.end() : following.start() if following else len(text)]
        hope = _I_HOPE.search(segment)
        answer = tidy_answer(segment[: hope.start()] if hope else segment)
        if answer is None:
            return None
        answers.append(answer)
    first = answers[0]
    return first if all(math_equivalent(first, other) for other in answers[1:]) else None


@dataclass(frozen=True)
class Parsed:
    """math-verify's reading of an answer, its decimals replaced by the rationals they write;
    ``places`` is the number of decimals when the answer is one decimal number, ``decimal``
    whether it writes any decimal (and so is not exact)."""

    value: Any
    places: int | None = None
    decimal: bool = False


@lru_cache(maxsize=1 << 16)
def parse_answer(answer: str) -> Parsed | None:
    """The parsed form of a tidied answer, or None when math-verify cannot read it whole
    or it is a chain with different constant members."""
    if _INNER_DOLLAR.search(answer):  # several formulas: math-verify would read only one
        return None
    one_line = " ".join(answer.split())  # LaTeX reads a line break as a space; the reader stops
    found = parse(f"${one_line}$", extraction_config=_WHOLE_LATEX, parsing_timeout=_TIMEOUT_S)
    items = [p for p in found if not isinstance(p, str)]
    if not items:
        return None
    members = _LINK.split(answer)
    if len(members) > 1 and not _LIST_SEPARATOR.search(answer):
        if not _consistent_chain(members):  # (a list of equations is compared as a set)
            return None
    value = items[0]
    places = None
    if isinstance(value, sympy.Float):
        literals = _DECIMAL.findall(answer)
        places = len(literals[0].split(".")[1]) if len(literals) == 1 else None
    decimal = bool(_DECIMAL.search(answer))
    return Parsed(_exact(value), places, decimal)


def _consistent_chain(members: list[str]) -> bool:
    """Whether ``a = b = c`` (or ``a \\approx b``) names one value: every member parses on
    its own, and every member after the first (the first too when it is a constant) is
    the last one's value, or a decimal rounding of it."""
    parsed = [parse_answer(member.strip()) for member in members]
    readable = [p for p in parsed if p is not None]
    if len(readable) != len(parsed):
        return False
    first, *rest = readable
    if _is_expr(first.value) and not _symbols(first.value):
        rest.append(first)
    return all(_agree(readable[-1], member) for member in rest)


def _agree(a: Parsed, b: Parsed) -> bool:
    """Whether two members of a chain have one value, a decimal standing for its rounding."""
    if a.places is not None and not b.decimal:
        return _rounds_to(b.value, a.value, a.places) or _same_value(a.value, b.value)
    if b.places is not None and not a.decimal:
        return _rounds_to(a.value, b.value, b.places) or _same_value(a.value, b.value)
    return bool(_same_value(a.value, b.value))


def _exact(value: Any) -> Any:
    """``value`` with every float replaced by the rational its (15 significant) digits write."""
    if isinstance(value, sympy.MatrixBase):
        return value.applyfunc(_exact)
    if isinstance(value, sympy.Basic):
        floats = value.atoms(sympy.Float)
        if floats:
            return value.xreplace({f: sympy.Rational(str(f)) for f in floats})
    return value


T = TypeVar("T")


def _safely(compute: Callable[[], T], default: T) -> T:
    """``compute()`` within math-verify's time limit; model output that sympy cannot handle
    in time, or at all (huge powers overflow), gets ``default``: never a match, never a
    crash. The limit is a SIGALRM, so it applies on the main thread only (as math-verify's)."""
    on_main = threading.current_thread() is threading.main_thread()
    try:
        return (timeout(_TIMEOUT_S)(compute) if on_main else compute)()
    except (Exception, TimeoutException):  # arbitrary model output: any failure is a "no"
        return default


def _equation(value: Any) -> sympy.Eq | None:
    """An equation or a chain ``a = b = c`` (as ``a = c``), else None."""
    if isinstance(value, sympy.Eq):
        return value
    if isinstance(value, sympy.And) and all(isinstance(a, sympy.Eq) for a in value.args):
        chain = value._unsorted_args
        return sympy.Eq(chain[0].lhs, chain[-1].rhs, evaluate=False)
    return None


def _is_expr(value: Any) -> bool:
    return isinstance(value, sympy.Expr) and not isinstance(value, sympy.MatrixBase)


def _same_equation(target: sympy.Eq, answer: sympy.Eq) -> bool:
    """Same equation up to a non-zero constant factor and moving terms across ``=``."""
    if not all(_is_expr(side) for side in (*target.args, *answer.args)):
        return target.lhs == answer.lhs and _same_value(target.rhs, answer.rhs)
    t, a = target.lhs - target.rhs, answer.lhs - answer.rhs
    if t == 0 or a == 0:
        return bool(t == a)

    def constant_ratio() -> bool:
        ratio = sympy.cancel(sympy.together(a / t))
        return bool(ratio.is_number and ratio.is_finite and ratio != 0)

    return _safely(constant_ratio, False)


def _same_value(target: Any, answer: Any) -> bool:
    """math-verify's verdict on two non-equations, retried with ``i`` as the imaginary unit."""
    if verify(target, answer, timeout_seconds=_TIMEOUT_S):
        return True
    imaginary = {s: sympy.I for s in _symbols(target) | _symbols(answer) if str(s) == "i"}
    if not imaginary:
        return False
    return verify(
        _substituted(target, imaginary),
        _substituted(answer, imaginary),
        timeout_seconds=_TIMEOUT_S,
    )


def _symbols(value: Any) -> set[sympy.Symbol]:
    return set(getattr(value, "free_symbols", ()))


def _substituted(value: Any, mapping: dict[sympy.Symbol, Any]) -> Any:
    return value.xreplace(mapping) if isinstance(value, sympy.Basic) else value.subs(mapping)


def _rounds_to(answer: Any, target: Any, places: int) -> bool:
    """Whether an exact number rounds to a decimal target at the target's places (is
    within half a unit of its last place)."""
    if not _is_expr(answer) or answer.free_symbols:
        return False
    if isinstance(answer, sympy.Rational):
        value: Fraction | None = Fraction(int(answer.p), int(answer.q))
    else:  # 40 digits: an irrational number never sits within 1e-40 of a rounding edge
        value = _safely(lambda: _real_digits(answer, 40), None)
    if value is None:
        return False
    # Strictly inside: a value halfway between two decimals rounds to neither unambiguously.
    return abs(value - Fraction(int(target.p), int(target.q))) < Fraction(1, 2 * 10**places)


def _real_digits(value: sympy.Expr, digits: int) -> Fraction | None:
    approx = sympy.N(value, digits)
    return Fraction(str(approx)) if approx.is_real and approx.is_finite else None


def matches(target: Parsed, answer: Parsed, *, decimal_tolerance: bool = True) -> bool:
    """Whether ``answer`` denotes what ``target`` does, under the rules in the module doc."""
    if decimal_tolerance and target.places is not None and not answer.decimal:
        if _rounds_to(answer.value, target.value, target.places):
            return True
    t_eq, a_eq = _equation(target.value), _equation(answer.value)
    if t_eq is not None and a_eq is not None:
        return _same_equation(t_eq, a_eq)
    if t_eq is not None:  # only a target ``x = constant`` may be answered by its value
        if not (isinstance(t_eq.lhs, sympy.Symbol) and not _symbols(t_eq.rhs)):
            return False
        return matches(Parsed(t_eq.rhs), answer, decimal_tolerance=False)
    if a_eq is not None:  # ``x = v`` answers with v; ``x + y = 0`` is not the value 0
        if not isinstance(a_eq.lhs, sympy.Symbol):
            return False
        return _same_value(target.value, a_eq.rhs)
    return _same_value(target.value, answer.value)


@lru_cache(maxsize=1 << 16)
def math_equivalent(a: str, b: str) -> bool:
    """Whether two tidied MATH answers denote the same object (no decimal tolerance, so the
    relation is symmetric: it groups votes)."""
    if a == b:
        return True
    pa, pb = parse_answer(a), parse_answer(b)
    if pa is None or pb is None:
        return False
    return matches(pa, pb, decimal_tolerance=False) and matches(pb, pa, decimal_tolerance=False)


@lru_cache(maxsize=1 << 16)
def group_key(answer: str) -> str:
    """A key equal for answers denoting the same object (up to rounding at 10 significant
    digits), cheap to compute; answers with different keys are never compared."""
    parsed = parse_answer(answer)
    return "text:" + answer if parsed is None else _key(parsed.value)


def _key(value: Any) -> str:
    equation = _equation(value)
    if equation is not None:
        return "eq:" + ",".join(sorted(map(str, _symbols(equation))))
    if isinstance(value, sympy.MatrixBase):
        return f"matrix{value.shape}:" + ";".join(_key(v) for v in value)
    if isinstance(value, sympy.Interval):
        return f"interval{value.left_open}{value.right_open}:{_key(value.start)};{_key(value.end)}"
    if isinstance(value, sympy.FiniteSet):
        return "set:" + ";".join(sorted(_key(v) for v in value.args))
    if isinstance(value, sympy.Tuple):
        return "tuple:" + ";".join(_key(v) for v in value.args)
    if _is_expr(value):
        return _expr_key(value)
    return "other:" + type(value).__name__


def _expr_key(value: sympy.Expr) -> str:
    symbols = sorted(value.free_symbols, key=str)
    factors = value.args if isinstance(value, sympy.Mul) else (value,)
    if symbols and all(isinstance(f, sympy.Symbol | sympy.NumberSymbol) for f in factors):
        # Text read as letters (``Evelyn`` = E*e*l*n*v*y, ``\text{Evelyn}`` = evelyn).
        return "text:" + "".join(sorted("".join(map(str, factors)).lower()))
    point = {s: _PROBE[i % len(_PROBE)] + i for i, s in enumerate(symbols)}
    point.update({s: sympy.I for s in symbols if str(s) == "i"})
    number = _safely(lambda: complex(sympy.N(value.xreplace(point), 15)), None)
    if number is None:  # no numeric value: compared with every such answer of its symbols
        return "expr:" + ",".join(map(str, symbols))
    parts = (f"{part:.9e}" if part != 0 else "0" for part in (number.real, number.imag))
    return "num:" + ",".join(map(str, symbols)) + ":" + ":".join(parts)


def reference_answer(doc: dict[str, Any]) -> str | None:
    """A MATH record's answer as written (its target key less the rules version)."""
    # MATH-500 records carry the short answer; MATH records only the solution.
    if doc.get("answer"):
        return tidy_answer(str(doc["answer"]))
    return extract_math_answer(doc["solution"])


class MathChecker(AnswerChecker):
    """Equivalence-based checker for MATH and MATH-500."""

    def extract(self, completion: str) -> str | None:
        return extract_math_answer(completion)

    def target(self, doc: dict[str, Any]) -> str:
        return _KEY_PREFIX + (reference_answer(doc) or "")

    def is_correct(self, answer: str, target: str) -> bool:
        written = target.removeprefix(_KEY_PREFIX)
        if answer == written:
            return True
        pt, pa = parse_answer(written), parse_answer(answer)
        return pt is not None and pa is not None and matches(pt, pa)

    def equivalent(self, a: str, b: str) -> bool:
        return math_equivalent(a, b)

    def group_key(self, answer: str) -> str:
        return group_key(answer)


def math(options: str) -> MathChecker:
    if options:
        raise MonkeysError(f"math takes no options, got math:{options}")
    return MathChecker()
