"""Peak RSS and wall time of 1,000 problems x k samples on monkeys-synthetic.

Ours: ``lm-eval-monkeys`` with the sample store (samples written as produced, read back
one problem at a time). Baseline, same machine and run: stock lm-eval's flow, the same
synthetic model returning its texts to lm-eval, with ``--log_samples``.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_memory.py [K ...]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

PROBLEMS = 1_000
STOCK = (
    "import sys, lm_eval_monkeys.models; from lm_eval.__main__ import cli_evaluate; "
    "sys.argv[0] = 'lm_eval'; cli_evaluate()"
)


def measure(command: list[str]) -> tuple[float, float, bool]:
    """(wall seconds, peak RSS in MB, succeeded) of a child process."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    # ru_maxrss of children is the largest child so far: run each case in a fresh wrapper.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if result.returncode != 0:
        print(result.stderr[-1500:], file=sys.stderr)
    return wall, peak, result.returncode == 0


def case(kind: str, k: int, out: str) -> list[str]:
    common = ["--tasks", "monkeys_gsm8k", "--limit", str(PROBLEMS), "--output_path", out]
    model = ["--model", "monkeys-synthetic", "--model_args", "accuracy=0.3,seed=0"]
    if kind == "ours":
        return ["lm-eval-monkeys", *model, *common, "--repeats", str(k)]
    from lm_eval_monkeys.task_configs import TASK_DIR

    return [
        sys.executable,
        "-c",
        STOCK,
        *model,
        *common,
        "--include_path",
        str(TASK_DIR),
        "--metadata",
        f"repeats={k}",
        "--log_samples",
    ]


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":  # child mode: one case, fresh rusage
        kind, k = sys.argv[2], int(sys.argv[3])
        with tempfile.TemporaryDirectory() as out:
            wall, peak, ok = measure(case(kind, k, out))
        print(f"{kind}\t{k}\t{wall:.1f}\t{peak:.0f}\t{'ok' if ok else 'FAILED'}")
        return
    ks = [int(x) for x in sys.argv[1:]] or [10, 100, 1000]
    print(f"problems={PROBLEMS}; columns: backend, k, wall s, peak RSS MB, status", flush=True)
    for k in ks:
        for kind in ("ours", "stock"):
            subprocess.run([sys.executable, __file__, "--one", kind, str(k)], env=os.environ)


if __name__ == "__main__":
    main()
