"""``reward RUN_DIR --reward_model M``: a reward score per stored sample, kept in the store."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="the run's --output_path")
    parser.add_argument("--reward_model", required=True, help="sequence-classification model")
    parser.add_argument("--batch_size", type=int, default=8, help="texts per forward pass")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--max_length", type=int, default=4096, help="tokens kept per text")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--trust_remote_code", action="store_true", help="needed by ArmoRM")


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.models.reward_model import score_run
    from lm_eval_monkeys.store import STORE_FILE

    scored = score_run(
        args.run_dir,
        args.reward_model,
        args.batch_size,
        args.device,
        args.max_length,
        args.dtype,
        args.trust_remote_code,
    )
    print(f"{scored} samples scored with {args.reward_model} -> {args.run_dir / STORE_FILE}")
