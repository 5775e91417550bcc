"""``lm-eval-monkeys compare``: runs compared problem by problem on the problems they share.

For each task in every run and each metric@k, each pair of runs gets the paired
difference of the later minus the earlier (``paired.paired_differences``); with more
than two runs the pairs' p-values are Holm-adjusted per metric@k, and a leaderboard
says which runs are not significantly worse than the best. Runs are refused, with the
reason, when their problems, prompts or checkers differ, unless told otherwise.

Runs holding different numbers of samples of a problem (a baseline stored at k = 16, a
candidate at k = 32) are compared like with like: each problem on the first n samples
every run holds, so two runs of one model differ by zero in expectation and the sign-flip
test keeps its level (the estimates from 16 and from 32 samples are both unbiased, but
their differences are skewed, which the test does not allow for). A run that extends
another (the same seed, more samples) then differs from it by exactly zero. A run sampled
until verified counts as holding k samples of every problem (its coverage@k, from each
problem's first correct sample, is known up to k) and is compared on coverage only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lm_eval_monkeys.comparison.paired import (
    BOOTSTRAP_ITERS,
    PairedDifference,
    holm,
    paired_differences,
)
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import (
    ADAPTIVE_METRICS,
    adaptive_curves,
    check_adaptive,
    check_metric,
    default_ks,
    ks_within,
    problem_curves,
)
from lm_eval_monkeys.scoring import VerdictResolver
from lm_eval_monkeys.scoring.rescore import scored_problems, task_scoring
from lm_eval_monkeys.store import SampleStore, changed_keys
from lm_eval_monkeys.task_configs import DEFAULT_METRICS


@dataclass(frozen=True)
class TaskFacts:
    """What a run holds of one task, read from its store without verifying anything."""

    counts: dict[int, int]  # doc id -> samples stored
    prompts: dict[int, str]  # doc id -> hash of the prompt and sampling settings
    checker_spec: str  # the checker spec its verdicts come from
    prompt: dict[str, Any] | None  # the run record's prompt identity (None: no record)
    adaptive: bool = False  # sampled until verified: counts are k for every problem


@dataclass
class TaskComparison:
    """Every pair of runs on one task: per-problem values and paired differences."""

    task: str
    doc_ids: list[int]  # the problems compared, held by every run
    columns: list[str]  # metric@k, one per column of the value arrays
    values: dict[str, np.ndarray]  # run label -> (problems, columns)
    pairs: dict[tuple[str, str], list[PairedDifference]]  # (A, B) -> B - A per column
    adjusted: dict[tuple[str, str], list[float]]  # Holm-adjusted p-values, per column


@dataclass(frozen=True)
class Gap:
    """A task, or problems of it, that the baseline holds and another run lacks."""

    task: str
    detail: str


@dataclass
class Comparison:
    runs: list[str]  # labels, in the order given (the first is the baseline)
    tasks: dict[str, TaskComparison]
    alpha: float  # significance level; intervals are at 1 - alpha
    correction: str  # the multiple-comparison correction applied to p-values
    notes: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


def compare_runs(
    run_dirs: Sequence[Path],
    labels: Sequence[str],
    *,
    metrics: Sequence[str] | None = None,
    also_metrics: Sequence[str] = (),
    ks: Sequence[int] | None = None,
    also_ks: Sequence[int] = (),
    checker_spec: str | None = None,
    intersection: bool = False,
    different_prompts: bool = False,
    alpha: float = 0.05,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = 0,
) -> Comparison:
    """Compare runs on every task they all hold; see the module docstring. ``ks`` default
    to powers of two up to the samples every run holds; ``also_ks`` are added to them.
    ``metrics`` default to coverage and majority (coverage alone when a run was sampled
    until verified); ``also_metrics`` are added to them."""
    if len(run_dirs) < 2:
        raise MonkeysError("compare needs at least two runs: RUN_A RUN_B [RUN_C ...]")
    labels = _distinct(labels)
    if not 0 < alpha < 1:
        raise MonkeysError(f"--alpha must be in (0, 1), got {alpha}; e.g. 0.05")
    if metrics is not None and not metrics:
        raise MonkeysError("--metrics names no metric; e.g. --metrics coverage,majority")
    for name in [*(metrics or ()), *also_metrics]:
        check_metric(name)
    facts = [read_facts(Path(d), checker_spec) for d in run_dirs]
    adaptive = [label for label, f in zip(labels, facts, strict=True) if _adaptive(f)]
    base = metrics if metrics is not None else ADAPTIVE_METRICS if adaptive else DEFAULT_METRICS
    metrics = [*base, *(m for m in also_metrics if m not in base)]
    if adaptive:
        check_adaptive(metrics, f"run {adaptive[0]}")
    plans, notes = plan_comparison(facts, labels, ks, also_ks, intersection, different_prompts)
    if adaptive and len(adaptive) < len(labels):
        notes.append(
            f"{', '.join(adaptive)} sampled until verified and the others did not: their "
            "per-problem coverage@k differ in kind (a first-success indicator, an average over "
            "k-subsets), so their differences are skewed and the p-values can be too small"
        )
    values = {
        label: _score(Path(d), plans, metrics, checker_spec, label)
        for d, label in zip(run_dirs, labels, strict=True)
    }
    comparison = pair_runs(
        labels, plans, metrics, values, alpha=alpha, iters=iters, seed=seed, notes=notes
    )
    comparison.gaps = baseline_gaps(facts, labels)
    return comparison


@dataclass(frozen=True)
class TaskPlan:
    """What one task is compared on."""

    doc_ids: list[int]  # the problems, held by every run
    ks: list[int]
    samples: dict[int, int]  # doc id -> n: its first n samples (every run holds them)


Plans = dict[str, TaskPlan]


def plan_comparison(
    facts: Sequence[dict[str, TaskFacts]],
    labels: Sequence[str],
    ks: Sequence[int] | None = None,
    also_ks: Sequence[int] = (),
    intersection: bool = False,
    different_prompts: bool = False,
) -> tuple[Plans, list[str]]:
    """The problems and ks each shared task is compared on, and notes on what was left out;
    an error naming the reason when the runs cannot be compared."""
    shared_tasks = [t for t in facts[0] if all(t in f for f in facts[1:])]
    notes = [
        f"task {task} is not in every run; left out"
        for task in sorted({t for f in facts for t in f} - set(shared_tasks))
    ]
    if not shared_tasks:
        held = "; ".join(
            f"{label}: {', '.join(f) or 'none'}" for label, f in zip(labels, facts, strict=True)
        )
        raise MonkeysError(f"the runs share no task ({held}); compare runs of the same tasks")
    plans = {
        task: _plan(
            task, [f[task] for f in facts], labels, ks, also_ks, intersection, different_prompts
        )
        for task in shared_tasks
    }
    for task, plan in plans.items():
        if {len(f[task].counts) for f in facts} != {len(plan.doc_ids)}:
            notes.append(
                f"task {task}: compared on the {len(plan.doc_ids)} problems every run holds"
            )
        counts = [[f[task].counts[d] for d in plan.doc_ids] for f in facts]
        if any(c != list(plan.samples.values()) for c in counts):
            sizes = ", ".join(
                f"{label}: {_span(c)}" for label, c in zip(labels, counts, strict=True)
            )
            notes.append(
                f"task {task}: the runs hold different numbers of samples per problem "
                f"({sizes}); each problem is compared on the first "
                f"{_span(list(plan.samples.values()))} samples every run holds (like with like)"
            )
    return plans, notes


def _span(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def baseline_gaps(facts: Sequence[dict[str, TaskFacts]], labels: Sequence[str]) -> list[Gap]:
    """The tasks and problems the baseline (the first run) holds that another run lacks."""
    gaps = []
    for task, base in facts[0].items():
        held = {d for d, count in base.counts.items() if count > 0}
        for label, other in zip(labels[1:], facts[1:], strict=True):
            if task not in other:
                gaps.append(Gap(task, f"{label} lacks task {task}, which {labels[0]} holds"))
                continue
            lacking = held - {d for d, count in other[task].counts.items() if count > 0}
            if lacking:
                detail = (
                    f"{label} lacks {len(lacking)} of the {len(held)} {task} problems "
                    f"{labels[0]} holds (first: doc {min(lacking)})"
                )
                gaps.append(Gap(task, detail))
    return gaps


def pair_runs(
    labels: Sequence[str],
    plans: Plans,
    metrics: Sequence[str],
    values: dict[str, dict[str, np.ndarray]],
    *,
    alpha: float = 0.05,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = 0,
    notes: Sequence[str] = (),
) -> Comparison:
    """Every pair of runs on every planned task, from per-problem values: run label ->
    task -> ``(problems, metrics x ks)`` array, rows in the plan's doc order."""
    pair_list = list(combinations(labels, 2))
    tasks = {}
    for task, plan in plans.items():
        columns = [f"{name}@{k}" for name in metrics for k in plan.ks]
        by_run = {label: values[label][task] for label in labels}
        pairs = {
            (a, b): paired_differences(
                by_run[a], by_run[b], level=1 - alpha, iters=iters, seed=seed
            )
            for a, b in pair_list
        }
        tasks[task] = TaskComparison(task, plan.doc_ids, columns, by_run, pairs, _holm(pairs))
    correction = (
        "none (one pair)"
        if len(pair_list) == 1
        else f"Holm, over the {len(pair_list)} pairs of each task and metric@k"
    )
    return Comparison(list(labels), tasks, alpha, correction, list(notes))


def _distinct(labels: Sequence[str]) -> list[str]:
    """Labels made unique (a run given twice is compared with itself: a sanity check)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def read_facts(run_dir: Path, checker_spec: str | None) -> dict[str, TaskFacts]:
    """Each task's problems, sample counts, prompt hashes and checker (from the run
    record, or ``verifier`` when given), read from the store."""
    found = {}
    with SampleStore(run_dir, writer=False) as store:
        for task in store.tasks():
            prompts = {d: str(h) for d, h in store.database.read(_PROMPTS, (task,))}
            counts = dict.fromkeys(prompts, 0)
            counts.update((d, int(count)) for d, count in store.database.read(_COUNTS, (task,)))
            scoring = task_scoring(store, task, checker_spec)
            scoring.checker.close()
            record = scoring.record
            adaptive = record is not None and record.sampling is not None
            if adaptive and record is not None:
                counts = {d: record.repeats for d, count in counts.items() if count}
            found[task] = TaskFacts(
                counts,
                prompts,
                scoring.checker.spec,
                None if record is None else record.prompt,
                adaptive,
            )
    return found


def _adaptive(facts: dict[str, TaskFacts]) -> bool:
    return any(f.adaptive for f in facts.values())


_COUNTS = "SELECT doc_id, COUNT(*) FROM samples WHERE task = ? GROUP BY doc_id"
_PROMPTS = "SELECT doc_id, prompt_hash FROM docs WHERE task = ?"


def _plan(
    task: str,
    facts: list[TaskFacts],
    labels: Sequence[str],
    ks: Sequence[int] | None,
    also_ks: Sequence[int],
    intersection: bool,
    different_prompts: bool,
) -> TaskPlan:
    """The problems and k values a task is compared on, or the reason it cannot be."""
    held = [{d for d, count in f.counts.items() if count > 0} for f in facts]
    shared = sorted(set.intersection(*held))
    if not shared:
        raise MonkeysError(f"the runs share no problem of {task}; nothing to compare")
    if not intersection and any(h != set(shared) for h in held):
        sizes = ", ".join(f"{label}: {len(h)}" for label, h in zip(labels, held, strict=True))
        raise MonkeysError(
            f"the runs hold different problems of {task} ({sizes}; {len(shared)} shared); "
            "pass --intersection to compare on the shared problems"
        )
    checker_specs = {f.checker_spec for f in facts}
    if len(checker_specs) > 1:
        raise MonkeysError(
            f"the runs' {task} verdicts come from different checkers "
            f"({', '.join(sorted(checker_specs))}); "
            "pass --verifier SPEC to verify every run with the same one"
        )
    recorded = [f.prompt for f in facts if f.prompt is not None]
    fields = changed_keys(*recorded) if recorded else []
    if fields and not different_prompts:
        raise MonkeysError(
            f"the runs' {task} prompts differ (run record: {', '.join(fields)}); pass "
            "--different_prompts to compare them anyway"
        )
    changed = [d for d in shared if len({f.prompts.get(d) for f in facts}) > 1]
    if changed and not different_prompts:
        raise MonkeysError(
            f"{len(changed)} of the {len(shared)} shared {task} problems were sampled with "
            f"different prompts or sampling settings (first: doc {changed[0]}); pass "
            "--different_prompts to compare them anyway"
        )
    samples = {d: min(f.counts[d] for f in facts) for d in shared}
    fewest = min(samples.values())
    task_ks = ks_within(
        [*(ks or default_ks(fewest)), *also_ks],
        fewest,
        f"some run holds for a shared {task} problem",
        "lower --ks (or the condition's k)",
    )
    return TaskPlan(shared, task_ks, samples)


def _score(
    run_dir: Path,
    plans: Plans,
    metrics: Sequence[str],
    checker_spec: str | None,
    label: str,
) -> dict[str, np.ndarray]:
    """Per-problem metric values of one run, a ``(problems, metrics x ks)`` array per task."""
    out = {}
    with SampleStore(run_dir, writer=False) as store:
        for task, plan in plans.items():
            row_of = {doc_id: i for i, doc_id in enumerate(plan.doc_ids)}
            table = np.zeros((len(plan.doc_ids), len(metrics) * len(plan.ks)))
            scoring = task_scoring(store, task, checker_spec)
            adaptive = scoring.record is not None and scoring.record.sampling is not None
            resolver = VerdictResolver(scoring.checker, store.verdicts)
            try:
                problems = scored_problems(
                    store, task, scoring.checker, resolver, first=plan.samples
                )
                for doc_id, _, scored in tqdm(
                    problems, desc=f"compare {label} {task}", unit="problem"
                ):
                    if adaptive:
                        curves = adaptive_curves(scored.summary, plan.ks)
                    else:
                        curves = problem_curves(scored.summary, plan.ks, metrics)
                    table[row_of[doc_id]] = [curves[m][k] for m in metrics for k in plan.ks]
            finally:
                resolver.close()
                scoring.checker.close()
            if np.isnan(table).any():
                raise MonkeysError(
                    f"{label} ({task}) stopped some unsolved problem before k={max(plan.ks)} "
                    "(its budget ran out); lower --ks"
                )
            out[task] = table
    return out


def _holm(
    pairs: dict[tuple[str, str], list[PairedDifference]],
) -> dict[tuple[str, str], list[float]]:
    """Each column's p-values adjusted over the pairs (unchanged for a single pair)."""
    keys = list(pairs)
    columns = len(next(iter(pairs.values())))
    adjusted: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for j in range(columns):
        for key, p in zip(keys, holm([pairs[key][j].p_value for key in keys]), strict=True):
            adjusted[key].append(p)
    return adjusted


@dataclass(frozen=True)
class Standing:
    """A run's place on one task and metric@k."""

    run: str
    mean: float
    rank: int  # 1 = highest mean
    top: bool  # not significantly worse than the best run (Holm-adjusted)


def leaderboard(comparison: TaskComparison, column: str, alpha: float) -> list[Standing]:
    """Runs by mean, each marked whether it is not significantly worse than the best."""
    j = comparison.columns.index(column)
    means = {run: float(v[:, j].mean()) for run, v in comparison.values.items()}
    order = sorted(means, key=lambda run: -means[run])
    best = order[0]

    def worse_than_best(run: str) -> bool:
        if run == best:
            return False
        key, sign = ((best, run), 1.0) if (best, run) in comparison.pairs else ((run, best), -1.0)
        lower = sign * comparison.pairs[key][j].difference < 0
        return lower and comparison.adjusted[key][j] < alpha

    return [
        Standing(run, means[run], rank, not worse_than_best(run))
        for rank, run in enumerate(order, start=1)
    ]
