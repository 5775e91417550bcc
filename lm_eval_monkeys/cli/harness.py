"""lm-eval's own command line, parsed from an argument list and run.

lm-eval 0.4.13 has no public API for its CLI: ``lm_eval._cli.HarnessCLI`` is private and
its ``parse_args`` reads (and edits) ``sys.argv``. This module is the one place that
touches it: ``sys.argv`` is set for the parse and restored after, and an lm-eval without
the class is one line naming the version to install.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from lm_eval_monkeys.errors import MonkeysError


class HarnessCommand:
    """lm-eval's CLI: ``parse`` an argument list (as after ``lm-eval``), ``execute`` it."""

    def __init__(self) -> None:
        try:
            from lm_eval._cli import HarnessCLI
        except ImportError:
            raise MonkeysError(
                f"lm-eval {version('lm_eval')} has no lm_eval._cli.HarnessCLI, which runs "
                "its command line; install lm-eval>=0.4.13,<0.5"
            ) from None
        self._cli = HarnessCLI()

    def parse(self, argv: list[str]) -> argparse.Namespace:
        saved = sys.argv
        sys.argv = ["lm-eval-monkeys", *argv]
        try:
            return self._cli.parse_args()
        finally:
            sys.argv = saved

    def execute(self, args: argparse.Namespace) -> None:
        self._cli.execute(args)
