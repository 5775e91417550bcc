"""Code verification: today's sandbox against the one before issue 21, same run.

Per-test cost: a trivial Python and a trivial C++ program over 200 tests each, sandbox
start and compilation amortised, in each sandbox (five alternating rounds, medians).
Throughput: the 40 distinct programs of a CodeContests-schema problem (8 tests, 1 s
limit: correct ones in several spellings, wrong answers, crashes, infinite loops) judged
on every core, in each sandbox; verdicts must agree program by program. The old sandbox
is ``verifiers/code/`` as of ``BEFORE`` (the commit issue 21's work started from), read
from git into a package of its own.

    python benchmarks/bench_code.py
"""

from __future__ import annotations

import importlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from lm_eval_monkeys.verifiers.code.codecontests import (
    judge,
    precompiled_header_dir,
    problem_limits,
    problem_tests,
)
from lm_eval_monkeys.verifiers.code.sandbox import UNSANDBOXED_ENV, Sandbox, shared_dir

REPO = Path(__file__).resolve().parents[1]
rng = random.Random(0)
TESTS = [[rng.randint(-1000, 1000) for _ in range(rng.randint(1, 50))] for _ in range(8)]
DOC = {
    "name": "sum",
    "description": "Print the sum of the n integers.",
    "public_tests": {
        "input": [f"{len(t)}\n{' '.join(map(str, t))}\n" for t in TESTS[:2]],
        "output": [f"{sum(t)}\n" for t in TESTS[:2]],
    },
    "private_tests": {
        "input": [f"{len(t)}\n{' '.join(map(str, t))}\n" for t in TESTS[2:]],
        "output": [f"{sum(t)}\n" for t in TESTS[2:]],
    },
    "generated_tests": {"input": [], "output": []},
    "time_limit": {"seconds": 1, "nanos": 0},
    "memory_limit_bytes": 256 << 20,
}
READ = "n = int(input())\nxs = list(map(int, input().split()))\n"
PROGRAMS = (
    [READ + f"print(sum(xs){' + 0' * i})" for i in range(12)]  # correct, distinct spellings
    + [
        READ + "total = 0\nfor x in xs:\n    total += x\n" + f"print(total)  # v{i}"
        for i in range(8)
    ]
    + [READ + f"print(sum(xs) + {i + 1})" for i in range(8)]  # wrong answers
    + [READ + f"print(xs[{i + 60}])" for i in range(6)]  # crashes on short inputs
    + [READ + "print(max(xs))", READ + "print(len(xs))", READ + "print(sum(xs[1:]))"]
    + [READ + f"while True:\n    n += {i}" for i in range(3)]  # infinite loops
)


def completions(count: int) -> list[str]:
    """``count`` completions over ``PROGRAMS``, Zipf-duplicated (for ``bench_ray``)."""
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(PROGRAMS))]
    order = list(range(len(PROGRAMS)))
    rng.shuffle(order)  # popularity unrelated to correctness
    picks = rng.choices(order, weights=weights, k=count)
    return [f"Solution:\n```python\n{PROGRAMS[i]}\n```" for i in picks]


BEFORE = "fc630b8"  # the code sandbox before issue 21 (per-test namespaces)
OLD_PACKAGE = "code_before_issue_21"


def old_code_package(directory: Path) -> ModuleType:
    """``verifiers/code/`` as of ``BEFORE``, importable as ``OLD_PACKAGE``."""
    package = directory / OLD_PACKAGE
    package.mkdir()
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", BEFORE, "verifiers/code/"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for path in listed:
        text = subprocess.run(
            ["git", "show", f"{BEFORE}:{path}"], cwd=REPO, capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip
        text = text.replace("lm_eval_monkeys.verifiers.code.", f"{OLD_PACKAGE}.")
        (package / Path(path).name).write_text(text)
    sys.path.insert(0, str(directory))
    return importlib.import_module(f"{OLD_PACKAGE}.codecontests")


def judges(old: ModuleType) -> dict[str, Any]:
    """A function (language, source, tests) -> verdict per sandbox, one slot per core."""
    pch = lambda: precompiled_header_dir(shared_dir("pch"))  # noqa: E731
    return {
        "before issue 21": isolated(old.judge, old.Sandbox(pch=pch)),
        "isolated tests": isolated(judge, Sandbox(pch=pch)),
    }


def isolated(judge_one: Any, box: Any) -> Any:
    """(language, source, tests) -> verdict with ``judge_one`` in ``box``, ``DOC``'s limits."""
    limits = problem_limits(DOC)

    def run(language: str, source: str, tests: list[dict[str, str]]) -> str:
        answer = f"{language}\n{source}"
        return str(judge_one(box, answer, {"tests": tests, "limits": limits}).status)

    return run


TRIVIAL = {
    "python": READ + "print(sum(xs))",
    "cpp": "#include <bits/stdc++.h>\nint main(){long long n,x,s=0;std::cin>>n;"
    "while(n--){std::cin>>x;s+=x;}std::cout<<s<<std::endl;}",
}


def per_test_ms(run: Any, language: str, tests: int = 200) -> float:
    job = [{"input": "1\n5\n", "output": "5\n"}] * tests
    start = time.perf_counter()
    assert run(language, TRIVIAL[language], job) == "AC"
    return (time.perf_counter() - start) / tests * 1e3


def per_test_overhead(tests: int = 200) -> tuple[float, float]:
    """Seconds per test of the trivial Python program: sandboxed, and unsandboxed."""
    costs = []
    for unsandboxed in (False, True):
        os.environ.pop(UNSANDBOXED_ENV, None)
        if unsandboxed:
            os.environ[UNSANDBOXED_ENV] = "1"
        costs.append(per_test_ms(isolated(judge, Sandbox(slots=1)), "python", tests) / 1e3)
    os.environ.pop(UNSANDBOXED_ENV, None)
    return costs[0], costs[1]


def throughput(run: Any) -> tuple[float, list[str]]:
    tests = problem_tests(DOC)
    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        verdicts = list(pool.map(lambda source: run("python", source, tests), PROGRAMS))
    return time.perf_counter() - start, verdicts


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        runs = judges(old_code_package(Path(directory)))
        measure(runs)


def measure(runs: dict[str, Any]) -> None:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    for language in ("python", "cpp"):
        per_test_ms(runs["isolated tests"], language, tests=5)  # warm: the precompiled header
        # Alternating rounds, median of each: the machine's load drifts during a run.
        rounds = [
            {name: per_test_ms(run, language) for name, run in runs.items()} for _ in range(5)
        ]
        costs = {name: statistics.median(r[name] for r in rounds) for name in runs}
        ratio = costs["isolated tests"] / costs["before issue 21"]
        print(
            f"{language} per test (median of 5 rounds): "
            + ", ".join(f"{name} {ms:.2f} ms" for name, ms in costs.items())
            + f" ({ratio:.2f}x)"
        )
    results = {name: throughput(run) for name, run in runs.items()}
    for name, (seconds, _) in results.items():
        print(
            f"{name}: {len(PROGRAMS)} programs x 8 tests in {seconds:.2f} s, "
            f"{len(PROGRAMS) / seconds:.1f} programs/s"
        )
    old_v, new_v = results["before issue 21"][1], results["isolated tests"][1]
    print(f"identical verdicts: {old_v == new_v} ({sum(v == 'AC' for v in new_v)} AC)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
