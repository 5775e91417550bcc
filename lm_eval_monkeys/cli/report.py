"""``report RUN_DIR... --output DIR``: figures, fits, forecasts, costs, a leaderboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_monkeys.cli.flags import METRICS_HELP, add_checker_flag, metric_list, reported_ks
from lm_eval_monkeys.errors import MonkeysError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, help="runs' --output_path", metavar="RUN_DIR"
    )
    parser.add_argument("--output", required=True, type=Path, help="directory the report goes to")
    parser.add_argument("--prices", type=Path, help="YAML/JSON: model: {input: $/1M, output: $/1M}")
    parser.add_argument("--params", nargs="+", default=[], metavar="MODEL=N", help="e.g. run=135M")
    parser.add_argument("--target", type=float, default=0.9, help="coverage to find k for")
    parser.add_argument("--budget", help="per problem: FLOPs (1e15) or dollars ($0.01)")
    add_checker_flag(parser, "each run's own")
    parser.add_argument("--ks", help="k values to compute metrics at (default: powers of two)")
    parser.add_argument("--reward_model", help="rewards for rm_* metrics (default: the only one)")
    parser.add_argument("--metrics", help=METRICS_HELP)


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.forecasts.cost import Budget, parse_count
    from lm_eval_monkeys.reports.report import build_report

    params = {}
    for item in args.params:
        name, sep, count = item.rpartition("=")
        if not sep or not name:
            raise MonkeysError(f"--params takes MODEL=N (a run or model name), got {item!r}")
        params[name] = parse_count(count)
    report = build_report(
        args.run_dirs,
        args.output,
        prices=args.prices,
        params=params,
        target=args.target,
        budget=Budget.parse(args.budget) if args.budget else None,
        checker_spec=args.verifier,
        ks=reported_ks(args.ks),
        reward_model=args.reward_model,
        metrics=metric_list(args.metrics),
    )
    print(f"report of {len(args.run_dirs)} runs -> {report.output / 'report.html'}")
    for path in report.files:
        print(f"  {path}")
