"""Code verification on a Ray cluster (1, 2, 4 one-CPU worker nodes) vs the local verifier,
then a paper-scale plan computed from the per-item costs measured here.

Samples: CodeContests-style completions from ``bench_code`` (Zipf-duplicated Python
programs: right ones in several spellings, wrong answers, crashes, infinite loops), for
PROBLEMS problems that differ in their memory limit (so no verdict is shared between
them), written to a run store. Each configuration rescores its own copy of that store
with fresh verdict caches: ``local`` is ``rescore`` on this machine (a problem's programs
in parallel on all cores); ``ray N`` is ``rescore --verify_backend ray`` on a cluster of a
head node and N worker nodes started on this machine (timed from the connected driver;
worker processes start and import inside the timing). Verdicts must be identical sample
by sample. The store-cached rerun (nothing verified) is timed too.

    python benchmarks/bench_ray.py [PROBLEMS] [SAMPLES_PER_PROBLEM]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from bench_code import DOC, completions, per_test_overhead  # noqa: E402
from ray_cluster import LocalRayCluster  # noqa: E402

from lm_eval_monkeys.export import sample_records  # noqa: E402
from lm_eval_monkeys.scoring.dispatch import get_verify_backend  # noqa: E402
from lm_eval_monkeys.scoring.rescore import rescore_run  # noqa: E402
from lm_eval_monkeys.store import Sample, SampleStore  # noqa: E402

TASK = "monkeys_codecontests"

# -- paper-scale plan: what is measured here, and what is assumed ------------------------
CPU_TOKENS_S = 30  # monkeys-hf, SmolLM2-135M, 2 cores (docs/benchmarks.md, "Sampling")
# ASSUMED, not measured (no GPU here): output tokens/s of one H100 for an 8B model under
# vLLM, from Red Hat's MLPerf Inference v5.1 Llama-3.1-8B offline result (5,777 tokens/s,
# FP8, vLLM 0.10). Repeated sampling shares each prompt (prefix caching), so decode-bound.
GPU_TOKENS_S = 5_777
# (name, problems, mean completion tokens [assumed], distinct fraction [assumed],
#  verification seconds per distinct item [None: computed from this run's code costs])
BENCHMARKS = [
    ("GSM8K", 1_319, 150, 0.2, 1e-5),  # answer check: bench_checking, ~1e-5 s per answer
    ("MATH (128-problem subset)", 128, 300, 0.3, 1e-3),  # math-verify, bench_checking
    ("MiniF2F", 244, 250, 0.5, 2.0),  # Lean proof check, assumed (no Lean here)
    ("CodeContests", 140, 400, 0.8, None),  # sandboxed tests, measured costs below
    ("SWE-bench Lite", 300, 3_000, 0.9, 120.0),  # agent patch + docker test run, assumed
]
SAMPLES = 10_000
CODE_TESTS = 100  # assumed mean tests run per program before the first failure
CODE_TLE = (0.1, 3.0)  # assumed share of programs that hit the limit, and that limit (s)
NODE = (8, 192)  # GPUs and CPU cores of one node of the plan (an 8xH100 server)


def build_store(run_dir: Path, problems: int, per_problem: int) -> int:
    store = SampleStore(run_dir)
    store.bind_config({"model": "bench_code"})
    docs = [{**DOC, "memory_limit_bytes": DOC["memory_limit_bytes"] + i} for i in range(problems)]
    texts = [completions(per_problem) for _ in docs]
    store.register_docs([(TASK, i, doc, f"p{i}", {}) for i, doc in enumerate(docs)])
    store.record_requested([(TASK, i, per_problem) for i in range(problems)])
    store.add(
        (TASK, i, Sample(j, text, 0, 0)) for i, ts in enumerate(texts) for j, text in enumerate(ts)
    )
    store.close()
    return sum(len(set(ts)) for ts in texts)


def verdicts(run_dir: Path) -> list[tuple]:
    return [
        (r["doc_id"], r["sample_idx"], r["correct"]) for rs in sample_records(run_dir) for r in rs
    ]


def timed_rescore(run_dir: Path, backend: object | None = None) -> float:
    start = time.perf_counter()
    rescore_run(run_dir, backend=backend)
    return time.perf_counter() - start


def main() -> None:
    problems = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    per_problem = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        source = work / "source"
        distinct = build_store(source, problems, per_problem)
        samples = problems * per_problem
        print(
            f"{problems} problems x {per_problem} samples = {samples}, {distinct} distinct "
            f"programs, {os.cpu_count()} cores"
        )
        rows = []

        def copy(name: str) -> Path:
            shutil.copytree(source, work / name)
            os.environ["MONKEYS_CACHE_DIR"] = str(work / f"{name}-cache")
            return work / name

        local_dir = copy("local")
        local_s = timed_rescore(local_dir)
        rows.append(("local (this machine, all cores)", local_s))
        expected = verdicts(local_dir)
        for workers in (1, 2, 4):
            run_dir = copy(f"ray{workers}")
            cluster = LocalRayCluster(workers, env={"MONKEYS_CACHE_DIR": str(work / f"w{workers}")})
            try:
                backend = get_verify_backend("ray", address=cluster.address)
                try:
                    seconds = timed_rescore(run_dir, backend)
                    cached = timed_rescore(run_dir, backend)
                finally:
                    backend.close()
            finally:
                cluster.stop()
            same = verdicts(run_dir) == expected
            rows.append((f"ray, {workers} worker node{'s' * (workers > 1)} x 1 CPU", seconds))
            print(f"ray {workers}: identical verdicts: {same}; store-cached rerun {cached:.2f} s")
            assert same, "Ray verdicts differ from local ones"
        print("\n| verifier | time | samples/s | distinct programs/s | vs local |")
        print("|---|---|---|---|---|")
        for name, seconds in rows:
            print(
                f"| {name} | {seconds:.1f} s | {samples / seconds:.0f} | "
                f"{distinct / seconds:.1f} | {local_s / seconds:.2f}x |"
            )
        boxed, _ = per_test_overhead()
        plan(boxed, local_s * (os.cpu_count() or 1) / distinct)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plan(per_test_s: float, bench_program_s: float) -> None:
    """GPU-hours, verification core-hours and a node count for 5 benchmarks x 10,000."""
    code_s = 0.05 + CODE_TESTS * per_test_s + CODE_TLE[0] * CODE_TLE[1]  # 0.05 s: start
    print(
        f"\nmeasured: {per_test_s * 1e3:.2f} ms per sandboxed test; this run's programs cost "
        f"{bench_program_s:.2f} core-s each; plan uses {code_s:.2f} core-s per CodeContests "
        f"program ({CODE_TESTS} tests, {CODE_TLE[0]:.0%} at a {CODE_TLE[1]:.0f} s limit)"
    )
    print(
        "\n| benchmark | samples | output tokens | H100-hours | years on this CPU (135M model) "
        "| verification core-hours |"
    )
    print("|---|---|---|---|---|---|")
    total_n = total_tokens = total_gpu = total_cores = 0.0
    for name, count, tokens, distinct, verify_s in BENCHMARKS:
        n = count * SAMPLES
        gpu_h = n * tokens / GPU_TOKENS_S / 3600
        cpu_years = n * tokens / CPU_TOKENS_S / 3600 / 24 / 365
        core_h = n * distinct * (code_s if verify_s is None else verify_s) / 3600
        total_n, total_tokens = total_n + n, total_tokens + n * tokens
        total_gpu, total_cores = total_gpu + gpu_h, total_cores + core_h
        print(
            f"| {name} | {n / 1e6:.2f}M | {n * tokens / 1e9:.2f}B | {gpu_h:,.0f} | "
            f"{cpu_years:,.0f} | {core_h:,.0f} |"
        )
    cpu_years = total_tokens / CPU_TOKENS_S / 3600 / 24 / 365
    print(
        f"| total | {total_n / 1e6:.2f}M | {total_tokens / 1e9:.2f}B | {total_gpu:,.0f} | "
        f"{cpu_years:,.0f} | {total_cores:,.0f} |"
    )
    for nodes in (4, 16, 64):
        hours = max(total_gpu / (nodes * NODE[0]), total_cores / (nodes * NODE[1]))
        print(f"{nodes} nodes of {NODE[0]} GPUs + {NODE[1]} cores: {hours:,.0f} h")


if __name__ == "__main__":
    main()
