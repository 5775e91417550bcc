"""``import SOURCE --output RUN_DIR``: samples made elsewhere (the paper's released samples
or its generation code's YAML files) into a run store, with the source's verdicts."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_monkeys.importing.sources import HUB_DATASET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        help=f"a hub dataset id ({HUB_DATASET}), a local copy of one of its configs (the "
        "config's .json file, or the directory holding it), or a directory of the paper "
        "code's YAML files",
    )
    parser.add_argument("--output", type=Path, required=True, help="the run directory to write")
    parser.add_argument("--config", help="the hub config, e.g. GSM8K_Llama-3-8B-Instruct")
    parser.add_argument(
        "--benchmark",
        choices=("gsm8k", "math", "codecontests", "minif2f"),
        help="the benchmark (default: the config name's prefix; needed for YAML files)",
    )
    parser.add_argument("--model", help="the model that wrote the samples (default: from --config)")
    parser.add_argument("--revision", help="the hub dataset's revision (a commit or tag)")


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.importing.import_run import import_samples
    from lm_eval_monkeys.importing.sources import resolve_source

    source = resolve_source(args.source, args.config, args.benchmark, args.model, args.revision)
    summary = import_samples(source, args.output)
    print("\n".join([*summary.lines(), f"-> {args.output}"]))
