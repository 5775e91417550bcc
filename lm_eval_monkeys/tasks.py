"""The lm-eval task class behind every ``monkeys_*`` config.

A YAML config names its checker (``metadata.verifier``); k and the reported k values come
from lm-eval's ``--metadata`` (``repeats=K``, ``ks=[...]``) or the config's ``repeats``;
``shard=i/N`` keeps every N-th problem (see ``lm_eval_monkeys.shards``).
Each problem's k completions become one ``ProblemSummary`` and its ``name@k`` metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lm_eval.api.metrics import mean
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks._yaml_loader import load_yaml

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.estimators import default_ks
from lm_eval_monkeys.metrics import metric_names, problem_metrics
from lm_eval_monkeys.selection import Grader, score_samples
from lm_eval_monkeys.shards import parse_shard
from lm_eval_monkeys.store import StoredSamples
from lm_eval_monkeys.verifiers import get_verifier

logger = logging.getLogger(__name__)


class MonkeysTask(ConfigurableTask):
    """A generate-until task that draws k samples per problem and scores all of them."""

    def __init__(self, config: dict[str, Any]) -> None:
        config = {key: value for key, value in config.items() if key != "class"}
        meta = config.get("metadata") or {}
        k = parse_repeats(meta.get("repeats", config.get("repeats", 1)))
        self.ks = parse_ks(meta.get("ks"), k)
        self.shard = parse_shard(meta.get("shard"))
        self._fewshot_seed: int | None = None
        self._bypass: str | None = None  # lm-eval's --predict_only metric, once asked for
        self.grader = Grader(get_verifier(meta["verifier"], task=config.get("task", "")))
        super().__init__(config={**config, "repeats": k})
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

    def doc_iterator(self, **kwargs: Any) -> Iterator[tuple[int, Any]]:
        """lm-eval's docs (after ``--limit``), only this shard's; ids stay dataset indices."""
        docs = super().doc_iterator(**kwargs)
        shard = self.shard
        return docs if shard is None else ((i, doc) for i, doc in docs if shard.holds(i))

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
        if completions and isinstance(completions[0], StoredSamples):
            completions = completions[0].load()  # a store-backed run: read this problem only
        scored = score_samples(completions, self.grader.checker.target(doc), self.grader)
        return problem_metrics(scored.summary, self.ks)

    def aggregation(self) -> dict[str, Callable[[list[float]], float]]:
        return dict.fromkeys(self._reported(), mean)

    def higher_is_better(self) -> dict[str, bool]:
        return dict.fromkeys(self._reported(), True)

    def _reported(self) -> list[str]:
        return [self._bypass] if self._bypass else metric_names(self.ks)


def parse_repeats(value: Any) -> int:
    """k, the samples drawn per problem, validated."""
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or str(k) != str(value).strip():
        raise MonkeysError(f"repeats must be a whole number >= 1, got {value!r}; e.g. --repeats 16")
    return k


def parse_ks(value: Any, k: int) -> list[int]:
    """The k values to report: given as a list or comma string, else powers of two up to k."""
    if value is None or value == "":
        return default_ks(k)
    items = (
        value.split(",")
        if isinstance(value, str)
        else list(value)
        if isinstance(value, (list, tuple))
        else [value]
    )
    try:
        ks = sorted({int(item) for item in items})
    except (TypeError, ValueError):
        raise MonkeysError(f"ks must be whole numbers, got {value!r}; e.g. --ks 1,4,16") from None
    if ks[0] < 1:
        raise MonkeysError(f"every reported k must be >= 1, got {ks[0]}")
    if ks[-1] > k:
        raise MonkeysError(
            f"k={ks[-1]} exceeds the {k} samples drawn per problem; "
            f"raise --repeats to {ks[-1]} or drop k={ks[-1]} from --ks"
        )
    return ks


def task_verifier(task: str, config_dirs: list[Path]) -> str:
    """The checker a task config names (``metadata.verifier``), found without building it."""
    known: dict[str, str] = {}
    for directory in config_dirs:
        for path in sorted(Path(directory).glob("*.yaml")):
            config = load_yaml(path, resolve_func=False)
            verifier = (config.get("metadata") or {}).get("verifier")
            if "task" in config and isinstance(config["task"], str) and verifier:
                known[config["task"]] = verifier
    if task not in known:
        raise MonkeysError(
            f"unknown task {task!r}; choose one of {', '.join(sorted(known))} "
            f"(or pass --include_path DIR for your own configs)"
        )
    return known[task]
