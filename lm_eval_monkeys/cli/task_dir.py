"""``task-dir``: where the task configs are, for stock ``lm_eval --include_path``."""

from __future__ import annotations

import argparse

from lm_eval_monkeys.task_configs import TASK_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    print(TASK_DIR)
