"""``import`` and ``report`` of a GSM8K config in the hub schema, against ``rescore`` of an
equal store written by monkeys-synthetic, same machine and run: wall time and peak RSS.

1. ``lm-eval-monkeys --model monkeys-synthetic`` writes a store of PROBLEMS x K samples
   (not timed: it makes the baseline's store);
2. baseline: ``rescore`` of that store;
3. its samples, with verdicts as ``is_corrects``, written as one hub config
   (``GSM8K_synthetic.json``, a JSON object per problem, as the dataset ships them);
4. ``import`` of that file, then ``report`` of the imported store.

Each command runs in a fresh wrapper process, so its peak RSS is its own.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_import.py [PROBLEMS K]
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``command`` run in a fresh child of a wrapper."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "w = time.perf_counter() - t; "
        "sys.stderr.write(r.stderr[-2000:] if r.returncode else ''); "
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
        "sys.exit(r.returncode)"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(f"{' '.join(command[:3])} failed:\n{result.stderr}")
    wall, peak = result.stdout.split()
    return float(wall), float(peak)


def write_hub_config(run: Path, path: Path) -> int:
    """The run's samples and verdicts as hub rows, streamed from ``export`` (which writes a
    problem's samples together, in order) one problem at a time; returns the number of
    samples."""
    with sqlite3.connect(run / "samples.sqlite") as db:
        docs = {d: json.loads(doc) for d, doc in db.execute("SELECT doc_id, doc FROM docs")}
    count = 0
    export = subprocess.Popen(
        ["lm-eval-monkeys", "export", str(run)], stdout=subprocess.PIPE, text=True
    )
    assert export.stdout is not None
    with path.open("w") as out:
        rows = (json.loads(line) for line in export.stdout)
        for doc_id, group in itertools.groupby(rows, key=lambda row: row["doc_id"]):
            samples = list(group)
            record = docs[doc_id]
            hub_row = {
                "question": record["question"],
                "prompt": f"Question: {record['question']}\nAnswer:",
                "gt_answer": record["answer"],
                "samples": [s["completion"] for s in samples],
                "is_corrects": [s["correct"] for s in samples],
            }
            out.write(json.dumps(hub_row) + "\n")
            count += len(samples)
    if export.wait():
        sys.exit(f"export of {run} failed")
    return count


def main() -> None:
    problems, k = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1319, 10_000)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        base, imported, copy = Path(tmp, "synthetic"), Path(tmp, "imported"), Path(tmp, "hub")
        copy.mkdir()
        subprocess.run(
            [
                *("lm-eval-monkeys", "--model", "monkeys-synthetic"),
                *("--model_args", "accuracy=0.3,seed=0", "--tasks", "monkeys_gsm8k"),
                *("--limit", str(problems), "--repeats", str(k), "--output_path", str(base)),
            ],
            check=True,
            capture_output=True,
        )
        config = copy / "GSM8K_synthetic.json"
        samples = write_hub_config(base, config)
        size = config.stat().st_size / 1e6
        rows = [
            ("rescore of the monkeys-synthetic store (baseline)", ["rescore", str(base)]),
            ("import of the hub config", ["import", str(config), "--output", str(imported)]),
            ("rescore of the imported store", ["rescore", str(imported)]),
            ("report of the imported store", ["report", str(imported), "--output", tmp + "/r"]),
        ]
        print(
            f"{problems} problems x {k} samples = {samples} samples; hub file {size:.0f} MB; "
            f"load at start {load:.1f}",
            flush=True,
        )
        baseline = None
        for name, args in rows:
            wall, peak = measure(["lm-eval-monkeys", *args])
            baseline = baseline or wall
            print(
                f"  {name:<52} {wall:8.1f} s  {peak:7.0f} MB  {wall / baseline:5.2f}x baseline",
                flush=True,
            )


if __name__ == "__main__":
    main()
