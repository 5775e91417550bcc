"""monkeys-hf's decoder on a GPU: correctness against transformers, and tok/s against generate.

For a machine with a CUDA GPU, torch and transformers, and possibly nothing else (no
lm-eval, no vLLM, no network): the model is a randomly initialised Qwen2 of the 0.5B
shape (weights scaled up from transformers' default so greedy choices are not near-ties),
in fp32 with TF32 off for the correctness checks. Three checks, one run, a few minutes:

1. the shared-prefix attention (its CUDA branch, plain matmuls) equals SDPA over each
   row's prompt and own keys, for rows of three prompts of different lengths in one step;
2. greedy continuous batching (3 prompts x 3 samples on 4 rows: rows of different
   prompts share steps, finished rows are refilled) equals ``model.generate`` token for
   token; a difference is accepted only at a near-tie of the reference's logits;
3. tok/s of sampling k = 16 and k = 64 samples of one 512-token prompt, 256 new tokens
   each, against ``generate(num_return_sequences=k)`` on the same model, in bf16.

    python benchmarks/gpu_check.py            # exit status 1 if a check fails

``--device cpu --layers 2 --new_tokens 8`` runs the same code small on a CPU (a smoke run
of the script itself, not a GPU check).

It imports the decoder's modules without ``lm_eval_monkeys.models``' package import,
which registers the lm-eval models and so needs lm-eval.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if "lm_eval_monkeys.models" not in sys.modules:  # the subpackage, without its lm-eval models
    package = types.ModuleType("lm_eval_monkeys.models")
    package.__path__ = [str(REPO / "lm_eval_monkeys" / "models")]
    sys.modules["lm_eval_monkeys.models"] = package

from transformers import AttentionInterface, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from lm_eval_monkeys.models.continuous_batching import ContinuousBatcher, Job  # noqa: E402
from lm_eval_monkeys.models.generation import GenerationSettings  # noqa: E402
from lm_eval_monkeys.models.prefix_cache import (  # noqa: E402
    SHARED_PREFIX_ATTENTION,
    Prefix,
    SharedPrefixCache,
    shared_prefix_attention,
)

DEVICE = torch.device("cuda")


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def model_05b(dtype: torch.dtype, layers: int = 24) -> Qwen2ForCausalLM:
    """Qwen2-0.5B's shape, random weights (seeded), shared-prefix attention registered."""
    config = Qwen2Config(
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4_864,
        num_hidden_layers=layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4_096,
        tie_word_embeddings=True,
        initializer_range=0.1,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(DEVICE, dtype).eval()
    AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
    model.set_attn_implementation(SHARED_PREFIX_ATTENTION)
    return model


def check_attention() -> float:
    """Largest difference of shared-prefix attention from SDPA over each row's keys."""
    g = torch.Generator(device=DEVICE).manual_seed(0)
    kv_heads, group, dim, own = 2, 7, 64, 5

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=DEVICE)

    lengths, rows_of = [300, 17, 120], [3, 1, 2]
    cache = SharedPrefixCache(1, 6, kv_heads, dim, max(lengths), own + 1, torch.float32, DEVICE)
    prefixes = []
    for length, rows in zip(lengths, rows_of, strict=True):
        prefix = Prefix([randn(kv_heads, length, dim)], [randn(kv_heads, length, dim)], randn(8))
        slot = cache.add_prefix(prefix)
        prefixes += [prefix] * rows
        for _ in range(rows):
            cache.add_row(slot)
    worst = 0.0
    own_keys: list[torch.Tensor] = []
    own_values: list[torch.Tensor] = []
    for _ in range(own):
        mask = cache.prepare_step()
        query = randn(6, kv_heads * group, 1, dim)
        key, value = randn(6, kv_heads, 1, dim), randn(6, kv_heads, 1, dim)
        own_keys.append(key)
        own_values.append(value)
        k, v = cache.update(key, value, 0)
        out, _ = shared_prefix_attention(
            types.SimpleNamespace(layer_idx=0),  # type: ignore[arg-type]
            query,
            k,
            v,
            mask,
            shared_prefix=cache,
        )
        cache.advance()
        for row, prefix in enumerate(prefixes):
            keys = torch.cat([prefix.keys[0], *(t[row, :, 0][:, None] for t in own_keys)], 1)
            values = torch.cat([prefix.values[0], *(t[row, :, 0][:, None] for t in own_values)], 1)
            expected = torch.nn.functional.scaled_dot_product_attention(
                query[row, :, 0][:, None],
                keys.repeat_interleave(group, 0),
                values.repeat_interleave(group, 0),
            )[:, 0]
            worst = max(worst, float((out[row, 0] - expected).abs().max()))
    return worst


def check_greedy(model: Qwen2ForCausalLM) -> list[str]:
    """Greedy samples of the batcher against ``generate``; the rows that differ, why."""
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 151_936, (n,), generator=g).tolist() for n in (37, 120, 300)]
    settings = GenerationSettings(max_tokens=32)
    jobs = [Job(p, settings, seeds=[0, 1, 2]) for p in prompts]
    got: dict[int, list[list[int]]] = {i: [] for i in range(3)}
    for sequence in ContinuousBatcher(model, rows=4, eos=None).run(jobs):
        got[jobs.index(sequence.job)].append(sequence.tokens)
    problems = []
    for i, prompt in enumerate(prompts):
        ids = torch.tensor([prompt], device=DEVICE)
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=32, min_new_tokens=32, do_sample=False)
        reference = out[0, len(prompt) :].tolist()
        for tokens in got[i]:
            if tokens == reference:
                continue
            at = next(t for t, (a, b) in enumerate(zip(tokens, reference, strict=True)) if a != b)
            with torch.inference_mode():
                logits = model(torch.tensor([prompt + reference[:at]], device=DEVICE)).logits
            top = logits[0, -1].float().topk(2).values
            gap = float(top[0] - top[1])
            verdict = "near-tie" if gap < 1e-3 * float(top[0].abs()) else "WRONG"
            problems.append(f"prompt {i}: differs at token {at} (top-2 gap {gap:.2e}): {verdict}")
    return problems


def tok_s(model: Qwen2ForCausalLM, k: int, new: int, prompt_len: int = 512) -> tuple[float, float]:
    """(batcher, generate) new tokens per second for k samples of one prompt."""
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, 151_936, (prompt_len,), generator=g).tolist()
    settings = GenerationSettings(max_tokens=new, temperature=1.0)
    batcher = ContinuousBatcher(model, rows=k, eos=None)

    def ours() -> None:
        for _ in batcher.run([Job(prompt, settings, seeds=list(range(k)))]):
            pass

    def theirs() -> None:
        ids = torch.tensor([prompt], device=DEVICE)
        with torch.inference_mode():
            model.generate(
                ids,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                num_return_sequences=k,
                max_new_tokens=new,
                min_new_tokens=new,
            )

    rates = []
    for run in (ours, theirs):
        run()  # warm-up: kernels, allocator
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        rates.append(k * new / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> int:
    global DEVICE
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--new_tokens", type=int, default=256)
    args = parser.parse_args()
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda":
        assert torch.cuda.is_available(), "no CUDA GPU here (--device cpu runs it small)"
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    failed = False
    worst = check_attention()
    print(f"1. shared-prefix attention vs SDPA, fp32: max |difference| {worst:.2e}", flush=True)
    failed |= worst > 1e-4
    model = model_05b(torch.float32, args.layers)
    problems = check_greedy(model)
    wrong = [p for p in problems if p.endswith("WRONG")]
    print(f"2. greedy batcher vs generate, 9 samples: {9 - len(problems)} identical", flush=True)
    for p in problems:
        print("   ", p)
    failed |= bool(wrong)
    del model
    model = model_05b(torch.bfloat16, args.layers)
    for k in (16, 64):
        ours, theirs = tok_s(model, k, args.new_tokens)
        print(
            f"3. k = {k}, bf16: batcher {ours:.0f} new tok/s, generate(num_return_sequences) "
            f"{theirs:.0f}, ratio {ours / theirs:.2f}",
            flush=True,
        )
    print("FAILED" if failed else "all checks passed")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
