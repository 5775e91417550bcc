"""``compare RUN_A RUN_B [...]``: paired differences on shared problems, and the CI gate."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lm_eval_monkeys.cli.flags import add_checker_flag, metric_list, reported_ks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="baseline first, then the others"
    )
    parser.add_argument(
        "--metrics",
        help="comma-separated, e.g. coverage,majority (default: coverage,majority; coverage "
        "when a run was sampled until verified)",
    )
    parser.add_argument("--ks", help="k values to compare at (default: powers of two)")
    add_checker_flag(parser, "each run's own (every run is judged by it)")
    parser.add_argument(
        "--intersection", action="store_true", help="compare on the problems all runs hold"
    )
    parser.add_argument(
        "--different_prompts", action="store_true", help="allow prompts or sampling to differ"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level")
    parser.add_argument("--iters", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstrap and flips")
    parser.add_argument(
        "--fail_if",
        "--fail-if",
        action="append",
        default=[],
        metavar="CONDITION",
        help="e.g. 'coverage@16 < -0.02' or 'coverage@16 significant_drop 0.05' (repeatable)",
    )
    parser.add_argument(
        "--allow_missing",
        action="store_true",
        help="let the gate pass when the candidate lacks tasks or problems the baseline holds",
    )
    parser.add_argument("--summary", type=Path, help="Markdown summary file")
    parser.add_argument("--json", type=Path, help="JSON result file")
    parser.add_argument("--junit", type=Path, help="JUnit XML file, one test case per condition")


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.comparison import gate
    from lm_eval_monkeys.comparison.compare_runs import compare_runs
    from lm_eval_monkeys.reports.report import run_labels

    conditions = [gate.parse_condition(text) for text in args.fail_if]
    comparison = compare_runs(
        args.run_dirs,
        run_labels(args.run_dirs),
        metrics=metric_list(args.metrics),
        also_metrics=[c.metric for c in conditions],
        ks=reported_ks(args.ks),
        also_ks=[c.k for c in conditions],
        checker_spec=args.verifier,
        intersection=args.intersection,
        different_prompts=args.different_prompts,
        alpha=args.alpha,
        iters=args.iters,
        seed=args.seed,
    )
    checks = gate.evaluate(comparison, conditions, args.allow_missing)
    summary = gate.markdown(comparison, checks)
    outputs = {
        path: render(comparison, checks)
        for path, render in (
            (args.summary, lambda *_: summary),
            (args.json, gate.json_text),
            (args.junit, gate.junit_xml),
        )
        if path is not None
    }
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    gate.write_outputs(outputs, Path(step_summary) if step_summary else None, summary)
    print(gate.text(comparison, checks))
    if any(check.failed for check in checks):
        sys.exit(1)
