"""The one path from distinct answers to verdicts: the cache first, then a backend.

``VerdictResolver`` is used by the run itself (the task scoring each problem), rescore,
export, report, compare and ``verify``: an answer judged once, by any of them and any
backend, is never judged again. The cache is the run store's ``verdicts`` table, or for
``verify`` without a run a cache file in ``$MONKEYS_CACHE_DIR``. New verdicts are
written back as they arrive, so an interrupted verification keeps what it finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring.dispatch import LocalBackend, Problem, VerifyBackend
from lm_eval_monkeys.scoring.problem_scores import Pair, ProblemAnswers, ScoredSamples, score
from lm_eval_monkeys.verifiers import Checker, Verdict

logger = logging.getLogger(__name__)


class VerdictCache(Protocol):
    def known(self, task: str, checker_spec: str, pairs: Sequence[Pair]) -> dict[Pair, Verdict]: ...

    def add(self, task: str, checker_spec: str, verdicts: Mapping[Pair, Verdict]) -> None: ...


class VerdictResolver:
    """Verdicts of the distinct answers of problems judged with ``checker``."""

    _FLUSH_S = 0.5  # a crash loses at most this much verification

    def __init__(
        self,
        checker: Checker,
        cache: VerdictCache | None = None,
        backend: VerifyBackend | None = None,
        progress: bool = True,
    ) -> None:
        self.checker = checker
        self.cache = cache
        self.backend = backend or LocalBackend()
        self.progress = progress
        self.judged = 0  # answers this resolver sent to its backend
        self._bar: tqdm | None = None

    def resolve(self, problems: Iterable[ProblemAnswers]) -> dict[Pair, Verdict]:
        """Verdicts of every distinct (target, answer) of ``problems``."""
        wanted: dict[str, tuple[ProblemAnswers, set[str]]] = {}
        for problem in problems:
            entry = wanted.setdefault(problem.target, (problem, set()))
            entry[1].update(problem.distinct())
        pairs = [(t, a) for t, (_, answers) in wanted.items() for a in answers]
        found = self._cached(pairs)
        todo = [
            Problem(
                problem.doc, target, tuple(sorted(a for a in answers if (target, a) not in found))
            )
            for target, (problem, answers) in wanted.items()
        ]
        todo = [p for p in todo if p.answers]
        if todo:
            found.update(self._judge(todo))
        return found

    def _cached(self, pairs: Sequence[Pair]) -> dict[Pair, Verdict]:
        if self.cache is None or not pairs:
            return {}
        return self.cache.known(self.checker.task, self.checker.spec, pairs)

    def _judge(self, problems: list[Problem]) -> dict[Pair, Verdict]:
        count = sum(len(p.answers) for p in problems)
        self.judged += count
        if self.progress and self._bar is None:
            self._bar = tqdm(total=0, desc=f"verify ({self.backend.name})", unit="answer")
        if self._bar is not None:
            self._bar.total += count
            self._bar.refresh()
        found: dict[Pair, Verdict] = {}
        unsaved: dict[Pair, Verdict] = {}
        saved = time.monotonic()
        for part in self.backend.verify(self.checker, problems):
            found.update(part)
            unsaved.update(part)
            if self._bar is not None:
                self._bar.update(len(part))
            if time.monotonic() - saved > self._FLUSH_S:
                self._save(unsaved)
                unsaved, saved = {}, time.monotonic()
        self._save(unsaved)
        return found

    def _save(self, verdicts: dict[Pair, Verdict]) -> None:
        if self.cache is None or not verdicts:
            return
        try:
            self.cache.add(self.checker.task, self.checker.spec, verdicts)
        except MonkeysError as err:  # e.g. a read-only store: keep verifying, cache nothing
            logger.warning("verdicts not cached: %s", err)
            self.cache = None

    def close(self) -> None:
        """Close the progress bar; the checker and backend belong to whoever built them."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def score_completions(
    checker: Checker,
    doc: dict,
    completions: Sequence[object],
    cache: VerdictCache | None = None,
    backend: VerifyBackend | None = None,
    group: bool = True,
) -> ScoredSamples:
    """One problem's completions scored: answers extracted, judged (cache first), grouped
    (when ``group``)."""
    problem = ProblemAnswers.of(checker, doc, completions)
    resolver = VerdictResolver(checker, cache, backend, progress=False)
    return score(problem, resolver.resolve([problem]), checker, group)
