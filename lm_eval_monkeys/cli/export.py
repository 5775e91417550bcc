"""``export RUN_DIR``: every stored sample with its answer and verdict, JSONL or Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="the run's --output_path")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    parser.add_argument("--output", type=Path, help="file to write (JSONL: default stdout)")
    parser.add_argument("--verifier", help="verify with another checker")


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.export import export_run

    count = export_run(args.run_dir, args.format, args.output, args.verifier)
    if args.output:
        print(f"{count} samples -> {args.output}")
