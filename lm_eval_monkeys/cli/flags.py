"""Flags and values several subcommands share."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from lm_eval_monkeys.scoring.dispatch import VerifyBackend, get_verify_backend
from lm_eval_monkeys.tasks.run_options import parse_ks


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify_backend",
        choices=("local", "ray"),
        default="local",
        help="where answers are verified: this machine, or a Ray cluster's workers",
    )
    parser.add_argument("--ray_address", help="the Ray head's HOST:PORT (default: $RAY_ADDRESS)")


@contextmanager
def backend(args: argparse.Namespace) -> Iterator[VerifyBackend]:
    """The verification backend the flags ask for, closed afterwards."""
    chosen = get_verify_backend(args.verify_backend, address=args.ray_address)
    try:
        yield chosen
    finally:
        chosen.close()


def add_checker_flag(parser: argparse.ArgumentParser, instead_of: str) -> None:
    """``--verifier SPEC``: the flag keeps its name (users' scripts pass it); it names a
    checker spec, ``NAME`` or ``NAME:OPTIONS``."""
    parser.add_argument(
        "--verifier",
        metavar="SPEC",
        help=f"the checker spec to judge with instead of {instead_of}: NAME or "
        "NAME:OPTIONS (e.g. gsm8k:flexible, command:python my_checker.py)",
    )


METRICS_HELP = "comma-separated, e.g. coverage,majority,passall,gpass_0.5 (default: the run's)"


def metric_list(value: str | None) -> list[str] | None:
    """``--metrics a,b``: the names in order, once each; None when not given."""
    return list(dict.fromkeys(m.strip() for m in value.split(",") if m.strip())) if value else None


def reported_ks(value: str | None) -> list[int] | None:
    """``--ks`` of an existing run (checked against its samples later)."""
    return parse_ks(value, 1 << 62) if value else None
