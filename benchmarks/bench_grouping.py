"""Grouping one MATH problem's distinct wrong answers into vote classes: keyed vs pairwise.

    python benchmarks/bench_grouping.py [--sizes 100,1000] [--budget 60]

Answers as models write them: integers, fractions, decimals, radicals, multiples of pi,
polynomials, intervals, tuples, matrices and words, about one in ten another spelling of
an earlier one (``\\frac{2}{4}`` after ``\\frac{1}{2}``), so grouping has work to do.
After: the MATH checker's group keys, math-verify only among answers with equal keys.
Before (the previous MATH checker's grouping, measured in the same run): one bucket, every
answer compared with every class so far; stopped after ``--budget`` seconds, reporting how
many answers it had placed. Parse caches are cleared before each measurement.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from lm_eval_monkeys.metrics.summary import Equivalence, summarize
from lm_eval_monkeys.verifiers import get_checker
from lm_eval_monkeys.verifiers.answers.math import group_key, math_equivalent, parse_answer


def wrong_answers(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct answer strings, about 10% respellings of earlier fractions."""
    rng = random.Random(seed)
    fractions: list[tuple[int, int]] = []

    def fraction() -> str:
        fractions.append((rng.randint(1, 99), rng.randint(2, 99)))
        p, q = fractions[-1]
        return f"\\frac{{{p}}}{{{q}}}"

    def respelled() -> str:
        p, q = rng.choice(fractions)
        return rng.choice([f"{p}/{q}", f"\\dfrac{{{p}}}{{{q}}}", f"\\frac{{{2 * p}}}{{{2 * q}}}"])

    words = ["odd", "even", "neither", "east", "west"]
    makers: list[Callable[[], str]] = [
        lambda: str(rng.randint(-500, 5000)),
        fraction,
        lambda: f"{rng.randint(0, 99)}.{rng.randint(1, 99)}",
        lambda: f"{rng.randint(2, 30)}\\sqrt{{{rng.choice([2, 3, 5, 6, 7, 10, 11])}}}",
        lambda: f"\\frac{{{rng.randint(1, 12)}\\pi}}{{{rng.randint(2, 12)}}}",
        lambda: f"x^{rng.randint(2, 4)} + {rng.randint(1, 9)}x - {rng.randint(1, 9)}",
        lambda: f"[{rng.randint(-9, 0)}, {rng.randint(1, 9)})",
        lambda: f"({rng.randint(-9, 9)}, {rng.randint(-9, 9)})",
        lambda: (
            f"\\begin{{pmatrix}} {rng.randint(-9, 9)} \\\\ {rng.randint(-9, 9)} \\end{{pmatrix}}"
        ),
        lambda: f"\\text{{{rng.choice(words)}{rng.randint(1, 999)}}}",
    ]
    answers: list[str] = []
    seen: set[str] = set()
    while len(answers) < count:
        text = respelled() if fractions and rng.random() < 0.1 else rng.choice(makers)()
        if text not in seen:
            seen.add(text)
            answers.append(text)
    return answers


class OutOfTime(Exception):
    pass


def grouped(answers: list[str], keyed: bool, budget: float) -> tuple[float, int, int, int]:
    """Seconds, answers placed, classes and equivalence calls of one grouping."""
    for cache in (parse_answer, math_equivalent, group_key):
        cache.cache_clear()
    checker = get_checker("math")
    placed, calls = 0, 0
    start = time.perf_counter()

    def key(answer: str) -> str:
        nonlocal placed
        placed += 1
        return checker.group_key(answer) if keyed else ""

    def same(a: str, b: str) -> bool:
        nonlocal calls
        if time.perf_counter() - start > budget:
            raise OutOfTime
        calls += 1
        return checker.equivalent(a, b)

    try:
        summary, _ = summarize(answers, dict.fromkeys(answers, False), Equivalence(key, same))
        classes = len(summary.class_sizes)
    except OutOfTime:
        placed, classes = placed - 1, -1
    return time.perf_counter() - start, placed, classes, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="distinct answers per problem")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the baseline")
    args = parser.parse_args()
    header = ("answers", "method", "seconds", "placed", "classes", "calls")
    print("{:>8s} {:>9s} {:>8s} {:>7s} {:>8s} {:>7s}".format(*header))
    for size in (int(s) for s in args.sizes.split(",")):
        answers = wrong_answers(size)
        for keyed, name in ((True, "keyed"), (False, "pairwise")):
            seconds, placed, classes, calls = grouped(answers, keyed, args.budget)
            shown = str(classes) if classes >= 0 else "-"
            print(f"{size:8d} {name:>9s} {seconds:8.2f} {placed:7d} {shown:>8s} {calls:7d}")


if __name__ == "__main__":
    main()
