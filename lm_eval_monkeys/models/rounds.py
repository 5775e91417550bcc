"""Sampling in rounds until verified: the one round loop every ``monkeys-*`` model shares.

A task whose run record holds a ``Sampling`` is drawn in rounds. Each round gives
``round_size`` more samples to every problem with no verified-correct sample yet (up to
k), verifies them with the task's own checker through the run store's verdict cache
(``VerdictResolver``, the path the task scores with), and closes the problems it solved.
With a budget, the round that would overrun it is spread evenly over the open problems
(the first in doc order get one more) and is the last.

Which problems a round serves depends only on samples below the round's start, whose
verdicts are fixed, so a resumed run replays its finished rounds from the store (nothing
generated again, verdicts cached) and ends where an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import ProblemAnswers, VerdictResolver, score
from lm_eval_monkeys.store import SampleStore, Sampling
from lm_eval_monkeys.verifiers import Checker, get_checker

if TYPE_CHECKING:  # ksample runs this loop, so it is not imported at run time
    from lm_eval_monkeys.models.ksample import SampleRequest

Generate = Callable[[list["SampleRequest"]], object]


def round_shares(open_count: int, step: int, remaining: int | None) -> list[int]:
    """Samples each open problem gets this round: ``step`` each, or when ``remaining``
    (the budget left; None: no budget) is short, that spread evenly, first ones first."""
    if remaining is None or remaining >= open_count * step:
        return [step] * open_count
    each, extra = divmod(max(remaining, 0), open_count)
    return [each + (i < extra) for i in range(open_count)]


def sample_in_rounds(
    plans: list[SampleRequest],
    k: int,
    sampling: Sampling,
    store: SampleStore,
    generate: Generate,
) -> dict[int, int]:
    """Draw one task's problems in rounds (``generate`` writes samples to ``store``);
    returns each problem's samples drawn (doc id -> count, its first ones)."""
    task = plans[0].task
    record = store.records.get(task)
    if record is None:
        raise MonkeysError(f"{task} has no run record in {store.run_dir}; rerun the same command")
    checker = get_checker(record.checker_spec, task=task)
    resolver = VerdictResolver(checker, store.verdicts, progress=False)
    held = dict.fromkeys((p.doc_id for p in plans), 0)
    open_problems, level, spent = list(plans), 0, 0
    try:
        while open_problems and level < k:
            step = min(k, level + sampling.round_size) - level
            remaining = None if sampling.budget is None else sampling.budget - spent
            shares = round_shares(len(open_problems), step, remaining)
            if not any(shares):
                break
            served = [(p, level + s) for p, s in zip(open_problems, shares, strict=True) if s]
            generate(_missing(store, served, level))
            solved = _solved(store, checker, resolver, served, level)
            held.update((p.doc_id, end) for p, end in served)
            spent += sum(shares)
            open_problems = [
                p for p, end in served if end == level + step and p.doc_id not in solved
            ]
            level += step
    finally:
        resolver.close()
        checker.close()
    return held


def _missing(
    store: SampleStore, served: list[tuple[SampleRequest, int]], level: int
) -> list[SampleRequest]:
    """The round's samples the store does not hold yet (a resumed run holds some)."""
    requests = []
    for plan, end in served:
        have = store.existing_indices(plan.task, plan.doc_id)
        indices = tuple(i for i in range(level, end) if i not in have)
        if indices:
            requests.append(replace(plan, indices=indices))
    return requests


def _solved(
    store: SampleStore,
    checker: Checker,
    resolver: VerdictResolver,
    served: list[tuple[SampleRequest, int]],
    level: int,
) -> set[int]:
    """The doc ids of the served problems with a correct sample in this round's indices."""
    answered = [
        (
            plan.doc_id,
            ProblemAnswers.of(
                checker, plan.doc, store.completions(plan.task, plan.doc_id, end, start=level)
            ),
        )
        for plan, end in served
    ]
    verdicts = resolver.resolve(problem for _, problem in answered)
    return {
        doc_id
        for doc_id, problem in answered
        if score(problem, verdicts, checker, group=False).summary.first_correct is not None
    }
