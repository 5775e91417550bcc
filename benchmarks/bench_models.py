"""Samples/s of monkeys-hf vs stock lm-eval ``hf`` with ``repeats`` on the embedded model.

Same GSM8K 5-shot prompts, same k, max tokens, stop sequences and CPU threads; both get
the cloned request list lm-eval builds for ``repeats: k`` and are timed on generation
only (the model is loaded once per model, outside the timing). Also reported: the
machine's fp32/bf16 matmul throughput and the tokens/s it would allow for this model.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_models.py [PROBLEMS K MAX_TOKENS]
"""

from __future__ import annotations

import sys
import time

import torch
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from lm_eval_monkeys.models.embedded import embedded_model_args
from lm_eval_monkeys.models.hf import MonkeysHF
from lm_eval_monkeys.task_configs import TASK_DIR


def cloned_requests(problems: int, k: int, max_tokens: int) -> list:
    manager = TaskManager(
        include_path=str(TASK_DIR), include_defaults=False, metadata={"repeats": k}
    )
    task = manager.load("monkeys_gsm8k")["tasks"]["monkeys_gsm8k"]
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=problems, rank=0, world_size=1)
    for instance in task.instances:
        instance.arguments[1]["max_gen_toks"] = max_tokens
    return [inst for inst in task.instances for _ in range(k)]


def matmul_gflops(
    dtype: torch.dtype,
    size: int = 1024,
    reps: int = 20,
    packed: bool = False,
    rows: int | None = None,
) -> float:
    """A [rows, size] x [size, size] matmul's GFLOP/s (rows default: size): torch's default
    kernel, or oneDNN with a prepacked weight (what monkeys-hf's linear layers run on a
    CPU; MKL's default is slow on AMD CPUs). ``rows``: a decode step's row count."""
    rows = rows or size
    a, b = torch.randn(rows, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    if packed:
        weight = torch.ops.mkldnn._reorder_linear_weight(b, rows)

        def multiply() -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(a, weight, None, "none", [], "")
    else:

        def multiply() -> torch.Tensor:
            return a @ b

    multiply()
    start = time.perf_counter()
    for _ in range(reps):
        multiply()
    return 2 * rows * size**2 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    problems, k, max_tokens = (int(x) for x in (sys.argv[1:] or [4, 16, 128]))
    args = dict(item.split("=", 1) for item in embedded_model_args().split(","))
    requests = cloned_requests(problems, k, max_tokens)
    print(
        f"{problems} GSM8K problems x k={k}, max {max_tokens} new tokens, "
        f"{torch.get_num_threads()} CPU threads, prompt ~{len(requests[0].args[0].split())} words"
    )

    ours = MonkeysHF(seed=0, batch_size=k, device="cpu", **args)
    start = time.perf_counter()
    ours_out = ours.generate_until(requests, disable_tqdm=True)
    ours_s = time.perf_counter() - start
    tokenizer = ours.tokenizer
    ours_tokens = sum(len(tokenizer(t)["input_ids"]) for t in ours_out)
    params = sum(p.numel() for p in ours.model.parameters())
    del ours

    stock = HFLM(batch_size=k, device="cpu", **args)
    start = time.perf_counter()
    stock_out = stock.generate_until(requests, disable_tqdm=True)
    stock_s = time.perf_counter() - start
    stock_tokens = sum(len(tokenizer(t)["input_ids"]) for t in stock_out)

    n = len(requests)
    bf16 = matmul_gflops(torch.bfloat16)
    # The faster fp32 kernel: torch's default (MKL) or oneDNN's, which monkeys-hf uses on CPU.
    fp32 = max(matmul_gflops(torch.float32), matmul_gflops(torch.float32, packed=True))
    bound = fp32 * 1e9 / (2 * params)
    for name, secs, tokens in (
        ("monkeys-hf", ours_s, ours_tokens),
        ("stock hf", stock_s, stock_tokens),
    ):
        print(f"{name:>10}: {secs:.1f} s, {n / secs:.2f} samples/s, {tokens / secs:.0f} new tok/s")
    print(f"speed-up (samples/s): {stock_s / ours_s:.2f}x")
    print(
        f"matmul: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s; {params / 1e6:.0f}M params "
        f"-> fp32 matmul-bound decode limit ~{bound:.0f} tok/s (2 FLOPs/param/token)"
    )
    print(f"mean new tokens/sample: ours {ours_tokens / n:.1f}, stock {stock_tokens / n:.1f}")


if __name__ == "__main__":
    main()
