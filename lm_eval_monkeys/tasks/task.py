"""The lm-eval task class behind every ``monkeys_*`` config.

A YAML config names its checker (``metadata.verifier``) and metrics (``metadata.metrics``);
k and the reported ks come from lm-eval's ``--metadata`` (``repeats=K``, ``ks=[...]``) or
the config's ``repeats``; ``shard=i/N`` keeps every N-th problem; ``sampling`` makes the
run adaptive (sampled in rounds until verified, docs/adaptive.md). Each problem's k
completions are judged through a ``VerdictResolver`` (the run store's verdict cache first)
and become its ``name@k`` metrics. A store-backed run also gets the task's run record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from lm_eval.api.metrics import mean
from lm_eval.api.task import ConfigurableTask

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import (
    adaptive_curves,
    flat_name,
    flatten,
    needs_rewards,
    needs_votes,
    problem_curves,
)
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.store import SampleStore, StoredSamples, TaskRecord, reader
from lm_eval_monkeys.store.shards import parse_shard
from lm_eval_monkeys.tasks.config_record import task_record
from lm_eval_monkeys.tasks.run_options import (
    parse_ks,
    parse_repeats,
    parse_sampling,
    sampled_metrics,
)
from lm_eval_monkeys.verifiers import get_checker

logger = logging.getLogger(__name__)


class MonkeysTask(ConfigurableTask):
    """A generate-until task that draws k samples per problem and scores all of them."""

    def __init__(self, config: dict[str, Any]) -> None:
        config = {key: value for key, value in config.items() if key != "class"}
        meta = config.get("metadata") or {}
        self.repeats = parse_repeats(meta.get("repeats", config.get("repeats", 1)))
        self.ks = parse_ks(meta.get("ks"), self.repeats)
        self.sampling = parse_sampling(meta.get("sampling"))
        self.metrics = tuple(
            m for m in sampled_metrics(meta.get("metrics"), self.sampling) if not needs_rewards(m)
        )
        self.shard = parse_shard(meta.get("shard"))
        self.checker = get_checker(meta["verifier"], task=config.get("task", ""))
        self._run_dir: str | None = meta.get("run_dir")  # set by lm-eval-monkeys for its runs
        self._recorded: set[str] = set()
        self._fewshot_seed: int | None = None
        self._bypass: str | None = None  # lm-eval's --predict_only metric, once asked for
        super().__init__(config={**config, "repeats": self.repeats})
        available = len(self.sampler.df) if hasattr(self, "sampler") else 0
        if (self.config.num_fewshot or 0) > available:
            # e.g. CodeContests from a local directory without its train split
            logger.warning(
                "%s: only %d few-shot examples available, using %d",
                self.config.task,
                available,
                available,
            )
            self.config.num_fewshot = available

    @property
    def record(self) -> TaskRecord:
        return task_record(
            self.config,
            self.checker.spec,
            self.repeats,
            self.ks,
            self.metrics,
            self._fewshot_seed,
            self.sampling,
        )

    def doc_iterator(self, **kwargs: Any) -> Iterator[tuple[int, Any]]:
        """lm-eval's docs (after ``--limit``), only this shard's; ids stay dataset indices."""
        docs = super().doc_iterator(**kwargs)
        shard = self.shard
        if shard is None:
            return docs
        held = [(i, doc) for i, doc in docs if shard.holds(i)]
        if not held:
            raise MonkeysError(
                f"shard {shard} holds no {self.config.task} problems (fewer problems than "
                "shards); use fewer shards"
            )
        return iter(held)

    def build_all_requests(self, *args: Any, **kwargs: Any) -> None:
        # Record the task before the model samples anything: a run asking for another
        # checker than the store's stops here, and a killed run is still described.
        if self._run_dir is not None:
            with SampleStore(self._run_dir) as store:
                self._bind(store)
        super().build_all_requests(*args, **kwargs)

    def set_fewshot_seed(self, seed: int | None = None) -> None:
        self._fewshot_seed = seed
        super().set_fewshot_seed(seed)

    def fewshot_context(self, doc: dict, num_fewshot: int, **kwargs: Any) -> Any:
        # lm-eval draws every problem's examples from one stream, so a problem's prompt
        # would depend on the problems before it; a stream per problem makes a shard's
        # prompts (and any subset's) those of the whole run.
        if hasattr(self, "sampler"):
            key = json.dumps([self._fewshot_seed, doc], sort_keys=True, default=str)
            self.sampler.set_rnd(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
        return super().fewshot_context(doc, num_fewshot, **kwargs)

    def override_metric(self, metric_name: str) -> None:
        # lm-eval's --predict_only asks for its "bypass" metric: generate, judge nothing
        # (problems that cannot be judged, such as CodeContests without tests, still run).
        self._bypass = metric_name
        super().override_metric(metric_name)

    def process_results(self, doc: dict, results: list) -> dict[str, float]:
        if self._bypass:
            return {self._bypass: 0.0}
        # The config's empty filter keeps all k responses of the doc's one request.
        (completions,) = results
        cache = None
        if completions and isinstance(completions[0], StoredSamples):
            ref = completions[0]
            store = reader(ref.run_dir)
            self._bind(store)
            cache = store.verdicts
            completions = ref.load()  # a store-backed run: read this problem only
        group = needs_votes(self.metrics)
        scored = score_completions(self.checker, doc, completions, cache, group=group)
        if self.sampling is not None:  # sampled until verified: from its first success
            return flatten(adaptive_curves(scored.summary, self.ks))
        return flatten(problem_curves(scored.summary, self.ks, self.metrics))

    def _bind(self, store: SampleStore) -> None:
        if str(store.run_dir) not in self._recorded:
            store.records.bind(self.record)
            self._recorded.add(str(store.run_dir))

    def aggregation(self) -> dict[str, Callable[[list[float]], float]]:
        return dict.fromkeys(self._metric_names(), mean)

    def higher_is_better(self) -> dict[str, bool]:
        return dict.fromkeys(self._metric_names(), True)

    def _metric_names(self) -> list[str]:
        if self._bypass:
            return [self._bypass]
        return [flat_name(name, k) for name in self.metrics for k in self.ks]
