"""Code verification: the hardened sandbox against the one before issue 12, same run.

Per-test cost: a trivial Python and a trivial C++ program over 200 tests each, sandbox
start and compilation amortised, in each sandbox (five alternating rounds, medians).
Throughput: the 40 distinct programs of a CodeContests-schema problem (8 tests, 1 s
limit: correct ones in several spellings, wrong answers, crashes, infinite loops) judged
on every core, in each sandbox; verdicts must agree program by program. The old sandbox
is today's code as it was before issue 12, read from git (the parent of the commit that
removed ``sandbox_harness.py``).

    python benchmarks/bench_code.py
"""

from __future__ import annotations

import importlib.util
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


def old_sandbox_module(directory: Path) -> ModuleType:
    """``verifiers/code/sandbox.py`` with its harness, as of the commit before issue 12."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout

    removal = git(
        "log", "-1", "--format=%H", "--diff-filter=D", "--", "verifiers/sandbox_harness.py"
    )
    for name in ("sandbox.py", "sandbox_harness.py"):
        (directory / name).write_text(git("show", f"{removal.strip()}^:verifiers/{name}"))
    spec = importlib.util.spec_from_file_location("old_sandbox", directory / "sandbox.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def judges(old: ModuleType) -> dict[str, Any]:
    """A function (language, source, tests) -> verdict per sandbox, one slot per core."""
    pch = lambda: precompiled_header_dir(shared_dir("pch"))  # noqa: E731
    old_box, new_box = old.Sandbox(pch=pch), Sandbox(pch=pch)
    limits = problem_limits(DOC)
    old_limits = old.Limits(time_s=limits.time_s, memory_bytes=limits.memory_bytes)

    def run_old(language: str, source: str, tests: list[dict[str, str]]) -> str:
        return old_box.run(language, source, tests, old_limits)["verdict"]

    return {"before issue 12": run_old, "hardened": hardened(new_box)}


def hardened(box: Sandbox) -> Any:
    """(language, source, tests) -> verdict in ``box``, with ``DOC``'s limits."""
    limits = problem_limits(DOC)

    def run(language: str, source: str, tests: list[dict[str, str]]) -> str:
        answer = f"{language}\n{source}"
        return judge(box, answer, {"tests": tests, "limits": limits}).status

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
        costs.append(per_test_ms(hardened(Sandbox(slots=1)), "python", tests) / 1e3)
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
        runs = judges(old_sandbox_module(Path(directory)))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    for language in ("python", "cpp"):
        per_test_ms(runs["hardened"], language, tests=5)  # warm: the precompiled header
        # Alternating rounds, median of each: the machine's load drifts during a run.
        rounds = [
            {name: per_test_ms(run, language) for name, run in runs.items()} for _ in range(5)
        ]
        costs = {name: statistics.median(r[name] for r in rounds) for name in runs}
        ratio = costs["hardened"] / costs["before issue 12"]
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
    old_v, new_v = results["before issue 12"][1], results["hardened"][1]
    print(f"identical verdicts: {old_v == new_v} ({sum(v == 'AC' for v in new_v)} AC)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
