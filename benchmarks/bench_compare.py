"""Time and memory of ``lm-eval-monkeys compare`` on two GSM8K-sized runs, against
``rescore`` of both runs (the same reading, verifying and metrics, without pairing).

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_compare.py [PROBLEMS] [SAMPLES] [DIR]

Builds two stores of PROBLEMS GSM8K test problems x SAMPLES samples (default 1,319 x
10,000) with ``bench_report.build_store`` (seeds 0 and 1), then for ``--metrics coverage``
and ``--metrics coverage,majority`` at k = 1, 10, ..., 10,000 runs, each as its own
process with the stores' verdict caches emptied first: ``rescore`` of each run (the
baseline), then ``compare A B``. Reports wall time and each process's peak memory (RSS).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import KS, build_store

from lm_eval_monkeys.store import STORE_FILE, SampleStore


def clear_verdicts(run_dir: Path) -> None:
    """Empty the store's verdict cache, so every timed command verifies from scratch."""
    with SampleStore(run_dir) as store:
        store.database.write(lambda: store.database.connection.execute("DELETE FROM verdicts"))


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of ``lm-eval-monkeys ARGS`` as a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(["lm-eval-monkeys", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"lm-eval-monkeys {' '.join(args)} failed")
    return seconds, usage.ru_maxrss / 1e6  # ru_maxrss is in KiB on Linux


def main() -> None:
    problems = int(sys.argv[1]) if len(sys.argv) > 1 else 1319
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    root = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="bench_"))
    ks = ",".join(str(k) for k in KS if k <= samples)
    runs = [root / "a", root / "b"]
    for seed, run in enumerate(runs):
        if not (run / STORE_FILE).exists():
            start = time.perf_counter()
            build_store(run, problems, samples, seed=seed)
            print(f"store {run.name} built in {time.perf_counter() - start:.1f} s")
    print(f"{problems} problems x {samples} samples, two runs, ks={ks}")
    print(f"load average at start: {os.getloadavg()}")
    for metrics in ("coverage", "coverage,majority"):
        flags = ["--ks", ks, "--metrics", metrics]
        baseline, peak = 0.0, 0.0
        for run in runs:
            clear_verdicts(run)
            seconds, rss = timed(["rescore", str(run), *flags])
            baseline, peak = baseline + seconds, max(peak, rss)
            print(f"  --metrics {metrics}: rescore {run.name}: {seconds:.1f} s, {rss:.2f} GB")
        for run in runs:
            clear_verdicts(run)
        seconds, rss = timed(["compare", *map(str, runs), *flags, "--json", str(root / "c.json")])
        print(
            f"--metrics {metrics}: compare {seconds:.1f} s, peak {rss:.2f} GB; rescore of both "
            f"{baseline:.1f} s, peak {peak:.2f} GB; ratio {seconds / baseline:.2f}"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
