"""Gold solutions judged correct: the answer checkers against the benchmarks' own references.

Every record's reference solution is a completion the checker must accept:

- GSM8K train + test (8,792): the reference ``answer`` (steps, then ``#### N``), checked
  in ``strict`` and ``flexible`` mode;
- MATH test (5,000): the full reference solution (its last ``\\boxed{}``) against the
  record's target;
- MATH-500 (500): the reference solution against the short ``answer`` column (a different
  spelling of the same value), the short answer written as a Minerva final answer, and
  the short answer respelled (``\\dfrac`` for ``\\frac``, no ``\\left``/``\\right``, boxed).

Baseline, same run: the checker modules of an earlier commit (``git show REV:PATH``).

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_gold_answers.py [--baseline fc630b8]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from lm_eval_monkeys.verifiers import Checker
from lm_eval_monkeys.verifiers.answers import gsm8k, math

DATA = Path(os.environ.get("MONKEYS_DATA_DIR", "../shared/data"))
Case = tuple[str, Callable[[], Iterator[tuple[dict[str, Any], str]]]]


def records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        yield from (json.loads(line) for line in lines)


def gsm8k_cases() -> Iterator[tuple[dict[str, Any], str]]:
    for split in ("train", "test"):
        for doc in records(DATA / "gsm8k" / f"{split}.jsonl"):
            yield doc, doc["answer"]


def math_cases() -> Iterator[tuple[dict[str, Any], str]]:
    for doc in records(DATA / "math" / "test.jsonl"):
        yield {"solution": doc["answer"]}, doc["answer"]


def math500_solutions() -> Iterator[tuple[dict[str, Any], str]]:
    for doc in records(DATA / "math" / "math500_test.jsonl"):
        yield doc, doc["solution"]


def math500_minerva() -> Iterator[tuple[dict[str, Any], str]]:
    for doc in records(DATA / "math" / "math500_test.jsonl"):
        yield doc, f"Final Answer: The final answer is ${doc['answer']}$. I hope it is correct."


def math500_respelled() -> Iterator[tuple[dict[str, Any], str]]:
    for doc in records(DATA / "math" / "math500_test.jsonl"):
        written = doc["answer"].replace("\\dfrac", "\\frac").replace("\\frac", "\\dfrac")
        written = written.replace("\\left", "").replace("\\right", "")
        yield doc, f"so the answer is $\\boxed{{ {written} }}$."


def judged_correct(checker: Checker, cases: Callable[[], Iterator[tuple[dict, str]]]) -> list[bool]:
    out = []
    for doc, completion in cases():
        answer = checker.extract(completion)
        out.append(
            answer is not None and checker.judge_many([answer], checker.target(doc))[0].correct
        )
    return out


def load_module(rev: str, path: str, name: str) -> ModuleType:
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if shown.returncode != 0:
        sys.exit(f"no {path} at {rev}; pass --baseline with an existing commit")
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="fc630b8", help="commit of the earlier checkers")
    args = parser.parse_args()
    old_gsm8k = load_module(args.baseline, "verifiers/answers/gsm8k.py", "baseline_gsm8k")
    old_math = load_module(args.baseline, "verifiers/answers/math.py", "baseline_math")
    pairs: list[tuple[str, Checker, Checker, Callable[[], Iterator[tuple[dict, str]]]]] = [
        ("GSM8K strict", gsm8k.gsm8k(""), old_gsm8k.gsm8k(""), gsm8k_cases),
        ("GSM8K flexible", gsm8k.gsm8k("flexible"), old_gsm8k.gsm8k("flexible"), gsm8k_cases),
        ("MATH solutions", math.math(""), old_math.math(""), math_cases),
        ("MATH-500 solutions", math.math(""), old_math.math(""), math500_solutions),
        ("MATH-500 Minerva answers", math.math(""), old_math.math(""), math500_minerva),
        ("MATH-500 answers respelled", math.math(""), old_math.math(""), math500_respelled),
    ]
    print(f"| gold set | records | judged correct now | baseline {args.baseline} | differ |")
    print("|---|---|---|---|---|")
    for name, ours, theirs, cases in pairs:
        now, before = judged_correct(ours, cases), judged_correct(theirs, cases)
        differ = [i for i, (a, b) in enumerate(zip(now, before, strict=True)) if a != b]
        print(
            f"| {name} | {len(now):,} | {sum(now):,} ({sum(now) / len(now):.2%}) "
            f"| {sum(before):,} ({sum(before) / len(before):.2%}) | {len(differ)} |",
            flush=True,
        )
        for index, (_, completion) in enumerate(cases()):
            if index in differ:
                which = "now" if now[index] else "baseline"
                print(f"  {which} correct: {completion[-120:]!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
