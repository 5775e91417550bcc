"""Recompute a stored run's verdicts and metrics without a model.

Reads ``RUN_DIR/samples.sqlite`` a bounded chunk of problems at a time (each problem's
samples once per pass), judges them with the checker the run recorded (or, explicitly,
another one: ``--verifier``) through the verdict cache, and reports each metric's curve.
A run sampled until verified (its record holds a ``Sampling``) gives coverage@k from each
problem's first correct sample, with Wilson intervals, and what it did not generate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import (
    ADAPTIVE_METRICS,
    Curves,
    ProblemSummary,
    adaptive_curves,
    check_adaptive,
    check_metric,
    flatten,
    ks_within,
    metric_families,
    needs_rewards,
    needs_votes,
    problem_curves,
)
from lm_eval_monkeys.metrics.estimators import wilson_interval
from lm_eval_monkeys.scoring import ProblemAnswers, ScoredSamples, VerdictResolver, score
from lm_eval_monkeys.scoring.dispatch import VerifyBackend
from lm_eval_monkeys.scoring.stored_rewards import (
    all_or_none_rewarded,
    stored_reward_model,
    with_stored_rewards,
)
from lm_eval_monkeys.store import Sample, SampleStore, Sampling, TaskRecord, installed_record
from lm_eval_monkeys.verifiers import Checker, get_checker

logger = logging.getLogger(__name__)

RESCORE_FILE = "rescore.json"
CHUNK_SAMPLES = 20_000  # samples held in memory at once: problems are judged in chunks


@dataclass(frozen=True)
class AdaptiveSaving:
    """What a run sampled until verified drew, against k samples for every problem."""

    sampling: Sampling
    k: int
    drawn: int  # samples the run generated
    solved: int  # problems with a verified-correct sample
    completion_tokens: int  # of the samples drawn
    intervals: dict[int, tuple[float, float]]  # coverage@k's 95% Wilson interval
    # With a budget: (k, coverage@k) for k = the budget spread evenly over all problems,
    # what sampling every problem uniformly with the same budget would solve.
    uniform_share: tuple[int, float] | None = None

    def uniform(self, problems: int) -> int:
        """Samples k per problem would have taken."""
        return self.k * problems

    def tokens_not_generated(self, problems: int) -> float:
        """Completion tokens the samples not generated would have taken (at the mean
        length of those drawn)."""
        return (self.uniform(problems) - self.drawn) * self.completion_tokens / max(self.drawn, 1)

    def describe(self, problems: int) -> str:
        """How the run sampled, what it did not generate, and the metrics it cannot give
        (two lines)."""
        rounds = f"rounds of {self.sampling.round_size}"
        if self.sampling.budget is not None:
            rounds += f", budget {self.sampling.budget}"
        uniform = self.uniform(problems)
        saved = uniform - self.drawn
        tokens = self.tokens_not_generated(problems)
        refused = [m for m in metric_families() if m not in ADAPTIVE_METRICS]
        return (
            f"sampled until verified ({rounds}): {self.drawn} samples, {self.solved} of "
            f"{problems} problems solved; not generated: {saved} samples "
            f"({saved / max(uniform, 1):.1%} of k={self.k} for every problem), "
            f"~{tokens:.0f} completion tokens"
            + (
                ""
                if self.uniform_share is None
                else f"; the same budget spread uniformly ({self.uniform_share[0]} per "
                f"problem) solves {self.uniform_share[1] * problems:.1f} "
                f"(coverage@{self.uniform_share[0]})"
            )
            + "\n"
            f"{', '.join(refused)}: not given (they need all k samples of every problem)"
        )


@dataclass(frozen=True)
class TaskResult:
    """One task's metric curves averaged over its problems, and how they were judged."""

    curves: Curves
    problems: int
    checker_spec: str
    reward_model: str | None = None
    adaptive: AdaptiveSaving | None = None

    def flat(self) -> dict[str, float | int | str]:
        """As rescore.json writes it (``name@k`` keys)."""
        out: dict[str, float | int | str] = {
            **flatten(self.curves),
            "problems": self.problems,
            "verifier": self.checker_spec,
        }
        if self.reward_model is not None:
            out["reward_model"] = self.reward_model
        if self.adaptive is not None:
            saving = self.adaptive
            for k, (low, high) in saving.intervals.items():
                out[f"coverage_low@{k}"], out[f"coverage_high@{k}"] = low, high
            out["samples"] = saving.drawn
            out["samples_not_generated"] = saving.uniform(self.problems) - saving.drawn
            out["solved"] = saving.solved
            if saving.uniform_share is not None:
                k, value = saving.uniform_share
                out[f"uniform_budget_coverage@{k}"] = value
        return out


@dataclass(frozen=True)
class TaskScoring:
    """How a task of a stored run is judged and reported."""

    checker: Checker
    metrics: tuple[str, ...]
    record: TaskRecord | None


def task_scoring(store: SampleStore, task: str, checker_spec: str | None = None) -> TaskScoring:
    """The run's own checker and metrics for ``task`` (from its run record), or the
    checker asked for; a task without a record is scored as its installed config says."""
    record = store.records.get(task)
    if record is not None and checker_spec and checker_spec != record.checker_spec:
        logger.warning(
            "%s: verifying with %s instead of the run's %s", task, checker_spec, record.checker_spec
        )
    source = record or installed_record(task, checker_spec)
    spec = checker_spec or source.checker_spec
    own = tuple(m for m in source.metrics if not needs_rewards(check_metric(m)))
    return TaskScoring(get_checker(spec, task), own, record)


def problem_chunks(
    store: SampleStore,
    task: str,
    max_samples: int = CHUNK_SAMPLES,
    first: Mapping[int, int] | None = None,
) -> Iterator[list[tuple[int, dict, list[Sample]]]]:
    """The task's problems with their samples, in chunks of about ``max_samples``; with
    ``first`` (doc id -> n), only the problems it names, each with its first n samples."""
    chunk: list[tuple[int, dict, list[Sample]]] = []
    held = 0
    for doc_id, doc in store.docs(task):
        if first is not None and doc_id not in first:
            continue
        samples = store.samples(task, doc_id)[: None if first is None else first[doc_id]]
        if not samples:
            continue
        chunk.append((doc_id, doc, samples))
        held += len(samples)
        if held >= max_samples:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def scored_problems(
    store: SampleStore,
    task: str,
    checker: Checker,
    resolver: VerdictResolver,
    group: bool = True,
    first: Mapping[int, int] | None = None,
) -> Iterator[tuple[int, list[Sample], ScoredSamples]]:
    """Each stored problem of a task (or those ``first`` names, with their first n samples)
    with its samples and their verdicts; the distinct answers of a chunk of problems are
    resolved together (cache, then the backend), then grouped into vote classes if
    ``group``."""
    for chunk in problem_chunks(store, task, first=first):
        answered = []
        for doc_id, doc, samples in chunk:
            try:
                problem = ProblemAnswers.of(checker, doc, [s.completion for s in samples])
            except (KeyError, TypeError, AttributeError, ValueError, MonkeysError) as err:
                raise MonkeysError(
                    f"{task} doc {doc_id} is not a problem {checker.spec} can check ({err}); "
                    "rescore with the run's own checker (drop --verifier)"
                ) from None
            answered.append((doc_id, samples, problem))
        verdicts = resolver.resolve(problem for _, _, problem in answered)
        for doc_id, samples, problem in answered:
            yield doc_id, samples, score(problem, verdicts, checker, group)


ProblemHook = Callable[[str, int, list[Sample], ScoredSamples], None]


def rescore_store(
    store: SampleStore,
    checker_spec: str | None = None,
    ks: Sequence[int] | None = None,
    on_problem: ProblemHook | None = None,
    backend: VerifyBackend | None = None,
    reward_model: str | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, TaskResult]:
    """Metrics of every task in an open store, averaged over problems.

    ``on_problem(task, doc_id, samples, scored)`` sees every scored problem on the way, so
    callers needing per-problem data (report, compare, export) verify only once. Tasks
    whose samples all have rewards also get ``rm_best@k`` and ``rm_majority@k``, from
    ``reward_model``'s scores (default: the only reward model in the store). ``metrics``
    names the metrics to report instead of the run's own (opt-in ones included).
    """
    asked = tuple(check_metric(m) for m in metrics or ())  # before any verification
    results: dict[str, TaskResult] = {}
    reward_model = stored_reward_model(store, reward_model)
    for task in store.tasks():
        scoring = task_scoring(store, task, checker_spec)
        sampling = scoring.record.sampling if scoring.record is not None else None
        if sampling is not None:
            check_adaptive(asked, f"{store.run_dir} ({task})")
            adaptive = adaptive_result(store, task, scoring, ks, on_problem, backend)
            if adaptive is not None:
                results[task] = adaptive
            continue
        summaries = judged_summaries(store, task, scoring, on_problem, backend, reward_model)
        if not summaries:
            continue
        summaries = all_or_none_rewarded(summaries, task, reward_model)
        fewest = min(s.n for s in summaries)
        task_ks = ks_within(
            ks, fewest, f"stored for some {task} problem", "lower --ks or extend the run"
        )
        rewarded = summaries[0].rewards is not None
        own = tuple(m for m in asked if not needs_rewards(m)) or scoring.metrics
        names = own + (("rm_best", "rm_majority") if rewarded else ())
        results[task] = TaskResult(
            curves=mean_curves(summaries, task_ks, names),
            problems=len(summaries),
            checker_spec=scoring.checker.spec,
            reward_model=reward_model if rewarded else None,
        )
    return results


def adaptive_result(
    store: SampleStore,
    task: str,
    scoring: TaskScoring,
    ks: Sequence[int] | None,
    on_problem: ProblemHook | None,
    backend: VerifyBackend | None,
) -> TaskResult | None:
    """coverage@k of a task sampled until verified, for every k each unsolved problem
    reached, with its intervals and what the run did not generate."""
    assert scoring.record is not None and scoring.record.sampling is not None
    tokens = [0]

    def count(task: str, doc_id: int, samples: list[Sample], scored: ScoredSamples) -> None:
        tokens[0] += sum(s.completion_tokens for s in samples)
        if on_problem is not None:
            on_problem(task, doc_id, samples, scored)

    summaries = judged_summaries(store, task, scoring, count, backend, None)
    if not summaries:
        return None
    most = scoring.record.repeats
    # Every k is known for a solved problem; an unsolved one's stop at its last sample.
    reached = min([s.n for s in summaries if s.first_correct is None], default=most)
    limit = min(reached, most)
    task_ks = ks_within(
        ks or [x for x in scoring.record.ks if x <= limit] or None,
        limit,
        f"every unsolved {task} problem got",
        "lower --ks, or resume the run",
    )
    totals = np.sum([list(adaptive_curves(s, task_ks)["coverage"].values()) for s in summaries], 0)
    share = (
        None
        if scoring.record.sampling.budget is None
        else scoring.record.sampling.budget // len(summaries)
    )
    if share is not None and 1 <= share <= limit:
        at_share = [adaptive_curves(s, [share])["coverage"][share] for s in summaries]
        uniform_share: tuple[int, float] | None = (share, float(np.mean(at_share)))
    else:
        uniform_share = None
    saving = AdaptiveSaving(
        sampling=scoring.record.sampling,
        k=most,
        drawn=sum(s.n for s in summaries),
        solved=sum(s.first_correct is not None for s in summaries),
        completion_tokens=tokens[0],
        intervals={
            k: wilson_interval(float(t), len(summaries))
            for k, t in zip(task_ks, totals, strict=True)
        },
        uniform_share=uniform_share,
    )
    return TaskResult(
        curves={
            "coverage": {k: float(t) / len(summaries) for k, t in zip(task_ks, totals, strict=True)}
        },
        problems=len(summaries),
        checker_spec=scoring.checker.spec,
        adaptive=saving,
    )


def judged_summaries(
    store: SampleStore,
    task: str,
    scoring: TaskScoring,
    on_problem: ProblemHook | None,
    backend: VerifyBackend | None,
    reward_model: str | None,
) -> list[ProblemSummary]:
    """Each problem of ``task`` judged (through the store's verdict cache) and summarised,
    with its stored rewards from ``reward_model``; ``on_problem`` sees each on the way."""
    resolver = VerdictResolver(scoring.checker, store.verdicts, backend)
    group = needs_votes(scoring.metrics) or reward_model is not None  # rm_majority
    summaries = []
    try:
        for doc_id, samples, scored in tqdm(
            scored_problems(store, task, scoring.checker, resolver, group),
            desc=f"rescore {task}",
            unit="problem",
        ):
            if on_problem is not None:
                on_problem(task, doc_id, samples, scored)
            summaries.append(
                with_stored_rewards(store, reward_model, task, doc_id, samples, scored)
            )
    finally:
        resolver.close()
        scoring.checker.close()
    return summaries


def mean_curves(
    summaries: Sequence[ProblemSummary], ks: Sequence[int], names: Sequence[str]
) -> Curves:
    """Each named metric at each k, averaged over the problems."""
    totals: Curves = {}
    for summary in summaries:
        for name, curve in problem_curves(summary, ks, names).items():
            for k, value in curve.items():
                totals.setdefault(name, {}).setdefault(k, 0.0)
                totals[name][k] += value
    return {n: {k: v / len(summaries) for k, v in c.items()} for n, c in totals.items()}


def rescore_run(
    run_dir: Path,
    checker_spec: str | None = None,
    ks: Sequence[int] | None = None,
    on_problem: ProblemHook | None = None,
    backend: VerifyBackend | None = None,
    reward_model: str | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, TaskResult]:
    """``rescore_store`` of a run directory, also written to its rescore.json (skipped,
    with a notice, when the directory is read-only)."""
    with SampleStore(run_dir, writer=False) as store:
        results = rescore_store(store, checker_spec, ks, on_problem, backend, reward_model, metrics)
        read_only = store.database.read_only
    if read_only:
        logger.warning("%s is read-only: %s not written", run_dir, RESCORE_FILE)
        return results
    flat = {task: result.flat() for task, result in results.items()}
    try:
        (run_dir / RESCORE_FILE).write_text(json.dumps(flat, indent=2) + "\n")
    except OSError as err:
        raise MonkeysError(f"cannot write {run_dir / RESCORE_FILE}: {err.strerror}") from None
    return results
