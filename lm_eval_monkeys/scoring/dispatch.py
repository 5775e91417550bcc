"""Verification backends: where the distinct answers of many problems get their verdicts.

Both backends resolve a batch of problems, each a document with its distinct answers,
into verdicts with the same checker:

- ``local`` checks them in this process with the caller's checker, one problem at a time
  (a checker that runs programs runs a problem's programs in parallel on this machine);
- ``ray`` fans them out to the workers of a Ray cluster, which build the same checker from
  its spec, a few answers per task, with a bounded number of tasks in flight; a task whose
  worker or node dies is rerun elsewhere by Ray, and its verdicts arrive once.

``lm_eval_monkeys.scoring.resolver`` puts the verdict cache in front of either.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.ray_connect import connect
from lm_eval_monkeys.verifiers import Checker, Verdict, get_checker

Verdicts = dict[tuple[str, str], Verdict]  # (target, answer) -> verdict


@dataclass(frozen=True)
class Problem:
    """One problem's document, its reference key and distinct answers to verify."""

    doc: dict[str, Any]
    target: str
    answers: tuple[str, ...]


class VerifyBackend(Protocol):
    name: str

    def verify(self, checker: Checker, problems: Sequence[Problem]) -> Iterator[Verdicts]:
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

_worker_checkers: dict[tuple[str, str], Checker] = {}  # a Ray worker's, by (task, spec)


def check_answers(
    task: str, spec: str, doc: dict[str, Any], answers: Sequence[str]
) -> list[Verdict]:
    """On a Ray worker: verdicts of distinct answers to one document, one at a time (a
    task holds one CPU), with the worker's checker for (task, spec)."""
    checker = _worker_checkers.get((task, spec))
    if checker is None:
        checker = _worker_checkers[(task, spec)] = get_checker(spec, task)
    target = checker.target(doc)
    return [verdict for answer in answers for verdict in checker.judge_many([answer], target)]


@verify_backend("local")
class LocalBackend:
    """Verify in this process, problem by problem."""

    name = "local"

    def __init__(self, **_: Any) -> None:
        pass

    def verify(self, checker: Checker, problems: Sequence[Problem]) -> Iterator[Verdicts]:
        for problem in problems:
            verdicts = checker.judge_many(problem.answers, problem.target)
            yield dict(zip(((problem.target, a) for a in problem.answers), verdicts, strict=True))

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

    def verify(self, checker: Checker, problems: Sequence[Problem]) -> Iterator[Verdicts]:
        ray, task, spec = self.ray, checker.task, checker.spec
        todo: deque[tuple[Problem, Any, tuple[str, ...]]] = deque()
        for problem in problems:
            doc_ref = ray.put(problem.doc)  # sent to the cluster once per problem
            for start in range(0, len(problem.answers), self.batch):
                todo.append((problem, doc_ref, problem.answers[start : start + self.batch]))
        running: dict[Any, tuple[Problem, tuple[str, ...]]] = {}
        while todo or running:
            while todo and len(running) < self.in_flight:  # back-pressure
                problem, doc_ref, answers = todo.popleft()
                ref = self._remote.remote(task, spec, doc_ref, answers)
                running[ref] = (problem, answers)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                problem, answers = running.pop(ref)
                verdicts = self._result(ref, task, problem, answers, len(todo) + len(running))
                yield dict(zip(((problem.target, a) for a in answers), verdicts, strict=True))

    def _result(
        self, ref: Any, task: str, problem: Problem, answers: tuple[str, ...], left: int
    ) -> list[Verdict]:
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
