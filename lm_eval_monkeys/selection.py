"""The per-problem summary: answers grouped into equivalence classes with their verdicts.

Every reported metric is a function of this summary, never of raw completions. Building
it checks each distinct answer once, so the cost grows with distinct answers, not k.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lm_eval_monkeys.verifiers import Checker


@dataclass(frozen=True, eq=False)
class SampleRewards:
    """Each sample's reward-model score and vote class (-1: no parsable answer), in order."""

    rewards: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class ProblemSummary:
    """n samples of one problem: c correct, valid answers grouped into vote classes.

    All correct answers form one class (they all equal the reference); wrong answers are
    grouped by the checker's equivalence. ``n_invalid`` samples had no parsable answer.
    ``rewards`` holds per-sample reward-model scores when a run has them (rm_* metrics).
    """

    n: int
    c: int
    n_invalid: int
    class_answers: tuple[str, ...]
    class_sizes: tuple[int, ...]
    class_correct: tuple[bool, ...]
    rewards: SampleRewards | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ScoredSamples:
    """A summary together with each sample's answer key, verdict and vote class (index into
    the summary's classes, -1 for no answer), in sample order."""

    summary: ProblemSummary
    answers: list[str | None]
    correct: list[bool]
    classes: list[int]

    def with_rewards(self, rewards: Sequence[float]) -> ProblemSummary:
        """The summary carrying one reward per sample (in sample order)."""
        scores = SampleRewards(np.asarray(rewards, dtype=np.float64), np.asarray(self.classes))
        return replace(self.summary, rewards=scores)


class Grader:
    """A checker plus a verdict cache: each distinct (reference, answer) is checked once."""

    _MAX_CACHED = 1 << 20  # verdicts kept before the cache starts over (bounds memory)

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self._verdicts: dict[tuple[str, str], bool] = {}

    def answer(self, completion: object) -> str | None:
        """The answer key of a completion; anything not a non-empty Unicode string has none."""
        if not isinstance(completion, str) or not completion:
            return None
        try:
            completion.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from undecodable bytes
            return None
        return self.checker.extract(completion)

    def verdicts(self, answers: list[str], target: str) -> list[bool]:
        """Verdicts of distinct answers to one problem; checkers that run programs get them
        all at once (``is_correct_many``) so they can run them in parallel."""
        todo = [a for a in answers if (target, a) not in self._verdicts]
        many = getattr(self.checker, "is_correct_many", None)
        if todo and many is not None:
            for answer, ok in zip(todo, many(todo, target), strict=True):
                self._remember(target, answer, ok)
        return [self.verdict(a, target) for a in answers]

    def _remember(self, target: str, answer: str, ok: bool) -> None:
        if len(self._verdicts) >= self._MAX_CACHED:
            self._verdicts.clear()
        self._verdicts[(target, answer)] = ok

    def verdict(self, answer: str | None, target: str) -> bool:
        if answer is None:
            return False
        key = (target, answer)
        if key not in self._verdicts:
            self._remember(target, answer, self.checker.is_correct(answer, target))
        return self._verdicts[key]


def score_samples(completions: Sequence[object], target: str, grader: Grader) -> ScoredSamples:
    """Extract, verify (once per distinct answer) and group the samples of one problem."""
    # Repeated completions are common at large k: extract each distinct text once.
    keys = {text: grader.answer(text) for text in set(completions)}
    answers = [keys[completion] for completion in completions]
    counts = Counter(a for a in answers if a is not None)
    verdict = dict(zip(counts, grader.verdicts(list(counts), target), strict=True))
    correct = [a is not None and verdict[a] for a in answers]
    summary, class_of = _group(counts, verdict, len(answers), answers.count(None), grader.checker)
    classes = [-1 if a is None else class_of[a] for a in answers]
    return ScoredSamples(summary, answers, correct, classes)


def _group(
    counts: Counter[str], verdict: dict[str, bool], n: int, n_invalid: int, checker: Checker
) -> tuple[ProblemSummary, dict[str, int]]:
    """The summary, and the vote class of each distinct answer."""
    answers: list[str] = []
    sizes: list[int] = []
    right = [a for a in counts if verdict[a]]
    class_of = dict.fromkeys(right, 0)
    if right:
        answers.append(max(right, key=counts.__getitem__))
        sizes.append(sum(counts[a] for a in right))
    first_wrong = len(answers)
    # Most common first, so each class is represented by its most frequent spelling.
    for answer, size in counts.most_common():
        if verdict[answer]:
            continue
        for i in range(first_wrong, len(answers)):
            if checker.equivalent(answers[i], answer):
                sizes[i] += size
                class_of[answer] = i
                break
        else:
            class_of[answer] = len(answers)
            answers.append(answer)
            sizes.append(size)
    summary = ProblemSummary(
        n=n,
        c=sum(sizes[:first_wrong]),
        n_invalid=n_invalid,
        class_answers=tuple(answers),
        class_sizes=tuple(sizes),
        class_correct=tuple(i < first_wrong for i in range(len(answers))),
    )
    return summary, class_of
