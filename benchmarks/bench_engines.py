"""Engines on one GSM8K workload, in one run: tok/s, samples/s, start time, peak memory.

Engines: stock lm-eval ``hf`` with ``repeats`` (the cloned request list), ``monkeys-hf``
as of a given git commit (``--before``, default: the last commit before continuous
batching) and as checked out (its default dtype, bfloat16 on a CPU with hardware
bfloat16, and fp32), and ``monkeys-vllm`` on vLLM (its CPU build here). Every engine
runs in its own subprocess on the same pickled requests (the 5-shot prompts lm-eval
builds for ``repeats: k``), so start time and peak memory (all its
processes: vLLM's engine is a child) are its own; the old ``monkeys-hf`` runs from ``git
archive`` of that commit. New tokens are counted by re-tokenising every engine's texts
with the same tokenizer. The compute limit is a matmul benchmark on the same machine at
the engine's decode shape (min(k, 64) rows of the model's width, in the dtype the engine
computes in; the faster of torch's default kernel and oneDNN's prepacked one, and the
faster of a measure before and after the engines): 2 FLOPs per parameter per new token.

In the same run, for each k: monkeys-hf again beside one CPU-bound process per usable
CPU (``--busy``, the busy-machine figure), and every engine's samples scored
(``--fidelity``): the per-token z and mean negative log-likelihood under the fp32 model
at the task's settings (``models/fidelity.py``), correct samples and coverage@k on
GSM8K, and each engine against monkeys-hf with ``compare``'s paired statistics.

Each engine runs where the README installs it: the transformers engines with the
interpreter running this script (the main environment), ``monkeys-vllm`` with
``--vllm_python`` (default: ``.venv-vllm``'s). An engine whose imports fail is reported
and skipped.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_engines.py \\
        [--problems 4] [--ks 16,64] [--max_tokens 256] [--engines monkeys-hf,...]
        [--no-busy] [--no-fidelity]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_models, imported lazily
BEFORE = "9386c47"  # monkeys-hf with a shrinking batch and one torch.Generator per row
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
ENGINES = ("monkeys-hf-before", "monkeys-hf", "monkeys-hf-fp32", "monkeys-vllm", "stock-hf")


def build_requests(problems: int, k: int, max_tokens: int) -> list[Any]:
    """lm-eval's k cloned requests per problem (the same workload as bench_models)."""
    from bench_models import cloned_requests

    return cloned_requests(problems, k, max_tokens)


def run_engine(engine: str, requests_file: str, k: int, hf_args: str) -> dict[str, Any]:
    """Inside the child: load the engine, sample every request, report figures as JSON."""
    requests = pickle.loads(Path(requests_file).read_bytes())
    peak = TreeMemory()
    start = time.perf_counter()
    model = load(engine, k, dict(item.split("=", 1) for item in hf_args.split(",")))
    started = time.perf_counter()
    outputs = model.generate_until(requests, disable_tqdm=True)
    sampled = time.perf_counter()
    return {
        "start_s": started - start,
        "sampling_s": sampled - started,
        "texts": outputs,
        "peak_gib": peak.stop() / 2**30,
        # vLLM's CPU build computes in bfloat16 (docs/engines.md).
        "dtype": str(getattr(getattr(model, "model", None), "dtype", "torch.bfloat16")),
    }


class TreeMemory(threading.Thread):
    """The largest total RSS of this process and its children (vLLM's engine is one)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.running = 0, True
        self.start()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while self.running:
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # the child ended meanwhile
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def stop(self) -> int:
        self.running = False
        self.join()
        return max(self.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def load(engine: str, k: int, hf_args: dict[str, str]) -> Any:
    """The engine on the embedded model (``hf_args`` load its GGUF; vLLM converts it).

    Each monkeys-hf runs with its own default rows (16 before, 64 now), as a user gets it
    without ``--batch_size``; stock ``hf`` gets ``batch_size=k``.
    """
    if engine.startswith("monkeys-hf"):
        from lm_eval_monkeys.models.hf import MonkeysHF

        if engine == "monkeys-hf-fp32":
            hf_args = {**hf_args, "dtype": "float32"}
        return MonkeysHF(seed=0, device="cpu", **hf_args)
    if engine == "stock-hf":
        from lm_eval.models.huggingface import HFLM

        return HFLM(batch_size=k, device="cpu", **hf_args)
    from lm_eval_monkeys.models.vllm import MonkeysVLLM

    return MonkeysVLLM(seed=0)


def old_tree(commit: str, into: Path) -> Path:
    """``git archive`` of ``commit``, laid out as the installed package (task configs inside)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    for name in ("task_configs", "verifiers"):
        (into / "lm_eval_monkeys" / name).symlink_to(into / name, target_is_directory=True)
    return into


def child(
    engine: str,
    requests_file: str,
    k: int,
    pythonpath: str | None,
    python: str,
    competitors: int = 0,
) -> dict[str, Any]:
    """One engine's run in its own process; ``competitors`` CPU-bound processes beside it."""
    from transformers import AutoTokenizer

    from lm_eval_monkeys.models.embedded import (
        GGUF_FILE,
        embedded_package_dir,
    )

    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    load_before = os.getloadavg()[0]
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)
    ]
    try:
        run = run_child(python, engine, requests_file, k, env)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        return {"error": (run.stderr.strip().splitlines() or ["no output"])[-1]}
    figures = json.loads(lines[-1])
    # One tokenizer counts every engine's new tokens (the checked-out code's, not the child's).
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_package_dir()), gguf_file=GGUF_FILE)
    return {
        **figures,
        "samples": len(figures["texts"]),
        "new_tokens": sum(len(tokenizer(t).input_ids) for t in figures["texts"]),
        "load": (load_before, os.getloadavg()[0]),
    }


def run_child(
    python: str, engine: str, requests_file: str, k: int, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    from lm_eval_monkeys.models.embedded import embedded_model_args

    return subprocess.run(
        [
            python,
            __file__,
            "--child",
            engine,
            "--requests",
            requests_file,
            "--k",
            str(k),
            "--hf_args",
            embedded_model_args(),
        ],
        capture_output=True,
        text=True,
        env=env,
    )


# The embedded SmolLM2-135M's parameters (GGUF tensor shapes), the output head counted once.
PARAMS = 134_515_008


def decode_shape_gflops(
    rows: int, earlier: dict[Any, tuple[float, float]] | None = None
) -> dict[Any, tuple[float, float]]:
    """GFLOP/s of a [rows x 576] x [576 x 576] matmul per dtype: (torch's default, oneDNN
    prepacked), each the faster of this measure and ``earlier``'s (a busy moment only
    lowers a kernel's speed, so the faster measure is nearer the limit)."""
    import torch
    from bench_models import matmul_gflops

    figures = {}
    for dtype in (torch.float32, torch.bfloat16):
        now = tuple(
            matmul_gflops(dtype, size=576, rows=rows, reps=200, packed=packed)
            for packed in (False, True)
        )
        old = (earlier or {}).get(dtype, (0.0, 0.0))
        figures[dtype] = (max(now[0], old[0]), max(now[1], old[1]))
    return figures


def solves(checker: Any, text: str, target: str) -> bool:
    answer = checker.extract(text)
    return answer is not None and checker.judge_many([answer], target)[0].correct


def fidelity(results: dict[str, dict[str, Any]], requests: list[Any], k: int) -> list[str]:
    """Each engine's samples against the fp32 model, its GSM8K scores, and paired compares.

    Per engine: the per-token z of its samples under the model at the task's settings and
    their mean negative log-likelihood (``fidelity.sequence_fit``), then correct samples
    and coverage@k per problem; every engine against monkeys-hf with the paired bootstrap
    and sign-flip test of ``compare`` (``comparison/paired.py``).
    """
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_monkeys.comparison.paired import paired_differences
    from lm_eval_monkeys.models.embedded import GGUF_FILE, embedded_package_dir
    from lm_eval_monkeys.models.fidelity import sequence_fit
    from lm_eval_monkeys.models.generation import generation_settings
    from lm_eval_monkeys.verifiers import get_verifier

    source = str(embedded_package_dir())
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE).eval()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    checker = get_verifier("gsm8k")
    first = requests[::k]
    settings = generation_settings(first[0].args[1], 256)
    prompts = [tokenizer(r.args[0]).input_ids for r in first]
    lines = [
        "| engine | per-token z | tokens | impossible | mean NLL/token | correct | coverage@k |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    per_problem: dict[str, np.ndarray] = {}
    for engine, r in results.items():
        if "texts" not in r:
            continue
        texts = r["texts"]
        samples = [(prompts[i // k], t) for i, t in enumerate(texts)]
        fit = sequence_fit(model, tokenizer, samples, settings)
        correct = np.array(
            [
                [
                    solves(checker, t, checker.target(first[p].doc))
                    for t in texts[p * k : (p + 1) * k]
                ]
                for p in range(len(first))
            ],
            dtype=float,
        )
        per_problem[engine] = np.stack([correct.mean(1), correct.max(1)], axis=1)
        lines.append(
            f"| {engine} | {fit.z:+.2f} | {fit.tokens} | {fit.impossible} | {fit.mean_nll:.3f} | "
            f"{int(correct.sum())}/{correct.size} | {correct.max(1).mean():.2f} |"
        )
    base = per_problem.get("monkeys-hf")
    for engine, values in per_problem.items():
        if base is None or engine == "monkeys-hf":
            continue
        for name, d in zip(
            ("accuracy", "coverage@k"), paired_differences(base, values), strict=True
        ):
            lines.append(
                f"{engine} - monkeys-hf, {name}: {d.difference:+.3f} "
                f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}], p = {d.p_value:.2f} ({d.problems} problems)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--ks", default="16,64", help="k values, each a run of every engine")
    parser.add_argument("--max_tokens", type=int, default=256)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument(
        "--busy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run monkeys-hf beside one CPU-bound process per usable CPU",
    )
    parser.add_argument(
        "--fidelity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score every engine's samples under the fp32 model and on GSM8K",
    )
    parser.add_argument(
        "--vllm_python",
        default=str(VLLM_PYTHON) if VLLM_PYTHON.exists() else sys.executable,
        help="the interpreter of the vLLM environment (default: .venv-vllm's, if built)",
    )
    parser.add_argument("--child")
    parser.add_argument("--requests")
    parser.add_argument("--k", type=int, help="(child) samples per problem")
    parser.add_argument("--hf_args")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.requests, args.k, args.hf_args)))
        return

    import torch

    from lm_eval_monkeys.models.cpu_threads import usable_cpus

    cpus = usable_cpus()
    print(
        f"{args.problems} GSM8K problems, k in {args.ks}, at most {args.max_tokens} new tokens; "
        f"{os.cpu_count()} CPUs ({cpus} usable), torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    report: list[str] = []
    for k in (int(x) for x in args.ks.split(",")):
        requests = build_requests(args.problems, k, args.max_tokens)
        results: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            requests_file = str(Path(tmp) / "requests.pkl")
            Path(requests_file).write_bytes(pickle.dumps(requests))
            before_engines = decode_shape_gflops(min(k, 64))
            runs = [(e, e, 0) for e in args.engines.split(",")]
            if args.busy and "monkeys-hf" in args.engines.split(","):
                runs.append(("monkeys-hf", f"monkeys-hf, {cpus} CPU-bound beside it", cpus))
            for engine, label, competitors in runs:
                path = None
                if engine == "monkeys-hf-before":
                    path = str(old_tree(args.before, Path(tmp) / "before"))
                python = args.vllm_python if engine == "monkeys-vllm" else sys.executable
                results[label] = child(engine, requests_file, k, path, python, competitors)
                shown = {key: v for key, v in results[label].items() if key != "texts"}
                print(f"k={k}", label, json.dumps(shown), flush=True)
        report.append(f"\nk = {k}:")
        limits = {}
        for dtype, gflops in decode_shape_gflops(min(k, 64), before_engines).items():
            limits[str(dtype)] = max(gflops) * 1e9 / (2 * PARAMS)
            report.append(
                f"- matmul [{min(k, 64)} x 576] x [576 x 576], {dtype}: {gflops[0]:.0f} GFLOP/s "
                f"(torch's default), {gflops[1]:.0f} (oneDNN, prepacked) -> limit "
                f"~{limits[str(dtype)]:.0f} new tok/s (load average {os.getloadavg()[0]:.2f})"
            )
        report.append("")
        report.append(
            "| engine | start | sampling | samples/s | new tok/s | of limit | peak memory | load |"
        )
        report.append("|---|---|---|---|---|---|---|---|")
        for engine, r in results.items():
            if "error" in r:
                report.append(f"| {engine} | failed: {r['error']} |")
                continue
            tok_s = r["new_tokens"] / r["sampling_s"]
            report.append(
                f"| {engine} | {r['start_s']:.0f} s | {r['sampling_s']:.1f} s | "
                f"{r['samples'] / r['sampling_s']:.2f} | {tok_s:.0f} | "
                f"{tok_s / limits[r['dtype']]:.0%} of {r['dtype'][6:]} | "
                f"{r['peak_gib']:.1f} GiB | {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
            )
        base = results.get("monkeys-hf", {})
        for engine, r in results.items():
            if engine != "monkeys-hf" and "sampling_s" in base and "sampling_s" in r:
                ratio = (r["new_tokens"] / r["sampling_s"]) / (
                    base["new_tokens"] / base["sampling_s"]
                )
                report.append(f"{engine} tok/s / monkeys-hf tok/s: {ratio:.2f}")
        if args.fidelity:
            report.append("")
            report += fidelity(results, requests, k)
        print("\n".join(report[-30:]), flush=True)
    print("\n".join(report))


if __name__ == "__main__":
    main()
