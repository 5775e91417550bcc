"""Answer checkers against hostile answers: each input is right only if the checker is wrong
(a hedge naming the target among other values, a number in an invalid format, a rounding,
an input too big for ``Decimal``), and the real references still pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.verifiers import get_checker

GSM_18 = {"question": "?", "answer": "9 * 2 = <<9*2=18>>18\n#### 18"}
GSM_20 = {"question": "?", "answer": "10 * 2 = <<10*2=20>>20\n#### 20"}
DATA = Path(os.environ.get("MONKEYS_DATA_DIR", "../shared/data"))


def gsm8k_correct(spec: str, completion: str, doc: dict) -> bool:
    checker = get_checker(spec)
    answer = checker.extract(completion)
    return answer is not None and checker.judge_many([answer], checker.target(doc))[0].correct


@pytest.mark.parametrize(
    "completion",
    [
        "#### 18/5",
        "#### 18e3",
        "#### 18^2",
        "#### 18 000",
        "#### 1,8",
        "#### 18-20",
        "#### 18 or 20",
        "#### 17.99999999999999999999999999999",
    ],
)
def test_gsm8k_strict_takes_one_number_in_a_valid_format_exactly(completion: str) -> None:
    """Each was judged correct for 18 (the digits it starts with, or a 28-digit rounding)."""
    assert not gsm8k_correct("gsm8k", completion, GSM_18)


def test_gsm8k_strict_refuses_several_different_final_answers() -> None:
    """Judged correct for 20 (the first ``####``)."""
    assert not gsm8k_correct("gsm8k", "#### 20\n#### 18", GSM_20)


@pytest.mark.parametrize(
    "completion",
    [
        "The answer is 18 or 20.",
        "The answer is 18 (or 20).",
        "The answer is 20. No wait, the answer is 18.",
        "The answer is 18/5.",
        "So she pays either 20 or 18",
        "The answer is 17.99999999999999999999999999999.",
    ],
)
def test_gsm8k_flexible_refuses_a_hedge(completion: str) -> None:
    """Each was judged correct for 18 (the first number of the statement, or the last)."""
    assert not gsm8k_correct("gsm8k:flexible", completion, GSM_18)


@pytest.mark.parametrize("spec", ["gsm8k", "gsm8k:flexible"])
def test_gsm8k_any_size_of_number_is_a_verdict(spec: str) -> None:
    """A 10^6-digit number: equal only to itself, digit by digit. Before: decimal.Overflow
    out of the checker (and its rounding made numbers 28 digits apart equal)."""
    huge = "1" + "0" * 10**6
    doc = {"question": "?", "answer": f"#### {huge}"}
    assert gsm8k_correct(spec, f"#### {huge}", doc)
    assert not gsm8k_correct(spec, f"#### {huge[:-1]}1", doc)
    assert not gsm8k_correct(spec, f"#### {huge}", GSM_18)


def test_a_huge_number_through_verify_is_a_verdict_not_a_traceback(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    huge = "9" * 10**6
    source.write_text(json.dumps({"doc": GSM_18, "completion": f"#### {huge}"}) + "\n")
    result = run_cli(
        "verify", "--task", "monkeys_gsm8k", "--input", str(source), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert json.loads(out.read_text())["correct"] is False


@pytest.mark.parametrize(
    ("spec", "completion", "doc"),
    [
        ("gsm8k", "She has 18.\n#### 18", GSM_18),
        ("gsm8k", "#### $18.00.", GSM_18),
        ("gsm8k", "####\n18", GSM_18),
        ("gsm8k", "#### 18\nQuestion: a new one", GSM_18),
        ("gsm8k", "#### 18\n#### 18.0", GSM_18),
        ("gsm8k:flexible", "The answer is <<9*2=18>>18.", GSM_18),
        ("gsm8k:flexible", "The answer is $18 per week.", GSM_18),
        ("gsm8k:flexible", "9 + 9 = 18", GSM_18),
        ("gsm8k:flexible", "20 - 2 = 18 eggs, or 18 in all", GSM_18),
        ("gsm8k", "#### 1,018", {"question": "?", "answer": "#### 1018"}),
        ("gsm8k", "#### -0.50", {"question": "?", "answer": "#### -.5"}),
    ],
)
def test_gsm8k_correct_answers_still_pass(spec: str, completion: str, doc: dict) -> None:
    assert gsm8k_correct(spec, completion, doc)


def math_correct(completion: str, target: str) -> bool:
    checker = get_checker("math")
    answer = checker.extract(completion)
    reference = checker.target({"problem": "?", "answer": target})
    return answer is not None and checker.judge_many([answer], reference)[0].correct


@pytest.mark.parametrize(
    ("completion", "target"),
    [
        (r"$\boxed{18 \lor 20}$", "20"),
        (r"$\boxed{18 \vee 20}$", "20"),
        (r"$\boxed{18 \to 20}$", "20"),
        (r"$\boxed{18 \Rightarrow 20}$", "20"),
        (r"$\boxed{18 \setminus 20}$", "20"),
        (r"$\boxed{18 \mid 20}$", "20"),
        (r"$\boxed{18 \text{ (or } 20)}$", "20"),
        (r"$\boxed{x = 5 \lor x = 6}$", "x = 6"),
        (r"$\boxed{x = 5 \lor x = 6}$", "6"),
        (r"$\boxed{x = 20 = 18}$", "18"),
        (r"$\boxed{18 \approx 20}$", "18"),
        (r"$\boxed{x = 18 \, x = 20}$", "20"),
        ("The final answer is 20. Final Answer: The final answer is 18.", "18"),
        ("Final Answer: The final answer is 20. Final Answer: The final answer is 18.", "18"),
    ],
)
def test_math_refuses_a_hedge(completion: str, target: str) -> None:
    """Each was judged correct: math-verify read only the last value it could find, a
    chain counted as its two ends, and two final answers were read as one."""
    assert not math_correct(completion, target)


@pytest.mark.parametrize(
    ("completion", "target"),
    [
        (r"$\boxed{20 = 18}$", "18"),
        ("Final Answer: The final answer is $18$ or $20$. I hope it is correct.", "20"),
        (r"$\boxed{18 \text{ or } 20}$", "20"),
        (r"$\boxed{x = 18 \text{ or } x = 20}$", "20"),
        (r"$\boxed{18 \pm 2}$", "20"),
    ],
)
def test_math_more_hedges_stay_wrong(completion: str, target: str) -> None:
    """Hedges the checker refused before this round too (guards, not attacks that worked)."""
    assert not math_correct(completion, target)


def test_math_any_size_of_answer_is_a_verdict() -> None:
    huge = "1" + "0" * 10**5
    assert not math_correct(rf"$\boxed{{{huge}}}$", "18")
    assert math_correct(rf"$\boxed{{{huge}}}$", huge)  # the same text, at any size


@pytest.mark.parametrize(
    ("completion", "target"),
    [
        (r"$\boxed{x = 2 + 3 = 5}$", "5"),
        (r"$\boxed{10\pi \approx 31.4}$", r"10\pi"),
        (r"$\boxed{x = \frac{1}{3} \approx 0.33}$", r"\frac{1}{3}"),
        (r"$\boxed{18 \text{ or } 20}$", "18, 20"),
        (r"$\boxed{x = 18 \text{ or } x = 20}$", "18, 20"),
        (r"$\boxed{a = 1, b = 2}$", "a = 1, b = 2"),
        (r"$\boxed{18\%}$", "18"),
        (r"$\boxed{90\text{ square" + "\n" + r"units}}$", "90"),
        (r"$\boxed{\{18, 20\}}$", "18, 20"),
        ("Final Answer: The final answer is $\\frac{1}{2}$. The final answer is 0.5.", "0.5"),
        (r"The answer is $\boxed{\dfrac12}$ not $\boxed{3}$, so $\boxed{0.5}$", r"\frac{1}{2}"),
    ],
)
def test_math_correct_answers_still_pass(completion: str, target: str) -> None:
    assert math_correct(completion, target)


def records(path: Path) -> list[dict]:
    if not path.exists():
        pytest.skip(f"no {path}")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_gsm8k_reference_is_judged_correct_in_both_modes() -> None:
    """All 1,319 GSM8K test references (steps, then ``#### N``) as completions."""
    for spec in ("gsm8k", "gsm8k:flexible"):
        checker = get_checker(spec)
        wrong = [
            doc["answer"][-80:]
            for doc in records(DATA / "gsm8k" / "test.jsonl")
            if checker.extract(doc["answer"]) != checker.target(doc)
        ]
        assert wrong == [], spec
