"""What every k-sample model shares: grouping lm-eval's cloned requests, skipping the
samples a run's store already holds, writing each new sample as soon as it exists.

lm-eval 0.4.13 turns ``repeats: k`` into k references to one request. A model here sees
each problem once with the sample indices it still needs, so prompt work is shared and a
resumed or extended run generates only what is missing. A task whose run record is
adaptive is drawn in rounds until verified instead (``rounds.py``); its problems are then
handed back with the samples they got.
"""

from __future__ import annotations

import hashlib
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.models.rounds import sample_in_rounds
from lm_eval_monkeys.store import Sample, SampleStore, Sampling, StoredSamples, prompt_hash

# Constructor arguments that change how fast a run goes, not what it samples.
_NOT_IDENTITY = {"run_dir", "batch_size", "max_batch_size", "device", "sample_delay"}
_BATCH_ROWS, _FLUSH_S = 512, 0.5


@dataclass(frozen=True)
class SampleRequest:
    """One problem's prompt and the sample indices still to generate for it."""

    task: str
    doc_id: int
    doc: dict[str, Any]
    context: str
    gen_kwargs: dict[str, Any]
    indices: tuple[int, ...]


def sample_seed(seed: int, task: str, doc_id: int, sample_idx: int) -> int:
    """The seed of sample ``sample_idx`` of a problem: fixed whatever the batch or resume."""
    digest = hashlib.sha256(f"{seed}/{task}/{doc_id}/{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class KSampleLM(LM):
    """Base class of the ``monkeys-*`` models; subclasses implement ``sample``."""

    def __init__(self, *, run_dir: str | None = None, seed: int = 0, **identity: Any) -> None:
        super().__init__()
        self.run_dir = run_dir or None
        self.seed = int(seed)
        self.identity = {"seed": self.seed, **identity}

    @abstractmethod
    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        """Generate every requested sample, yielding each as soon as it is complete."""

    def run_config(self) -> dict[str, Any]:
        """What makes two runs' samples interchangeable (recorded in the store)."""
        return {
            "model": type(self).__name__,
            **{k: v for k, v in sorted(self.identity.items()) if k not in _NOT_IDENTITY},
        }

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        groups = _group_clones(requests)
        store = SampleStore(self.run_dir) if self.run_dir else None
        drawn: dict[tuple[str, int], int] = {}  # adaptive problems: samples they got
        try:
            if store is not None:
                store.bind_config(self.run_config())
            plans = self._plan(groups, store)
            adaptive = _adaptive_tasks(plans, store)
            uniform = [p for p in plans if p.indices and p.task not in adaptive]
            bar = _progress(type(self).__name__, uniform, groups, adaptive, disable_tqdm)
            texts = self._generate(uniform, store, bar)
            for task, sampling in adaptive.items():
                assert store is not None  # only a store's records make a task adaptive
                ks = {count for inst, count in groups if inst.task_name == task}
                held = sample_in_rounds(
                    [p for p in plans if p.task == task],
                    max(ks),
                    sampling,
                    store,
                    lambda round_plans: self._generate(round_plans, store, bar),
                )
                drawn.update(((task, doc_id), n) for doc_id, n in held.items())
            bar.close()
        finally:
            if store is not None:
                store.close()
        outputs: list[str] = []
        for (_, count), plan in zip(groups, plans, strict=True):
            if store is not None and self.run_dir:
                held_n = drawn.get((plan.task, plan.doc_id), count)
                ref = StoredSamples(self.run_dir, plan.task, plan.doc_id, held_n)
                outputs.extend([ref] * count)
            else:
                by_index = texts[(plan.task, plan.doc_id)]
                outputs.extend(by_index[i] for i in range(count))
        return outputs

    def _plan(
        self, groups: list[tuple[Instance, int]], store: SampleStore | None
    ) -> list[SampleRequest]:
        """Each problem with the sample indices below its k that the store does not hold."""
        plans = [
            SampleRequest(
                inst.task_name,
                int(inst.doc_id),
                inst.doc,
                inst.args[0],
                dict(inst.args[1]),
                tuple(range(count)),
            )
            for inst, count in groups
        ]
        if store is None:
            return plans
        store.register_docs(
            [
                (p.task, p.doc_id, p.doc, prompt_hash(p.context, p.gen_kwargs), p.gen_kwargs)
                for p in plans
            ]
        )
        store.record_requested([(p.task, p.doc_id, len(p.indices)) for p in plans])
        return [
            replace(
                p, indices=tuple(sorted(set(p.indices) - store.existing_indices(p.task, p.doc_id)))
            )
            for p in plans
        ]

    def _generate(
        self, plans: list[SampleRequest], store: SampleStore | None, bar: tqdm
    ) -> dict[tuple[str, int], dict[int, str]]:
        """Generate; keep texts in memory only when there is no store to write."""
        texts: dict[tuple[str, int], dict[int, str]] = {}
        tokens, start = 0, time.monotonic()
        pending: list[tuple[str, int, Sample]] = []
        flushed = time.monotonic()
        for plan, sample in self.sample(plans):
            if store is None:
                texts.setdefault((plan.task, plan.doc_id), {})[sample.sample_idx] = (
                    sample.completion
                )
            else:
                pending.append((plan.task, plan.doc_id, sample))
                # Commit often enough that a crash loses at most half a second of work.
                if len(pending) >= _BATCH_ROWS or time.monotonic() - flushed > _FLUSH_S:
                    store.add(pending)
                    pending, flushed = [], time.monotonic()
            tokens += sample.completion_tokens
            bar.update(1)
            elapsed = max(time.monotonic() - start, 1e-9)
            bar.set_postfix(tok_s=f"{tokens / elapsed:.0f}", refresh=False)
        if store is not None and pending:
            store.add(pending)
        return texts

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise MonkeysError(
            "monkeys-* models only generate text; use --model hf for loglikelihood tasks"
        )

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        raise MonkeysError(
            "monkeys-* models only generate text; use --model hf for perplexity tasks"
        )


def _adaptive_tasks(plans: list[SampleRequest], store: SampleStore | None) -> dict[str, Sampling]:
    """The tasks whose run record says to sample in rounds until verified."""
    if store is None:
        return {}
    records = {task: store.records.get(task) for task in {p.task for p in plans}}
    return {
        task: record.sampling
        for task, record in sorted(records.items())
        if record is not None and record.sampling is not None
    }


def _progress(
    name: str,
    uniform: list[SampleRequest],
    groups: list[tuple[Instance, int]],
    adaptive: dict[str, Sampling],
    disable: bool,
) -> tqdm:
    """One bar over the run's samples; an adaptive task counts at most k per problem
    (or its budget), an upper bound its rounds usually stop well short of."""
    total = sum(len(p.indices) for p in uniform)
    for task, sampling in adaptive.items():
        most = sum(count for inst, count in groups if inst.task_name == task)
        total += most if sampling.budget is None else min(most, sampling.budget)
    return tqdm(total=total, desc=f"sampling ({name})", unit="sample", disable=disable or not total)


def _group_clones(requests: list[Instance]) -> list[tuple[Instance, int]]:
    """Collapse lm-eval's k consecutive references to one request into (request, k)."""
    groups: list[tuple[Instance, int]] = []
    for request in requests:
        if groups and groups[-1][0] is request:
            groups[-1] = (request, groups[-1][1] + 1)
        else:
            groups.append((request, 1))
    return groups
