"""``rescore RUN_DIR``: a stored run's metrics again, with its own checker or another."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_monkeys.cli.flags import (
    METRICS_HELP,
    add_backend_flags,
    add_checker_flag,
    backend,
    metric_list,
    reported_ks,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="the run's --output_path")
    add_checker_flag(parser, "the run's own")
    parser.add_argument("--ks", help="k values to report, e.g. 1,10,100")
    parser.add_argument("--reward_model", help="rewards for rm_* metrics (default: the only one)")
    parser.add_argument("--metrics", help=METRICS_HELP)
    add_backend_flags(parser)


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.cli.table import metric_table
    from lm_eval_monkeys.scoring.rescore import RESCORE_FILE, rescore_run

    ks = reported_ks(args.ks)
    with backend(args) as chosen:
        results = rescore_run(
            args.run_dir,
            args.verifier,
            ks,
            backend=chosen,
            reward_model=args.reward_model,
            metrics=metric_list(args.metrics),
        )
    print(metric_table(results))
    if (args.run_dir / RESCORE_FILE).exists() and results:
        print(f"\nwritten to {args.run_dir / RESCORE_FILE}")
