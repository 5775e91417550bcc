"""Answer checkers, one module per kind of task, behind ``Checker`` and a lazy registry.

``get_checker("name:options")`` imports only the module that implements ``name``, so
importing this package loads no checker (no sympy, math-verify, lm-eval or sandbox).
Each factory takes the text after the colon and parses it into typed arguments once.
"""

from __future__ import annotations

import os
from importlib import import_module

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import AnswerChecker, Checker, Verdict

__all__ = ["AnswerChecker", "Checker", "Verdict", "checker_names", "get_checker"]

# name -> "module:factory"; a factory is ``(options: str) -> Checker``.
_FACTORIES: dict[str, str] = {
    "gsm8k": "lm_eval_monkeys.verifiers.answers.gsm8k:gsm8k",
    "math": "lm_eval_monkeys.verifiers.answers.math:math",
    "code": "lm_eval_monkeys.verifiers.code.codecontests:code",
    "lean": "lm_eval_monkeys.verifiers.lean:lean",
    "swebench": "lm_eval_monkeys.verifiers.swebench.grading:swebench",
    "command": "lm_eval_monkeys.verifiers.hooks:command",
    "http": "lm_eval_monkeys.verifiers.hooks:http",
    "https": "lm_eval_monkeys.verifiers.hooks:https",
}

_PATH_OPTIONS = {"lean"}  # verifiers whose options are a path


def checker_names() -> list[str]:
    return sorted(_FACTORIES)


def get_checker(spec: str, task: str = "") -> Checker:
    """Build a checker from ``name`` or ``name:options`` (e.g. ``gsm8k:flexible``,
    ``command:python my_verifier.py``); ``task`` names the task it checks."""
    name, _, options = spec.partition(":")
    if name not in _FACTORIES:
        raise MonkeysError(f"unknown checker {spec!r}; choose one of {', '.join(checker_names())}")
    if name in _PATH_OPTIONS and options:
        # Resolved where the user typed it: the spec travels to Ray workers as text.
        options = os.path.abspath(os.path.expanduser(options))
        spec = f"{name}:{options}"
    module, _, factory = _FACTORIES[name].partition(":")
    checker: Checker = getattr(import_module(module), factory)(options)
    checker.spec, checker.task = spec, task
    return checker
