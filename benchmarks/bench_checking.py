"""Answer checking of 100,000 realistic completions, with and without the per-problem cache.

50,000 GSM8K (50 test problems x 1,000 samples) and 50,000 MATH-500 (50 x 1,000)
completions: each is correct with a per-problem probability, else one of a few recurring
wrong answers (Zipf-distributed, some written in equivalent forms), and 5% hold no answer.

Ours: ``score_completions`` per problem (each distinct answer verified once, then grouped
into vote classes). Baseline, same run: check every sample on its own, as lm-eval's
gsm8k / minerva_math ``process_results`` do (extract, then compare or
``math_verify.verify(parse(gold), parse(answer))``).

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_checking.py
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from math_verify import parse, verify

from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.verifiers import get_checker

PROBLEMS, SAMPLES = 50, 1_000
DATA = Path(os.environ.get("MONKEYS_DATA_DIR", "../shared/data"))


def gsm8k_completions(doc: dict, rng: random.Random) -> list[str]:
    gold = int(doc["answer"].split("####")[-1].replace(",", ""))
    wrong = [gold + d for d in (1, -1, 10, 2, gold, -gold // 2 or 3)]
    p = rng.uniform(0.05, 0.9)
    out = []
    for _ in range(SAMPLES):
        r = rng.random()
        if r < 0.05:
            out.append("Let me think step by step about the eggs and the ducks")
            continue
        value = gold if r < 0.05 + p else wrong[min(int(rng.paretovariate(1.2)) - 1, 5)]
        style = rng.choice(["#### {:,}", "#### ${}", "#### {}.", "#### {}.00"])
        out.append(f"She has 3 * 4 = <<3*4=12>>12 eggs left.\n{style.format(value)}")
    return out


def math_completions(doc: dict, rng: random.Random) -> list[str]:
    gold = doc["answer"]
    forms = [gold, f"{gold} "]  # equal spellings after normalisation
    wrong = ["0", "1", "\\frac{1}{2}", "0.5", "2\\sqrt{2}", "\\sqrt{8}", "-1", "12"]
    p = rng.uniform(0.05, 0.7)
    out = []
    for _ in range(SAMPLES):
        r = rng.random()
        if r < 0.05:
            out.append("We expand the square and collect terms.")
            continue
        answer = (
            rng.choice(forms) if r < 0.05 + p else wrong[min(int(rng.paretovariate(1.0)) - 1, 7)]
        )
        if rng.random() < 0.5:
            out.append(
                f"Thus ... Final Answer: The final answer is ${answer}$. I hope it is correct."
            )
        else:
            out.append(f"Therefore the answer is $\\boxed{{{answer}}}$.")
    return out


def load(path: Path) -> list[dict]:
    with path.open() as handle:
        return [json.loads(line) for _, line in zip(range(PROBLEMS), handle, strict=False)]


def baseline(spec: str, problems: list[tuple[dict, list[str]]]) -> tuple[float, int]:
    checker = get_checker(spec)
    correct = 0
    start = time.perf_counter()
    for doc, completions in problems:
        target = checker.target(doc)
        for completion in completions:
            answer = checker.extract(completion)
            if answer is None:
                continue
            if spec == "math":  # lm-eval minerva_math: parse and verify every sample
                correct += verify(parse(f"${target}$"), parse(f"${answer}$"))
            else:
                correct += answer == target
    return time.perf_counter() - start, correct


def ours(spec: str, problems: list[tuple[dict, list[str]]]) -> tuple[float, int]:
    checker = get_checker(spec)
    correct = 0
    start = time.perf_counter()
    for doc, completions in problems:
        correct += score_completions(checker, doc, completions).summary.c
    return time.perf_counter() - start, correct


def main() -> None:
    rng = random.Random(0)
    suites = {
        "gsm8k": [(d, gsm8k_completions(d, rng)) for d in load(DATA / "gsm8k/test.jsonl")],
        "math": [(d, math_completions(d, rng)) for d in load(DATA / "math/math500_test.jsonl")],
    }
    total_base = total_ours = 0.0
    for spec, problems in suites.items():
        n = sum(len(c) for _, c in problems)
        distinct = sum(len(set(c)) for _, c in problems)
        base_s, base_c = baseline(spec, problems)
        ours_s, ours_c = ours(spec, problems)
        total_base += base_s
        total_ours += ours_s
        print(
            f"{spec}: {n} completions, {distinct} distinct texts; per-sample {base_s:.2f} s "
            f"({n / base_s:,.0f}/s, {base_c} correct), cached summary {ours_s:.2f} s "
            f"({n / ours_s:,.0f}/s, {ours_c} correct); speed-up {base_s / ours_s:.1f}x"
        )
    print(
        f"total: per-sample {total_base:.2f} s, cached {total_ours:.2f} s, "
        f"speed-up {total_base / total_ours:.1f}x"
    )


if __name__ == "__main__":
    main()
