"""The per-problem summary: answers grouped into equivalence classes with their verdicts.

Every reported metric is a function of this summary, never of raw completions. Building
it needs each distinct answer's verdict once, so its cost grows with distinct answers, not k.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np


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
    ``first_correct`` is the index of the first correct sample (None: none is), what an
    adaptive run's coverage@k reads.
    ``rewards`` holds per-sample reward-model scores when a run has them (rm_* metrics).
    """

    n: int
    c: int
    n_invalid: int
    class_answers: tuple[str, ...]
    class_sizes: tuple[int, ...]
    class_correct: tuple[bool, ...]
    first_correct: int | None = None
    rewards: SampleRewards | None = field(default=None, compare=False, repr=False)

    def with_rewards(self, rewards: Sequence[float], classes: Sequence[int]) -> ProblemSummary:
        """This summary carrying one reward per sample (with each sample's vote class)."""
        scores = SampleRewards(np.asarray(rewards, dtype=np.float64), np.asarray(classes))
        return replace(self, rewards=scores)


@dataclass(frozen=True)
class Equivalence:
    """How wrong answers are grouped: ``key`` buckets candidates, ``same`` decides within."""

    key: Callable[[str], str]
    same: Callable[[str, str], bool]


EXACT = Equivalence(key=lambda answer: answer, same=lambda a, b: a == b)


def summarize(
    answers: Sequence[str | None], correct: Mapping[str, bool], equivalence: Equivalence
) -> tuple[ProblemSummary, list[int]]:
    """The summary of one problem's per-sample answer keys (None: no answer) given each
    distinct answer's verdict, and each sample's vote class (-1 for no answer)."""
    counts = Counter(a for a in answers if a is not None)
    class_of = _classes(counts, correct, equivalence)
    n_classes = max(class_of.values(), default=-1) + 1
    sizes = [0] * n_classes
    spelling: list[tuple[int, str]] = [(-1, "")] * n_classes
    for answer, count in counts.items():
        i = class_of[answer]
        sizes[i] += count
        # Each class is represented by its most frequent spelling.
        spelling[i] = max(spelling[i], (count, answer), key=lambda pair: pair[0])
    has_right = any(correct[a] for a in counts)
    summary = ProblemSummary(
        n=len(answers),
        c=sizes[0] if has_right else 0,
        n_invalid=len(answers) - sum(counts.values()),
        class_answers=tuple(answer for _, answer in spelling),
        class_sizes=tuple(sizes),
        class_correct=tuple(has_right and i == 0 for i in range(n_classes)),
        first_correct=next(
            (i for i, a in enumerate(answers) if a is not None and correct[a]), None
        ),
    )
    return summary, [-1 if a is None else class_of[a] for a in answers]


def _classes(
    counts: Counter[str], correct: Mapping[str, bool], equivalence: Equivalence
) -> dict[str, int]:
    """The vote class of each distinct answer: every correct answer in class 0, wrong
    answers grouped (most common first) by ``equivalence`` within their key's bucket."""
    class_of: dict[str, int] = {}
    right = [a for a in counts if correct[a]]
    class_of.update(dict.fromkeys(right, 0))
    next_class = 1 if right else 0
    buckets: dict[str, list[tuple[str, int]]] = {}  # key -> (representative, class)
    for answer, _ in counts.most_common():
        if correct[answer]:
            continue
        bucket = buckets.setdefault(equivalence.key(answer), [])
        for representative, i in bucket:
            if equivalence.same(representative, answer):
                class_of[answer] = i
                break
        else:
            class_of[answer] = next_class
            bucket.append((answer, next_class))
            next_class += 1
    return class_of
