"""Answer checkers, one per kind of task, behind one small interface and a registry.

A checker turns a completion into an answer key (``None`` when nothing parsable is
found), decides whether a key is correct for a document, and whether two keys are the
same answer. Samples with equal keys are checked once (see ``lm_eval_monkeys.summary``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lm_eval_monkeys.errors import MonkeysError


class Checker(Protocol):
    """What every verifier provides."""

    def extract(self, completion: str) -> str | None:
        """The answer key of a completion, or None if it holds no parsable answer."""

    def target(self, doc: dict[str, Any]) -> str:
        """The reference answer key of a document (hub schema)."""

    def is_correct(self, answer: str, target: str) -> bool:
        """Whether an extracted answer matches the reference."""

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers are the same answer (for vote grouping)."""


_REGISTRY: dict[str, Callable[..., Checker]] = {}


def verifier(name: str) -> Callable[[Callable[..., Checker]], Callable[..., Checker]]:
    """Register a checker factory under ``name``; ``name:mode`` passes ``mode=...``."""

    def register(factory: Callable[..., Checker]) -> Callable[..., Checker]:
        _REGISTRY[name] = factory
        return factory

    return register


def get_verifier(spec: str, task: str = "") -> Checker:
    """Build a checker from ``name`` or ``name:mode`` (e.g. ``gsm8k:flexible``,
    ``command:python my_verifier.py``); ``task`` names the task for checkers that pass it on."""
    name, _, mode = spec.partition(":")
    if name not in _REGISTRY:
        raise MonkeysError(
            f"unknown verifier {spec!r}; choose one of {', '.join(sorted(_REGISTRY))}"
        )
    checker = _REGISTRY[name](mode=mode) if mode else _REGISTRY[name]()
    if hasattr(checker, "task"):
        checker.task = task
    return checker


# Importing the modules registers their checkers.
from lm_eval_monkeys.verifiers import code, gsm8k, hooks, lean, math, swebench  # noqa: E402, F401
