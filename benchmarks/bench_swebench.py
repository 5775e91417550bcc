"""Local SWE-bench runner: time per patch on the toy repository of tests/swebench_toy.py.

    python benchmarks/bench_swebench.py [--patches 16]

Measures (1) building the (repo, version) environment once, (2) grading one patch at a
time (worktree, apply with fallbacks, test patch, pytest in the sandbox, swebench
grading), against the named baseline of running the same pytest command directly in a
plain checkout (no worktree, no sandbox, no grading), and (3) distinct patches graded in
parallel by the checker, one sandbox per core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from swebench_toy import GOLD, SPEC, TEST_PATCH, WRONG, git, make_toy


def variants(count: int) -> list[str]:
    """Distinct patches (half right, half wrong): a comment line makes each one unique."""
    patches = []
    for i in range(count):
        base = GOLD if i % 2 == 0 else WRONG
        patches.append(base.replace(" def neg(a):\n", f" def neg(a):\n+# variant {i}\n", 1))
    return [p.replace("@@ -1,5 +1,5 @@", "@@ -1,5 +1,6 @@") for p in patches]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=16)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-swebench-"))
    instance, env = make_toy(root)
    os.environ.update(env)
    from lm_eval_monkeys.verifiers import get_verifier
    from lm_eval_monkeys.verifiers.swebench_local import LocalRunner, apply_patch

    runner = LocalRunner()
    patches = variants(args.patches)

    start = time.perf_counter()
    first = runner.evaluate(instance, patches[0])
    first_s = time.perf_counter() - start
    assert first["resolved"], first

    sequential = []
    for patch in patches:
        start = time.perf_counter()
        result = runner.evaluate(instance, patch)
        sequential.append(time.perf_counter() - start)
        assert result["resolved"] == (patch.count("a + b") == 1), result

    # Baseline: the same pytest command, directly, in one prepared checkout.
    plain = root / "plain"
    git(root / "mirrors" / "acme__calc", "worktree", "add", "--detach", str(plain), "HEAD")
    apply_patch(plain, GOLD)
    apply_patch(plain, TEST_PATCH)
    baseline = []
    for _ in patches:
        start = time.perf_counter()
        subprocess.run(
            ["/usr/bin/python3", *SPEC["test_cmd"].split()[1:]],
            cwd=plain,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(plain), "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
        baseline.append(time.perf_counter() - start)

    checker = get_verifier("swebench:local")
    checker.gold_runs = 0
    fresh = [p.replace("# variant", "# parallel variant") for p in patches]
    start = time.perf_counter()
    details = checker.details_many(fresh, checker.target(instance))
    parallel_s = time.perf_counter() - start
    assert sum(d["resolved"] for d in details.values()) == (len(fresh) + 1) // 2

    per_patch = statistics.median(sequential)
    floor = statistics.median(baseline)
    print(f"first patch, environment build included: {first_s:.2f} s")
    print(f"per patch, one at a time (median of {len(sequential)}): {per_patch * 1000:.0f} ms")
    print(f"baseline, pytest directly in a checkout (median): {floor * 1000:.0f} ms")
    print(f"overhead ratio (runner / baseline): {per_patch / floor:.2f}x")
    print(
        f"{len(fresh)} distinct patches in parallel ({os.cpu_count()} cores): "
        f"{parallel_s:.2f} s = {parallel_s / len(fresh) * 1000:.0f} ms per patch"
    )
    shutil.rmtree(env["MONKEYS_SANDBOX_DIR"], ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
