"""Output comparison as DeepMind's CodeContests tester does it.

Tokens separated by ASCII whitespace, compared with ASCII-only case folding (bytes, never
decoded: a Kelvin sign is not ``k`` and a no-break space is not a separator); two integer
tokens must be the same integer; otherwise two numbers match within an absolute 1e-5,
computed exactly in decimal arithmetic (no float rounding, so no relative slack on large
answers; digits of any length); ``nan`` and ``inf`` are not numbers here, so they match
only the same word. Tokens are compared one pair at a time, as they are found: no list
of the output's tokens is ever built, so a 64 MiB output costs the checker no more than
its bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import MAX_EMAX, MIN_EMIN, Decimal, DecimalException, localcontext
from itertools import zip_longest

ABSOLUTE_TOLERANCE = Decimal("1e-5")
RULE = (
    "ASCII-whitespace tokens, ASCII case-insensitive; integers exact; other numbers "
    "within absolute 1e-5, exactly"
)
_WHITESPACE = b" \t\n\v\f\r"  # what bytes.split() splits on
_WHITESPACE_AT = re.compile(rb"[ \t\n\v\f\r]")
_CHUNK = 1 << 20
_INTEGER = re.compile(rb"[+-]?[0-9]+")
_NUMBER = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Past this many digits between a difference's first and last digit (only an exponent
# can ask for that many: written-out digits are counted in), exact arithmetic would cost
# more than the tokens' own size; such numbers match only when equal.
_DIGITS_PER_TOKEN_BYTE = 2
_SPARE_DIGITS = 64


def same_output(actual: bytes, expected: str) -> bool:
    """Whether a program's output matches a test's expected output."""
    pairs = zip_longest(_tokens(actual), _tokens(expected.encode("utf-8", "surrogatepass")))
    return all(
        got == want or (got is not None and want is not None and same_token(got, want))
        for got, want in pairs
    )


def _tokens(text: bytes) -> Iterator[bytes]:
    """The tokens of ``text``, split a chunk at a time (at a separator) to bound memory."""
    start = 0
    while start < len(text):
        end = start + _CHUNK
        if end < len(text):
            cut = max(text.rfind(space, start, end) for space in _WHITESPACE)
            if cut <= start:  # one token longer than a chunk: up to its end
                found = _WHITESPACE_AT.search(text, end)
                cut = found.start() if found else len(text)
            end = cut
        yield from text[start:end].split()
        start = end


def same_token(got: bytes, want: bytes) -> bool:
    if got.lower() == want.lower():  # bytes.lower() folds ASCII letters only
        return True
    if _INTEGER.fullmatch(got) and _INTEGER.fullmatch(want):
        return _canonical_integer(got) == _canonical_integer(want)
    if not (_NUMBER.fullmatch(got) and _NUMBER.fullmatch(want)):
        return False
    try:  # an exponent past what decimal holds (1e99999999999999999999) is no number
        numbers = Decimal(got.decode()), Decimal(want.decode())
    except DecimalException:
        return False
    return _within_tolerance(*numbers, token_bytes=len(got) + len(want))


def _within_tolerance(got: Decimal, want: Decimal, token_bytes: int) -> bool:
    """|got - want| <= 1e-5, exactly: the subtraction gets every digit it needs."""
    if got == want:  # comparisons are exact whatever the exponents
        return True
    exponents = [got.as_tuple().exponent, want.as_tuple().exponent, -5]
    highest = max(got.adjusted(), want.adjusted(), -5)
    lowest = min(e for e in exponents if isinstance(e, int))
    digits = highest - lowest + 2
    if digits > _DIGITS_PER_TOKEN_BYTE * token_bytes + _SPARE_DIGITS:
        return False
    with localcontext() as context:
        context.prec = digits
        context.Emax, context.Emin = MAX_EMAX, MIN_EMIN
        try:
            return abs(got - want) <= ABSOLUTE_TOLERANCE
        except DecimalException:
            return False


def _canonical_integer(token: bytes) -> bytes:
    """Sign and digits without leading zeros (no int(): answers may have 10,000 digits)."""
    digits = token.lstrip(b"+-").lstrip(b"0") or b"0"
    negative = token.startswith(b"-") and digits != b"0"
    return (b"-" if negative else b"") + digits
