"""``audit RUN_DIR``: an imported run's own verdicts against this project's checker."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_monkeys.cli.flags import add_checker_flag, reported_ks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run directory written by `import`")
    parser.add_argument("--output", type=Path, help="write every disagreeing sample here (JSONL)")
    add_checker_flag(parser, "the run's own")
    parser.add_argument(
        "--ks", type=reported_ks, help="the ks of the coverage table, e.g. 1,10,100"
    )


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.importing.audit import audit_run

    audits = audit_run(args.run_dir, args.output, args.verifier, args.ks)
    print("\n\n".join(audit.table(args.ks) for audit in audits))
    if args.output:
        total = sum(audit.disagreements for audit in audits)
        print(f"\n{total} disagreeing samples -> {args.output}")
