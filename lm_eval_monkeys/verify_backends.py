"""Verification backends: where the distinct answers of many problems get their verdicts.

Both backends resolve a batch of problems, each a document with its distinct answers,
into verdicts with the same checker (``get_verifier(spec, task)``):

- ``local`` checks them in this process, one problem at a time (a checker that runs
  programs runs a problem's programs in parallel on this machine's cores);
- ``ray`` fans them out to the workers of a Ray cluster, a few answers per task, with a
  bounded number of tasks in flight; a task whose worker or node dies is rerun elsewhere
  by Ray, and its verdicts arrive once.

``VerdictResolver`` puts the run store's verdict cache (the ``verdicts`` table) in front
of either backend: a (task, verifier, target, answer) verified once, by any backend, is
never verified again. Callers prefetch a chunk of problems, then score them from the
cache through ``KnownVerdicts``, a checker that answers from the prefetched verdicts.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.ray_connect import connect
from lm_eval_monkeys.selection import Grader
from lm_eval_monkeys.store import SampleStore
from lm_eval_monkeys.verifiers import Checker, get_verifier

logger = logging.getLogger(__name__)

Verdicts = dict[tuple[str, str], bool]  # (target, answer) -> correct


@dataclass(frozen=True)
class Problem:
    """One problem's document, its reference key and distinct answers to verify."""

    doc: dict[str, Any]
    target: str
    answers: tuple[str, ...]


class VerifyBackend(Protocol):
    name: str

    def verify(self, task: str, spec: str, problems: Sequence[Problem]) -> Iterator[Verdicts]:
        """Verdicts of every answer of every problem, yielded in parts as they are ready."""

    def close(self) -> None:
        """Release what the backend holds (a cluster connection)."""


_BACKENDS: dict[str, Callable[..., VerifyBackend]] = {}


def verify_backend(
    name: str,
) -> Callable[[Callable[..., VerifyBackend]], Callable[..., VerifyBackend]]:
    """Register a backend factory under ``name`` (``--verify_backend NAME``)."""

    def register(factory: Callable[..., VerifyBackend]) -> Callable[..., VerifyBackend]:
        _BACKENDS[name] = factory
        return factory

    return register


def get_verify_backend(name: str | None, **options: Any) -> VerifyBackend:
    """Build a backend by name (``local`` when None); options go to its constructor."""
    name = name or "local"
    if name not in _BACKENDS:
        raise MonkeysError(
            f"unknown verification backend {name!r}; choose one of {', '.join(sorted(_BACKENDS))}"
        )
    return _BACKENDS[name](**options)


# -- the work itself: the same function in this process or on a Ray worker ---------------

_checkers: dict[tuple[str, str], Checker] = {}


def check_answers(
    task: str, spec: str, doc: dict[str, Any], answers: Sequence[str], parallel: int = 0
) -> list[bool]:
    """Verdicts of distinct answers to one document with this process's checker for
    (task, spec); ``parallel`` answers at a time go to ``is_correct_many`` (0: all)."""
    checker = _checkers.get((task, spec))
    if checker is None:
        checker = _checkers[(task, spec)] = get_verifier(spec, task)
    target = checker.target(doc)
    many = getattr(checker, "is_correct_many", None)
    if many is None:
        return [checker.is_correct(answer, target) for answer in answers]
    step = parallel or max(len(answers), 1)
    return [
        ok
        for start in range(0, len(answers), step)
        for ok in many(list(answers[start : start + step]), target)
    ]


@verify_backend("local")
class LocalBackend:
    """Verify in this process, problem by problem."""

    name = "local"

    def __init__(self, **_: Any) -> None:
        pass

    def verify(self, task: str, spec: str, problems: Sequence[Problem]) -> Iterator[Verdicts]:
        for problem in problems:
            verdicts = check_answers(task, spec, problem.doc, problem.answers)
            yield {(problem.target, a): ok for a, ok in zip(problem.answers, verdicts, strict=True)}

    def close(self) -> None:
        pass


@verify_backend("ray")
class RayBackend:
    """Verify on a Ray cluster's workers: ``batch`` answers of one problem per task (one
    CPU each), at most ``in_flight`` tasks submitted at once (default: twice the cluster's
    CPUs), each retried by Ray ``retries`` times when its worker or node dies."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        batch: int = 4,
        in_flight: int = 0,
        retries: int = 3,
        **_: Any,
    ) -> None:
        self.ray = connect(address, "--verify_backend ray")
        self.address = address or os.environ.get("RAY_ADDRESS", "")
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            self.close()
            raise MonkeysError(
                f"the Ray cluster at {self.address} has no CPUs for workers; "
                "start worker nodes with `ray start --address=... --num-cpus N`"
            )
        self.batch = max(1, int(batch))
        self.in_flight = int(in_flight) or 2 * cpus
        self.retries = int(retries)
        self._remote = self.ray.remote(check_answers).options(
            num_cpus=1, max_retries=self.retries, retry_exceptions=False
        )

    def verify(self, task: str, spec: str, problems: Sequence[Problem]) -> Iterator[Verdicts]:
        ray = self.ray
        todo: deque[tuple[Problem, Any, tuple[str, ...]]] = deque()
        for problem in problems:
            doc_ref = ray.put(problem.doc)  # sent to the cluster once per problem
            for start in range(0, len(problem.answers), self.batch):
                todo.append((problem, doc_ref, problem.answers[start : start + self.batch]))
        running: dict[Any, tuple[Problem, tuple[str, ...]]] = {}
        while todo or running:
            while todo and len(running) < self.in_flight:  # back-pressure
                problem, doc_ref, answers = todo.popleft()
                # parallel=1: a task holds one CPU, so it runs one program at a time
                ref = self._remote.remote(task, spec, doc_ref, answers, 1)
                running[ref] = (problem, answers)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                problem, answers = running.pop(ref)
                verdicts = self._result(ref, task, problem, answers, len(todo) + len(running))
                yield {(problem.target, a): ok for a, ok in zip(answers, verdicts, strict=True)}

    def _result(
        self, ref: Any, task: str, problem: Problem, answers: tuple[str, ...], left: int
    ) -> list[bool]:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as err:  # the checker itself failed: not retried
            cause = err.cause if isinstance(err.cause, MonkeysError) else err
            raise MonkeysError(f"a Ray worker could not verify {task}: {cause}") from None
        except exceptions.RayError as err:  # workers or nodes died more often than retried
            raise MonkeysError(
                f"{len(answers)} answers of a {task} problem (target {problem.target[:16]}) "
                f"were lost {self.retries + 1} times with their Ray workers "
                f"({type(err).__name__}); {left} more tasks were pending. Verdicts received "
                "so far are kept in the store: fix the cluster and rerun to verify the rest"
            ) from None

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()


# -- the driver side: the store's verdict cache in front of a backend -------------------


class KnownVerdicts:
    """A checker that answers from prefetched verdicts, falling back to its inner checker."""

    def __init__(self, inner: Checker, task: str, spec: str) -> None:
        self.inner, self.task, self.spec = inner, task, spec
        self.known: Verdicts = {}

    def extract(self, completion: str) -> str | None:
        return self.inner.extract(completion)

    def target(self, doc: dict[str, Any]) -> str:
        return self.inner.target(doc)

    def equivalent(self, a: str, b: str) -> bool:
        return self.inner.equivalent(a, b)

    def is_correct(self, answer: str, target: str) -> bool:
        return self.is_correct_many([answer], target)[0]

    def is_correct_many(self, answers: list[str], target: str) -> list[bool]:
        todo = [a for a in answers if (target, a) not in self.known]
        if todo:
            many = getattr(self.inner, "is_correct_many", None)
            found = many(todo, target) if many else [self.inner.is_correct(a, target) for a in todo]
            self.known.update(((target, a), ok) for a, ok in zip(todo, found, strict=True))
        return [self.known[(target, a)] for a in answers]


def known_grader(task: str, spec: str) -> Grader:
    """A grader whose verdicts ``VerdictResolver.prefetch`` can fill ahead of scoring."""
    return Grader(KnownVerdicts(get_verifier(spec, task), task, spec))


class VerdictResolver:
    """Resolves problems' distinct answers: from the store's cache, else with the backend
    (writing what it finds back to the store as it arrives)."""

    _FLUSH_S = 0.5

    def __init__(self, backend: VerifyBackend | None = None, store: SampleStore | None = None):
        self.backend = backend or LocalBackend()
        self.store = store
        self._bar: tqdm | None = None

    def prefetch(
        self, grader: Grader, problems: Iterable[tuple[dict[str, Any], Iterable[str | None]]]
    ) -> None:
        """Fill ``grader`` (built by ``known_grader``) with verdicts of each (doc, answers)."""
        checker = grader.checker
        if not isinstance(checker, KnownVerdicts):
            raise TypeError("prefetch needs a grader from known_grader()")
        wanted: dict[str, tuple[dict[str, Any], set[str]]] = {}
        for doc, answers in problems:
            target = checker.target(doc)
            entry = wanted.setdefault(target, (doc, set()))
            entry[1].update(a for a in answers if a is not None)
        pairs = [(t, a) for t, (_, answers) in wanted.items() for a in answers]
        known = self._cached(checker.task, checker.spec, pairs)
        todo = [
            Problem(doc, target, tuple(sorted(a for a in answers if (target, a) not in known)))
            for target, (doc, answers) in wanted.items()
        ]
        todo = [p for p in todo if p.answers]
        if todo:
            known.update(self._verify(checker.task, checker.spec, todo))
        checker.known = known

    def _cached(self, task: str, spec: str, pairs: list[tuple[str, str]]) -> Verdicts:
        return self.store.known_verdicts(task, spec, pairs) if self.store is not None else {}

    def _verify(self, task: str, spec: str, problems: list[Problem]) -> Verdicts:
        if self._bar is None:
            self._bar = tqdm(total=0, desc=f"verify ({self.backend.name})", unit="answer")
        self._bar.total += sum(len(p.answers) for p in problems)
        self._bar.refresh()
        found: Verdicts = {}
        unsaved: Verdicts = {}
        saved = time.monotonic()
        for part in self.backend.verify(task, spec, problems):
            found.update(part)
            unsaved.update(part)
            self._bar.update(len(part))
            if time.monotonic() - saved > self._FLUSH_S:  # a crash loses at most this much
                self._save(task, spec, unsaved)
                unsaved, saved = {}, time.monotonic()
        self._save(task, spec, unsaved)
        return found

    def _save(self, task: str, spec: str, verdicts: Verdicts) -> None:
        if self.store is None or not verdicts:
            return
        try:
            self.store.add_verdicts(task, spec, verdicts)
        except MonkeysError as err:  # a read-only store still rescoring: just no cache
            logger.warning("verdicts not cached in the store: %s", err)
            self.store = None

    def close(self) -> None:
        """Close the progress bar; the backend belongs to whoever built it."""
        if self._bar is not None:
            self._bar.close()
