"""Recompute a stored run's verdicts and metrics without a model.

Reads ``RUN_DIR/samples.sqlite`` one problem at a time (memory stays flat), scores it with
the task's checker or another one (``--verifier``), and reports every ``name@k``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.estimators import default_ks
from lm_eval_monkeys.metrics import check_metric, problem_metrics
from lm_eval_monkeys.reward import all_or_none_rewarded, stored_reward_model, with_stored_rewards
from lm_eval_monkeys.selection import Grader, ScoredSamples, score_samples
from lm_eval_monkeys.store import Sample, SampleStore
from lm_eval_monkeys.task_configs import TASK_DIR
from lm_eval_monkeys.tasks import task_verifier
from lm_eval_monkeys.verify_backends import VerdictResolver, VerifyBackend, known_grader

RESCORE_FILE = "rescore.json"
_PREFETCH_PROBLEMS = 64  # problems whose distinct answers are verified together


def scored_problems(
    store: SampleStore, task: str, grader: Grader, resolver: VerdictResolver | None = None
) -> Iterator[tuple[int, list[Sample], ScoredSamples]]:
    """Each stored problem of a task with its samples and their verdicts. The distinct
    answers of a chunk of problems are resolved together first (the store's verdict cache,
    then ``resolver``'s backend: local by default, or a Ray cluster)."""
    resolver = resolver or VerdictResolver(store=store)
    docs = store.docs(task)
    while chunk := list(islice(docs, _PREFETCH_PROBLEMS)):
        resolver.prefetch(
            grader,
            ((doc, map(grader.answer, set(store.completions(task, i)))) for i, doc in chunk),
        )
        for doc_id, doc in chunk:
            samples = store.samples(task, doc_id)
            if samples:
                target = grader.checker.target(doc)
                completions = [s.completion for s in samples]
                yield doc_id, samples, score_samples(completions, target, grader)


def grader_for(task: str, verifier: str | None) -> tuple[str, Grader]:
    spec = verifier or task_verifier(task, [TASK_DIR])
    return spec, known_grader(task, spec)


ProblemHook = Callable[[str, list[Sample], ScoredSamples], None]


def rescore_run(
    run_dir: Path,
    verifier: str | None = None,
    ks: Sequence[int] | None = None,
    on_problem: ProblemHook | None = None,
    backend: VerifyBackend | None = None,
    reward_model: str | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, dict[str, float | int | str]]:
    """Metrics of every task in the run, averaged over problems; also written to rescore.json.

    ``on_problem(task, samples, scored)`` sees every scored problem on the way, so callers
    needing per-problem data (the report: counts, verdicts, tokens) verify only once.
    Tasks whose samples all have rewards also get ``rm_best@k`` and ``rm_majority@k``,
    from ``reward_model``'s scores (default: the only reward model in the store).
    ``metrics`` names the metrics to compute (default: every metric that is not opt-in).
    """
    for name in metrics or ():
        check_metric(name)  # before any verification
    store = SampleStore(run_dir, writer=False)
    resolver = VerdictResolver(backend, store)  # verdicts cached in the store
    results: dict[str, dict[str, float | int | str]] = {}
    try:
        reward_model = stored_reward_model(store, reward_model)
        for task in store.tasks():
            spec, grader = grader_for(task, verifier)
            summaries = []
            for doc_id, samples, scored in tqdm(
                scored_problems(store, task, grader, resolver),
                desc=f"rescore {task}",
                unit="problem",
            ):
                if on_problem is not None:
                    on_problem(task, samples, scored)
                summaries.append(
                    with_stored_rewards(store, reward_model, task, doc_id, samples, scored)
                )
            if not summaries:
                continue
            summaries = all_or_none_rewarded(summaries, task, reward_model)
            fewest = min(s.n for s in summaries)
            task_ks = sorted(ks) if ks else default_ks(fewest)
            if task_ks[-1] > fewest:
                raise MonkeysError(
                    f"k={task_ks[-1]} exceeds the {fewest} samples stored for some {task} "
                    "problem; lower --ks or extend the run"
                )
            totals: dict[str, float] = {}
            for summary in summaries:
                for name, value in problem_metrics(summary, task_ks, metrics).items():
                    totals[name] = totals.get(name, 0.0) + value
            results[task] = {
                **{name: total / len(summaries) for name, total in totals.items()},
                "problems": len(summaries),
                "verifier": spec,
            }
            if summaries[0].rewards is not None:
                results[task]["reward_model"] = reward_model
    finally:
        resolver.close()
        store.close()
    try:
        (run_dir / RESCORE_FILE).write_text(json.dumps(results, indent=2) + "\n")
    except OSError as err:
        raise MonkeysError(f"cannot write {run_dir / RESCORE_FILE}: {err.strerror}") from None
    return results
