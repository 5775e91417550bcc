"""Output comparison as DeepMind's CodeContests tester does it.

Whitespace-separated tokens, compared case-insensitively; two integer tokens must be the
same integer; otherwise two numbers match within an absolute 1e-5, computed in exact
decimal arithmetic (no float rounding, so no relative slack on large answers); ``nan`` and
``inf`` are not numbers here, so they match only the same word.
"""

from __future__ import annotations

import re
from decimal import Decimal, Inexact, localcontext

ABSOLUTE_TOLERANCE = Decimal("1e-5")
RULE = "tokens, case-insensitive; integers exact; other numbers within absolute 1e-5"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Enough digits for any two sensible answers; a difference that needs more is not "close".
_PRECISION = 200


def same_output(actual: bytes, expected: str) -> bool:
    """Whether a program's output matches a test's expected output."""
    got = actual.decode("utf-8", "replace").split()
    want = expected.split()
    return len(got) == len(want) and all(map(same_token, got, want))


def same_token(got: str, want: str) -> bool:
    if got.lower() == want.lower():
        return True
    if _INTEGER.fullmatch(got) and _INTEGER.fullmatch(want):
        return _canonical_integer(got) == _canonical_integer(want)
    if not (_NUMBER.fullmatch(got) and _NUMBER.fullmatch(want)):
        return False
    with localcontext() as context:
        context.prec = _PRECISION
        context.traps[Inexact] = True
        try:
            return abs(Decimal(got) - Decimal(want)) <= ABSOLUTE_TOLERANCE
        except Inexact:
            return False


def _canonical_integer(token: str) -> str:
    """Sign and digits without leading zeros (no int(): answers may have 10,000 digits)."""
    digits = token.lstrip("+-").lstrip("0") or "0"
    negative = token.startswith("-") and digits != "0"
    return ("-" if negative else "") + digits
