"""From completions to a scored problem: answer keys, verdicts, vote classes.

Scoring is split so that verification can be batched: ``ProblemAnswers`` reduces one
problem's samples to answer keys (each distinct completion extracted once), a
``VerdictResolver`` judges the distinct answers of many problems together, and
``score`` builds the problem's summary from those verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lm_eval_monkeys.metrics.summary import EXACT, Equivalence, ProblemSummary, summarize
from lm_eval_monkeys.verifiers.base import Checker, Verdict

Pair = tuple[str, str]  # (target key, answer key)


def answer_key(checker: Checker, completion: object) -> str | None:
    """The answer key of a completion; anything not a non-empty Unicode string has none."""
    if not isinstance(completion, str) or not completion:
        return None
    try:
        completion.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from undecodable bytes
        return None
    return checker.extract(completion)


@dataclass(frozen=True)
class ProblemAnswers:
    """One problem's document, target key, and each sample's answer key (None: none)."""

    doc: dict[str, Any]
    target: str
    answers: list[str | None]

    @classmethod
    def of(
        cls, checker: Checker, doc: dict[str, Any], completions: Sequence[object]
    ) -> ProblemAnswers:
        # Repeated completions are common at large k: extract each distinct text once.
        keys: dict[object, str | None] = {}
        for text in completions:
            if text not in keys:
                keys[text] = answer_key(checker, text)
        return cls(doc, checker.target(doc), [keys[text] for text in completions])

    def distinct(self) -> set[str]:
        return {a for a in self.answers if a is not None}


@dataclass(frozen=True)
class ScoredSamples:
    """A problem's summary with each sample's answer key, verdict (None: no answer) and
    vote class (index into the summary's classes, -1 for no answer), in sample order."""

    summary: ProblemSummary
    answers: list[str | None]
    verdicts: list[Verdict | None]
    classes: list[int]

    @property
    def correct(self) -> list[bool]:
        return [v is not None and v.correct for v in self.verdicts]

    def with_rewards(self, rewards: Sequence[float]) -> ProblemSummary:
        return self.summary.with_rewards(rewards, self.classes)


def score(
    problem: ProblemAnswers,
    verdicts: Mapping[Pair, Verdict],
    checker: Checker,
    group: bool = True,
) -> ScoredSamples:
    """The scored samples of a problem whose distinct answers all have verdicts; wrong
    answers are grouped by the checker's equivalence only if ``group`` (else each distinct
    answer is its own vote class), since only vote-reading metrics need it."""
    verdict_of = {a: verdicts[(problem.target, a)] for a in problem.distinct()}
    equivalence = Equivalence(checker.group_key, checker.equivalent) if group else EXACT
    summary, classes = summarize(
        problem.answers, {a: v.correct for a, v in verdict_of.items()}, equivalence
    )
    per_sample = [None if a is None else verdict_of[a] for a in problem.answers]
    return ScoredSamples(summary, problem.answers, per_sample, classes)
