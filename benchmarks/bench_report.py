"""Time ``lm-eval-monkeys report`` on GSM8K-sized stores, against ``rescore`` alone.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_report.py [PROBLEMS] [SAMPLES] [DIR]

Builds a store of PROBLEMS GSM8K test problems x SAMPLES samples (default 1,319 x 10,000)
by writing rows through ``SampleStore`` (no model): per-problem success p ~ Beta(0.3, 2),
wrong answers from 20 per-problem values with Zipf(1.5) frequencies, 5% with no answer.
Copies it, then times on one copy ``rescore_run`` (the baseline: read, verify, metrics)
and on the other the full report, by phase; also the plain read of every sample.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lm_eval_monkeys.reports.report import build_report
from lm_eval_monkeys.scoring.rescore import rescore_run
from lm_eval_monkeys.store import Sample, SampleStore, prompt_hash

TASK = "monkeys_gsm8k"
KS = [1, 10, 100, 1000, 10_000]  # log-spaced decades, as in the paper's plots


def build_store(run_dir: Path, problems: int, samples: int, seed: int = 0) -> None:
    data = Path(os.environ.get("MONKEYS_DATA_DIR", "../shared/data")) / "gsm8k" / "test.jsonl"
    docs = [json.loads(line) for line in data.open()][:problems]
    rng = np.random.default_rng(seed)
    store = SampleStore(run_dir)
    store.bind_config({"model": "bench-writer", "seed": seed})
    store.register_docs(
        [(TASK, i, doc, prompt_hash(doc["question"], {}), {}) for i, doc in enumerate(docs)]
    )
    zipf = 1 / np.arange(1, 21) ** 1.5
    for i, doc in enumerate(tqdm(docs, desc="writing store", unit="problem")):
        gold = int(float(doc["answer"].split("####")[-1].strip().replace(",", "")))
        wrong = [str(gold + d) for d in rng.choice(np.arange(-50, 51), 21, replace=False) if d][:20]
        p = rng.beta(0.3, 2.0)
        roll = rng.random(samples)
        picks = rng.choice(20, samples, p=zipf / zipf.sum())
        prompt = len(doc["question"].split()) + 600  # 5-shot prompt, roughly
        rows = []
        for j in range(samples):
            if roll[j] < 0.05:
                text = " Let me think step by step."
            else:
                value = gold if roll[j] < 0.05 + 0.95 * p else wrong[picks[j]]
                text = f" We compute the total: {value}.\n#### {value}"
            rows.append((TASK, i, Sample(j, text, prompt, 60 + j % 90)))
        store.add(rows)
    store.close()


def main() -> None:
    problems = int(sys.argv[1]) if len(sys.argv) > 1 else 1319
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    root = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="bench_"))
    ks = [k for k in KS if k <= samples]
    source = root / "store"
    if not (source / "samples.sqlite").exists():
        start = time.perf_counter()
        build_store(source, problems, samples)
        print(f"store built in {time.perf_counter() - start:.1f} s")
    size = sum(f.stat().st_size for f in source.iterdir()) / 1e9  # with the WAL
    print(f"{problems} problems x {samples} samples, ks={ks}, store {size:.2f} GB")
    for copy in ("baseline", "report"):
        shutil.rmtree(root / copy, ignore_errors=True)
        shutil.copytree(source, root / copy)

    store = SampleStore(root / "baseline", writer=False)
    start = time.perf_counter()
    count = sum(len(store.samples(TASK, doc_id)) for doc_id, _ in store.docs(TASK))
    read = time.perf_counter() - start
    store.close()
    print(f"read every sample: {read:.1f} s ({count / read:,.0f} samples/s)")

    start = time.perf_counter()
    rescore_run(root / "baseline", ks=ks)
    baseline = time.perf_counter() - start
    print(f"baseline, rescore alone: {baseline:.1f} s")

    start = time.perf_counter()
    report = build_report(
        [root / "report"], root / "out", ks=ks, params={"report": 8e9}, target=0.9
    )
    total = time.perf_counter() - start
    for phase, seconds in report.timings.items():
        print(f"  report phase {phase}: {seconds:.1f} s")
    print(f"full report: {total:.1f} s = {total / baseline:.2f}x rescore alone")


if __name__ == "__main__":
    main()
