"""Engines on one GSM8K workload, in one run: tok/s, samples/s, start time, peak memory.

Engines: stock lm-eval ``hf`` with ``repeats`` (the cloned request list), ``monkeys-hf``
as of a given git commit (``--before``, default: the last commit before continuous
batching) and as checked out (also in bfloat16), and ``monkeys-vllm`` on vLLM (its CPU
build here). Every engine runs in its own subprocess on the same pickled requests (the
5-shot prompts lm-eval builds for ``repeats: k``), so start time and peak memory (all its
processes: vLLM's engine is a child) are its own; the old ``monkeys-hf`` runs from ``git
archive`` of that commit. New tokens are counted by re-tokenising every engine's texts
with the same tokenizer. The compute limit is a matmul benchmark on the same machine (the
faster of torch's default fp32 kernel and oneDNN's): 2 FLOPs per parameter per new token.

Each engine runs where the README installs it: the transformers engines with the
interpreter running this script (the main environment), ``monkeys-vllm`` with
``--vllm_python`` (default: ``.venv-vllm``'s). An engine whose imports fail is reported
and skipped.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_engines.py \\
        [--problems 4] [--k 16] [--max_tokens 256] [--engines monkeys-hf,...]
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
ENGINES = ("monkeys-hf-before", "monkeys-hf", "monkeys-hf-bf16", "monkeys-vllm", "stock-hf")


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

        if engine == "monkeys-hf-bf16":
            hf_args = {**hf_args, "dtype": "bfloat16"}
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
    engine: str, requests_file: str, k: int, pythonpath: str | None, python: str
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from lm_eval_monkeys.models.embedded import (
        GGUF_FILE,
        embedded_model_args,
        embedded_package_dir,
    )

    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    load_before = os.getloadavg()[0]
    run = subprocess.run(
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
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        return {"error": (run.stderr.strip().splitlines() or ["no output"])[-1]}
    figures = json.loads(lines[-1])
    texts = figures.pop("texts")
    # One tokenizer counts every engine's new tokens (the checked-out code's, not the child's).
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_package_dir()), gguf_file=GGUF_FILE)
    return {
        **figures,
        "samples": len(texts),
        "new_tokens": sum(len(tokenizer(t).input_ids) for t in texts),
        "load": (load_before, os.getloadavg()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--max_tokens", type=int, default=256)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument(
        "--vllm_python",
        default=str(VLLM_PYTHON) if VLLM_PYTHON.exists() else sys.executable,
        help="the interpreter of the vLLM environment (default: .venv-vllm's, if built)",
    )
    parser.add_argument("--child")
    parser.add_argument("--requests")
    parser.add_argument("--hf_args")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.requests, args.k, args.hf_args)))
        return

    import torch

    requests = build_requests(args.problems, args.k, args.max_tokens)
    words = sum(len(r.args[0].split()) for r in requests[:: args.k]) / args.problems
    print(
        f"{args.problems} GSM8K problems x k={args.k}, at most {args.max_tokens} new tokens, "
        f"5-shot prompts of ~{words:.0f} words; {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f} at start"
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        requests_file = str(Path(tmp) / "requests.pkl")
        Path(requests_file).write_bytes(pickle.dumps(requests))
        for engine in args.engines.split(","):
            path = None
            if engine == "monkeys-hf-before":
                path = str(old_tree(args.before, Path(tmp) / "before"))
            python = args.vllm_python if engine == "monkeys-vllm" else sys.executable
            results[engine] = child(engine, requests_file, args.k, path, python)
            print(engine, json.dumps(results[engine]), flush=True)
    import torch
    from bench_models import matmul_gflops

    default, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    onednn = matmul_gflops(torch.float32, packed=True)
    fp32 = max(default, onednn)  # the machine's fp32 limit: the faster kernel
    params = 134_515_008  # the embedded SmolLM2-135M (GGUF tensor shapes)
    limit = fp32 * 1e9 / (2 * params)
    print(
        f"\nmatmul: fp32 {default:.0f} GFLOP/s (torch's default), {onednn:.0f} (oneDNN, "
        f"prepacked), bf16 {bf16:.0f} -> fp32 limit ~{limit:.0f} new tok/s, bf16 "
        f"~{bf16 * 1e9 / (2 * params):.0f} (load average {os.getloadavg()[0]:.2f})\n"
    )
    print(
        "| engine | start | sampling | samples/s | new tok/s | of fp32 limit | peak memory | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for engine, r in results.items():
        if "error" in r:
            print(f"| {engine} | failed: {r['error']} |")
            continue
        tok_s = r["new_tokens"] / r["sampling_s"]
        print(
            f"| {engine} | {r['start_s']:.0f} s | {r['sampling_s']:.1f} s | "
            f"{r['samples'] / r['sampling_s']:.2f} | {tok_s:.0f} | {tok_s / limit:.0%} | "
            f"{r['peak_gib']:.1f} GiB | {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        )
    base = results.get("monkeys-hf-before", {})
    for engine, r in results.items():
        if engine != "monkeys-hf-before" and "sampling_s" in base and "sampling_s" in r:
            ratio = (r["new_tokens"] / r["sampling_s"]) / (base["new_tokens"] / base["sampling_s"])
            print(f"{engine} tok/s / monkeys-hf-before tok/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
