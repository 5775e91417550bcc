"""``export RUN_DIR``: every stored sample with its answer and verdict, JSONL or Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_monkeys.cli.flags import add_checker_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="the run's --output_path")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    parser.add_argument("--output", type=Path, help="file to write (JSONL: default stdout)")
    add_checker_flag(parser, "the run's own")


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.export import export_run

    count = export_run(args.run_dir, args.format, args.output, args.verifier)
    if args.output:
        print(f"{count} samples -> {args.output}")
