"""``lm-eval-monkeys``: the ``lm_eval`` command with this package's tasks, plus tools.

lm-eval-monkeys --model hf --tasks monkeys_gsm8k --repeats 16 ...   # any lm_eval flags
lm-eval-monkeys verify --task monkeys_gsm8k --input IN.jsonl --output OUT.jsonl
lm-eval-monkeys rescore RUN_DIR | export RUN_DIR | report RUN_DIR... --output DIR
lm-eval-monkeys compare BASELINE CANDIDATE [...] --fail_if "coverage@16 < -0.02"   # CI gate
lm-eval-monkeys reward RUN_DIR --reward_model PATH_OR_ID   # reward scores, kept in the store
lm-eval-monkeys merge DIR_0 DIR_1 ... --output RUN_DIR   # runs made with --shard i/N
lm-eval-monkeys import SOURCE --output RUN_DIR   # the paper's samples (hub config or YAML)
lm-eval-monkeys audit RUN_DIR --output DISAGREE.jsonl   # their verdicts against ours
lm-eval-monkeys task-dir    # the directory to pass to stock lm_eval --include_path

Each subcommand is a module of this package with ``add_arguments`` and ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

from lm_eval_monkeys.cli.interrupt import Interrupted
from lm_eval_monkeys.errors import MonkeysError

# subcommand -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("verify", "score JSONL completions with a task's checker"),
    "rescore": ("rescore", "recompute a stored run's metrics, no model"),
    "export": ("export", "write every stored sample with its verdict"),
    "report": ("report", "figures, fits, forecasts and costs of runs"),
    "compare": ("compare", "paired differences between runs on the same problems; a CI gate"),
    "reward": ("reward", "score a stored run's samples with a reward model"),
    "merge": ("merge", "merge the stores of a sharded run's shards"),
    "import": ("import_samples", "samples made elsewhere (the paper's) into a run store"),
    "audit": ("audit", "an imported run's own verdicts against this project's checker"),
    "task-dir": ("task_dir", "print the task config directory for --include_path"),
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(usage())
        elif argv[0] in COMMANDS:
            _own_command(argv)
        else:
            from lm_eval_monkeys.cli.run import run_lm_eval

            run_lm_eval(argv)
    except Interrupted as stop:
        print(f"lm-eval-monkeys: {stop}", file=sys.stderr)
        sys.exit(stop.exit_status)
    except MonkeysError as err:
        sys.exit(f"lm-eval-monkeys: error: {err}")
    except KeyboardInterrupt:  # before a run started: nothing to keep
        sys.exit("lm-eval-monkeys: interrupted before the run started; nothing was written")
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def usage() -> str:
    """``--help``: this project's run flags and subcommands, then where lm-eval's are."""
    from lm_eval_monkeys.cli.run import own_parser

    width = max(len(name) for name in COMMANDS)
    commands = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return (
        own_parser().format_help()
        + f"\ncommands (`lm-eval-monkeys COMMAND --help` for each one's flags):\n{commands}\n"
        + "\nA run takes every flag of lm-eval's `run` as well (--model, --model_args, --tasks, "
        "--limit, --output_path, --gen_kwargs, --metadata, --confirm_run_unsafe_code, ...): "
        "`lm-eval-monkeys run --help` lists them. Without --model a run uses the embedded "
        "model. All of it: docs/cli.md.\n"
    )


def _own_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lm-eval-monkeys")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = None
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == argv[0]:  # import only the command that runs
            chosen = import_module(f"lm_eval_monkeys.cli.{module_name}")
            chosen.add_arguments(sub)
    args = parser.parse_args(argv)
    assert chosen is not None
    chosen.run(args)
