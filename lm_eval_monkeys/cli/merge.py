"""``merge SHARD_DIR... --output RUN_DIR``: one store from a sharded run's shards."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shard_dirs", nargs="+", type=Path, help="every shard's --output_path")
    parser.add_argument("--output", required=True, type=Path, help="the merged run's directory")


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.store.shards import merge_shards

    merged = merge_shards(args.shard_dirs, args.output)
    print(
        f"{merged.shards} shards merged: {merged.tasks} tasks, {merged.problems} problems, "
        f"{merged.samples} samples -> {args.output}"
    )
