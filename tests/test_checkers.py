"""Answer extraction and equivalence for GSM8K and MATH, and per-problem grouping."""

from __future__ import annotations

import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.verifiers import get_checker
from lm_eval_monkeys.verifiers.answers.gsm8k import GSM8KChecker, normalize_number
from lm_eval_monkeys.verifiers.answers.math import extract_math_answer, math_equivalent

GSM_DOC = {"question": "?", "answer": "Janet sells 16 - 3 - 4 = 9 eggs.\n#### 1,018"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,018", "1018"),
        ("$1,018.", "1018"),
        ("18.00", "18"),
        ("-3", "-3"),
        ("0.50", "0.5"),
        ("$ 7", "7"),
        ("-0", "0"),
        ("abc", None),
        ("1.2.3", None),
    ],
)
def test_normalize_number(text: str, expected: str | None) -> None:
    assert normalize_number(text) == expected


@pytest.mark.parametrize(
    ("completion", "strict", "flexible"),
    [
        ("She sells 9 eggs.\n#### 1,018", "1018", "1018"),
        ("So 2+2=4.\n#### $1018.00.", "1018", "1018"),
        ("The answer is 1018.", None, "1018"),
        ("9 * 2 = 18 dollars", None, "18"),
        ("#### 5\nQuestion: then 7", "5", "7"),
        ("no numbers at all", None, None),
        ("####", None, None),
    ],
)
def test_gsm8k_extraction_modes(completion: str, strict: str | None, flexible: str | None) -> None:
    assert get_checker("gsm8k").extract(completion) == strict
    assert get_checker("gsm8k:flexible").extract(completion) == flexible


def test_gsm8k_target_and_verdict() -> None:
    checker = get_checker("gsm8k")
    target = checker.target(GSM_DOC)
    assert target == "1018"
    assert checker.is_correct("1018", target)
    assert not checker.is_correct("1017", target)


def test_unknown_checker_and_mode_are_clear_errors() -> None:
    with pytest.raises(MonkeysError, match="unknown checker 'nope'"):
        get_checker("nope")
    with pytest.raises(MonkeysError, match="gsm8k:flexible"):
        get_checker("gsm8k:loose")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $x=2$.\nFinal Answer: The final answer is $[2,5)$. I hope it is correct.", "[2,5)"),
        ("Thus the area is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("First $\\boxed{3}$ then $\\boxed{4}$", "4"),
        ("Final Answer: The final answer is 12", "12"),
        ("I give up.", None),
    ],
)
def test_math_extraction(text: str, expected: str | None) -> None:
    assert extract_math_answer(text) == expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{1}{2}", "\\frac12", True),
        ("e^{i\\pi}", "-1", True),  # missed by math-verify alone
        ("\\sqrt{8}", "2\\sqrt{2}", True),
        ("[2,5)", "[2,5)", True),
        ("3", "4", False),
        ("\\frac{1}{3}", "0.33", False),
    ],
)
def test_math_equivalence(a: str, b: str, same: bool) -> None:
    assert math_equivalent(a, b) is same


def test_math_targets_from_both_hub_schemas() -> None:
    checker = get_checker("math")
    from_solution = checker.target({"problem": "?", "solution": "so $\\boxed{\\frac{3}{4}}$."})
    from_answer = checker.target({"problem": "?", "solution": "...", "answer": "\\frac{3}{4}"})
    assert from_solution == from_answer == "math-v3|\\frac{3}{4}"


class CountingChecker(GSM8KChecker):
    """The real GSM8K checker, counting how often a verdict is computed."""

    def __init__(self) -> None:
        super().__init__("strict")
        self.verdicts = 0

    def is_correct(self, answer: str, target: str) -> bool:
        self.verdicts += 1
        return super().is_correct(answer, target)


def test_summary_checks_each_distinct_answer_once_and_groups_votes() -> None:
    checker = CountingChecker()
    completions = ["#### 1,018"] * 5 + ["#### 1018.0"] * 2 + ["#### 7"] * 3 + ["none", "", "#### 9"]
    scored = score_completions(checker, {"answer": "#### 1018"}, completions)
    assert checker.verdicts == 3  # 1018, 7, 9: not 13
    summary = scored.summary
    assert (summary.n, summary.c, summary.n_invalid) == (13, 7, 2)
    assert summary.class_sizes == (7, 3, 1)
    assert summary.class_correct == (True, False, False)
    assert scored.correct == [True] * 7 + [False] * 6
    assert scored.answers[10:] == [None, None, "9"]


def test_math_summary_groups_equivalent_wrong_answers() -> None:
    completions = [
        "$\\boxed{\\frac{1}{2}}$",
        "$\\boxed{0.5}$",
        "$\\boxed{2}$",
        "$\\boxed{\\frac{4}{2}}$",
        "$\\boxed{3}$",
        "nothing",
    ]
    summary = score_completions(get_checker("math"), {"answer": "\\frac12"}, completions).summary
    assert summary.c == 2
    assert summary.class_sizes == (2, 2, 1)  # {1/2, 0.5} {2, 4/2} {3}
    assert summary.class_correct == (True, False, False)
    assert summary.n_invalid == 1


def test_bad_completions_count_as_incorrect_not_dropped() -> None:
    bad = ["", "#### 1018\udc80", None, 42]
    scored = score_completions(get_checker("gsm8k:flexible"), {"answer": "#### 1018"}, bad)
    assert scored.summary.n == 4
    assert scored.correct == [False] * 4
    assert scored.summary.n_invalid == 4
