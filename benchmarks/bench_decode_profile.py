"""Where a monkeys-hf decode goes: each part's share of the wall time, by torch's profiler.

One GSM8K 5-shot prompt, k samples of at most ``max_tokens`` new tokens (so at k = 64 the
batch holds 64 rows: the decode shape of issue 24's limit). Every operator's own CPU
time is put in one part: the linear layers (oneDNN prepacked matmuls, the LM head among
them), attention (the shared-prefix kernel's matmuls, softmax, log-sum-exp merge),
sampling (softmax over the vocabulary, cumulative sum, search), and the rest (norms,
activations, copies, indexing, cache writes); what no operator accounts for is Python
and dispatch. The prompt's own pass (prefill), which the parts include, is timed apart
as one model call, to show its share.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_decode_profile.py [K MAX_TOKENS]
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

import torch
from bench_models import cloned_requests
from torch.profiler import ProfilerActivity, profile

from lm_eval_monkeys.models.embedded import embedded_model_args
from lm_eval_monkeys.models.hf import MonkeysHF

# Operator names (substrings) of each part; the first part that matches takes the operator.
PARTS = {
    "linear layers": ("mkldnn", "linear", "addmm", "aten::mm"),
    "attention": ("bmm", "matmul", "scaled_dot_product", "logsumexp", "baddbmm", "flash"),
    "sampling": ("searchsorted", "cumsum", "sort", "_softmax", "argmax", "multinomial"),
}


def part_of(name: str) -> str:
    return next((p for p, keys in PARTS.items() if any(k in name for k in keys)), "other ops")


def main() -> None:
    k, max_tokens = (int(a) for a in (sys.argv[1:] or ["64", "64"]))
    args = dict(item.split("=", 1) for item in embedded_model_args().split(","))
    engine = MonkeysHF(seed=0, device="cpu", **args)
    requests = cloned_requests(1, k, max_tokens)
    prompt = engine.tokenizer(requests[0].args[0]).input_ids
    engine.generate_until(requests[:1], disable_tqdm=True)  # warm-up: kernels, thread tuner
    with torch.inference_mode():
        start = time.perf_counter()
        engine.model(input_ids=torch.tensor([prompt]))
        prefill = time.perf_counter() - start
    load = os.getloadavg()[0]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        texts = engine.generate_until(requests, disable_tqdm=True)
        wall = time.perf_counter() - start
    new_tokens = sum(len(engine.tokenizer(t).input_ids) for t in texts)
    shares: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("aten::") or event.key.startswith("mkldnn"):
            shares[part_of(event.key)] += event.self_cpu_time_total / 1e6
    shares["Python, dispatch"] = wall - sum(shares.values())
    print(
        f"k = {k}, {len(prompt)}-token prompt, {new_tokens} new tokens in {wall:.1f} s "
        f"({new_tokens / wall:.0f} tok/s under the profiler), torch threads "
        f"{torch.get_num_threads()}, load average {load:.2f} -> {os.getloadavg()[0]:.2f}\n"
    )
    print("| part | seconds | share |\n|---|---|---|")
    for name, seconds in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds:.2f} | {seconds / wall:.0%} |")
    print(f"\nof which the prompt pass, timed apart: {prefill:.2f} s ({prefill / wall:.0%})")
    print("\nlargest operators:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
