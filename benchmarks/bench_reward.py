"""Reward scoring throughput, and rm_best@k / rm_majority@k at scale.

1. Scoring: a small randomly initialised Llama reward model (4 layers, hidden 256, an
   8,192-token BPE trained here on GSM8K questions, a chat template) on CPU scores 512
   GSM8K test prompts, each with its reference solution as the completion (step-by-step
   texts of natural, varied length; synthetic completions of one problem are all about
   equally long). Ours: batches of 8 and 16 texts of similar length
   (``RewardScorer.score``). Baselines in the same run, on the same token ids: batch size
   1, and batches in dataset order (unsorted); each the best of 3 runs. Then the whole
   ``score_run`` (store reads, chat template, tokenising, commits) on a monkeys-synthetic
   run of PROBLEMS x K samples.
2. Estimators: 1,319 problems x n = 10,000 synthetic samples with rewards, the default
   k values (powers of two up to n, plus n). Ours: ``rm_best_at_k`` (exact) and
   ``rm_majority_at_k`` (200 sampled subsets, the nested prefixes of shared permutations).
   Baselines, timed on the first 20 problems and scaled to 1,319: best-of-k by sampling
   100 random subsets per k (the paper's approach for majority vote), and the weighted
   vote with 200 independent subsets per k.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_reward.py [PROBLEMS K]

Torch runs one thread unless BENCH_THREADS says otherwise.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lm_eval_monkeys.metrics.estimators import default_ks, rm_best_at_k, rm_majority_at_k
from lm_eval_monkeys.metrics.estimators import vote_weights as weights_of
from lm_eval_monkeys.models.reward_model import (
    load_reward_model,
    reward_text,
    score_run,
    task_prompt,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)
N, MANY = 10_000, 1_319
BASELINE_PROBLEMS = 20
REPEATS = 3


def build_model(directory: Path) -> Path:
    """A random 4-layer Llama reward model with a BPE trained on GSM8K's train questions."""
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    train = Path(os.environ["MONKEYS_DATA_DIR"]) / "gsm8k" / "train.jsonl"
    texts = [json.loads(line)["question"] for line in train.read_text().splitlines()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=8192,
            special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_run(run_dir: Path, problems: int, k: int) -> None:
    subprocess.run(
        [
            *("lm-eval-monkeys", "--model", "monkeys-synthetic"),
            *("--model_args", "accuracy=0.3,seed=0", "--tasks", "monkeys_gsm8k"),
            *("--limit", str(problems), "--repeats", str(k), "--output_path", str(run_dir)),
        ],
        check=True,
        capture_output=True,
    )


def reference_texts(tokenizer: object, count: int) -> list[str]:
    """GSM8K test prompts with their reference solutions, as the reward model sees them."""
    import json

    test = Path(os.environ["MONKEYS_DATA_DIR"]) / "gsm8k" / "test.jsonl"
    docs = [json.loads(line) for line in test.read_text().splitlines()[:count]]
    prompt_of = task_prompt("monkeys_gsm8k")
    return [reward_text(tokenizer, prompt_of(doc), " " + doc["answer"]) for doc in docs]


def padding(lengths: np.ndarray, batch: int) -> float:
    """Share of pad tokens when ``lengths`` are batched in the given order."""
    padded = sum(
        int(lengths[i : i + batch].max()) * len(lengths[i : i + batch])
        for i in range(0, len(lengths), batch)
    )
    return 1 - lengths.sum() / padded


def bench_scoring(problems: int, k: int) -> None:
    work = Path(tempfile.mkdtemp())
    try:
        model_dir = build_model(work / "rm")
        make_run(work / "run", problems, k)
        scorer = load_reward_model(str(model_dir))
        sequences, _ = scorer.encode(reference_texts(scorer.tokenizer, 512))
        lengths = np.array([len(s) for s in sequences])
        print(
            f"scoring: {len(sequences)} samples, tokens per text {lengths.min()}..{lengths.max()}"
            f" (mean {lengths.mean():.0f}), torch threads {__import__('torch').get_num_threads()},"
            f" best of {REPEATS} runs"
        )
        scorer.score(sequences[:32], 16)  # warm-up

        def rate(run: Callable[[], object]) -> float:
            best = float("inf")
            for _ in range(REPEATS):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            return len(sequences) / best

        def unsorted(batch: int) -> Callable[[], object]:
            starts = range(0, len(sequences), batch)
            return lambda: [scorer.score_batch(sequences[i : i + batch]) for i in starts]

        one = rate(lambda: scorer.score(sequences, 1))
        print(f"  {'batch size 1 (baseline)':<32} {one:6.1f} samples/s")
        for batch in (8, 16):
            plain, ours = rate(unsorted(batch)), rate(lambda b=batch: scorer.score(sequences, b))
            sorted_lengths = np.sort(lengths)[::-1]
            for label, value, pad in (
                (f"batch {batch}, dataset order", plain, padding(lengths, batch)),
                (f"batch {batch}, length-sorted (ours)", ours, padding(sorted_lengths, batch)),
            ):
                print(
                    f"  {label:<32} {value:6.1f} samples/s  padding {pad:5.1%}  "
                    f"{value / one:.2f}x batch size 1"
                )

        start = time.perf_counter()
        count = score_run(work / "run", str(model_dir), batch_size=8)
        elapsed = time.perf_counter() - start
        print(
            f"  score_run, {problems} x {k} synthetic samples, batch 8, end to end (model load, "
            f"store, template, tokenising, commits): {elapsed:.2f} s, {count / elapsed:.1f} "
            "samples/s"
        )
    finally:
        shutil.rmtree(work)


def synthetic_problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """n samples: a per-problem accuracy (Beta(0.3, 0.6)), wrong answers over 50 Zipf-
    distributed classes, 5% unparsable; rewards N(0, 1) plus 0.5 for correct samples."""
    accuracy = rng.beta(0.3, 0.6)
    kind = rng.random(N)
    wrong = np.minimum(rng.zipf(1.5, N), 50)
    classes = np.where(kind < 0.05, -1, np.where(kind < 0.05 + 0.95 * accuracy, 0, wrong))
    rewards = rng.normal(size=N) + 0.5 * (classes == 0)
    return rewards, classes, [True] + [False] * 50


def sampled_best(
    rewards: np.ndarray, correct: np.ndarray, ks: list[int], rng: np.random.Generator
) -> list[float]:
    """Baseline: 100 random k-subsets per k, credit of each subset's top-reward sample."""
    out = []
    for k in ks:
        picks = np.argsort(rng.random((100, N)), axis=1)[:, :k]
        out.append(float(correct[picks[np.arange(100), rewards[picks].argmax(axis=1)]].mean()))
    return out


def independent_votes(
    rewards: np.ndarray, classes: np.ndarray, ks: list[int], rng: np.random.Generator
) -> list[float]:
    """Baseline: the weighted vote with 200 independent random k-subsets per k."""
    weights, out = weights_of(rewards), []
    for k in ks:
        picks = np.argsort(rng.random((200, N)), axis=1)[:, :k]
        cls, w = classes[picks], weights[picks]
        totals = np.zeros((200, 52))
        np.add.at(totals, (np.arange(200)[:, None], np.where(cls < 0, 51, cls)), w)
        top = totals[:, :51].max(axis=1, keepdims=True)
        tied = (totals[:, :51] >= top * (1 - 1e-9)) & (top > 0)
        out.append(float((tied[:, 0] / np.maximum(tied.sum(axis=1), 1)).mean()))
    return out


def bench_estimators() -> None:
    ks = default_ks(N)
    rng = np.random.default_rng(0)
    problems = [synthetic_problem(rng) for _ in range(MANY)]
    print(f"\nestimators: {MANY} problems x n={N}, ks={ks[0]}..{ks[-1]} ({len(ks)} values)")

    start = time.perf_counter()
    best = np.array([rm_best_at_k(r, c == 0, ks) for r, c, _ in problems])
    t_best = time.perf_counter() - start
    start = time.perf_counter()
    votes = [rm_majority_at_k(r, c, right, ks) for r, c, right in problems]
    t_vote = time.perf_counter() - start
    vote = np.array([v.value for v in votes])
    stderr = np.sqrt(sum(v.stderr**2 for v in votes)) / MANY

    base = np.random.default_rng(1)
    few = problems[:BASELINE_PROBLEMS]
    start = time.perf_counter()
    for r, c, _ in few:
        sampled_best(r, c == 0, ks, base)
    t_best_base = (time.perf_counter() - start) * MANY / BASELINE_PROBLEMS
    start = time.perf_counter()
    for r, c, _ in few:
        independent_votes(r, c, ks, base)
    t_vote_base = (time.perf_counter() - start) * MANY / BASELINE_PROBLEMS

    print(f"  rm_best_at_k (exact):                  {t_best:8.2f} s")
    print(
        f"  best-of-k, 100 subsets per k (scaled): {t_best_base:8.2f} s  "
        f"-> {t_best_base / t_best:.0f}x"
    )
    print(f"  rm_majority_at_k (200 shared subsets): {t_vote:8.2f} s")
    print(
        f"  200 independent subsets per k (scaled):{t_vote_base:8.2f} s  "
        f"-> {t_vote_base / t_vote:.1f}x"
    )
    for name, table in (("rm_best", best), ("rm_majority", vote)):
        means = zip(ks, table.mean(axis=0), strict=True)
        print(f"  mean {name}@k:", " ".join(f"{k}:{v:.3f}" for k, v in means))
    print(f"  Monte-Carlo standard error of the mean rm_majority@k: at most {stderr.max():.1e}")


def main() -> None:
    import torch

    problems, k = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (32, 16)
    # One thread: on a machine whose cores other jobs also use, two threads oversubscribe
    # and time mostly the contention (measured: slower than one, and erratic).
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    bench_scoring(problems, k)
    bench_estimators()


if __name__ == "__main__":
    main()
