"""What every checker is: a completion's answer key, a document's target key, verdicts.

A checker turns a completion into an answer key (``None`` when nothing parsable is
found) and a document into a target key; ``judge_many`` gives the verdicts of distinct
answers to one target. Keys are what the verdict cache stores, so a target key must
change whenever anything that decides a verdict changes (tests, limits, rules).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """One answer's judgement: ``correct``, the checker's ``status`` word (``AC``, ``WA``,
    ``resolved``, ...) and JSON-able ``details`` (per-test results, the limit hit, failing
    tests, a log path, a flaky note). ``final=False`` marks a judgement about the setup
    rather than the answer (a failed environment build, a lost sandbox, a hook that gave
    no verdict): counted incorrect and reported, never cached, so the next rescore judges
    the answer again."""

    correct: bool
    status: str
    details: Mapping[str, Any] = field(default_factory=dict)
    final: bool = True


CORRECT = Verdict(True, "correct")
WRONG = Verdict(False, "wrong")


class Checker(ABC):
    """The interface of every verifier; the registry sets ``spec`` and ``task``."""

    spec: str = ""  # how it was asked for: ``gsm8k:flexible``, ``command:python3 v.py``
    task: str = ""  # the task it checks, for checkers that pass it on (hooks)

    @abstractmethod
    def extract(self, completion: str) -> str | None:
        """The answer key of a completion, or None if it holds no parsable answer."""

    @abstractmethod
    def target(self, doc: dict[str, Any]) -> str:
        """The reference key of a document (hub schema)."""

    @abstractmethod
    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        """Verdicts of distinct answers to one target, in order."""

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two wrong answers are the same answer (vote grouping)."""
        return a == b

    def group_key(self, answer: str) -> str:
        """A key equal for any two answers that may be ``equivalent``: grouping compares
        answers only within a key, so it stays linear in the distinct answers."""
        return answer

    def close(self) -> None:  # noqa: B027  (most checkers hold nothing)
        """Release processes or connections the checker holds."""


class AnswerChecker(Checker):
    """A checker whose verdict is a pure comparison of two keys."""

    @abstractmethod
    def is_correct(self, answer: str, target: str) -> bool:
        """Whether an extracted answer matches the reference."""

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        return [CORRECT if self.is_correct(a, target) else WRONG for a in answers]


def judge_in_parallel(answers: Sequence[str], judge: Callable[[str], Verdict]) -> list[Verdict]:
    """``judge`` of every answer, one thread per core (checkers that run programs bound
    their own sandboxes; threads only wait on them)."""
    if len(answers) <= 1:
        return [judge(a) for a in answers]
    with ThreadPoolExecutor(min(len(answers), os.cpu_count() or 1)) as pool:
        return list(pool.map(judge, answers))
