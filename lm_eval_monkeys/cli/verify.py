"""``verify --task T --input IN.jsonl --output OUT.jsonl``: judge completions, no model."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_monkeys.cli.flags import add_backend_flags, add_checker_flag, backend
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.task_configs import TASK_DIR, installed_metadata


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="a monkeys_* task name")
    parser.add_argument("--input", required=True, type=Path, help="JSONL of {doc, completion}")
    parser.add_argument("--output", required=True, type=Path, help="JSONL written with verdicts")
    add_checker_flag(parser, "the task's")
    parser.add_argument("--include_path", type=Path, help="another directory of task configs")
    add_backend_flags(parser)


def run(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.scoring.verify import verify_file
    from lm_eval_monkeys.verifiers import get_checker

    dirs = [TASK_DIR, *([args.include_path] if args.include_path else [])]
    known = {t: m["verifier"] for t, m in installed_metadata(dirs).items() if m.get("verifier")}
    if not args.verifier and args.task not in known:
        raise MonkeysError(
            f"unknown task {args.task!r}; choose one of {', '.join(sorted(known))} "
            "(or pass --include_path DIR for your own configs, or --verifier NAME)"
        )
    spec = args.verifier or known[args.task]
    checker = get_checker(spec, args.task)
    try:
        with backend(args) as chosen:
            lines, correct = verify_file(args.input, args.output, checker, chosen)
    finally:
        checker.close()
    print(f"{lines} samples verified with {spec}: {correct} correct -> {args.output}")
