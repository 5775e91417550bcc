"""What a report needs from a stored run, read in one verification pass.

``rescore_store`` computes the run's metric curves; its ``on_problem`` hook collects, on
the same pass, each problem's verdicts in sample order and token counts, for fits,
forecasts and cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import ScoredSamples
from lm_eval_monkeys.scoring.rescore import TaskResult, rescore_store
from lm_eval_monkeys.store import Sample, SampleStore


@dataclass
class TaskData:
    """One task of one run: rescore's metric curves and per-problem arrays."""

    result: TaskResult | None = None
    doc_ids: list[int] = field(default_factory=list)
    verdicts: list[np.ndarray] = field(default_factory=list)  # bool per sample, in order
    prompt_tokens: list[int] = field(default_factory=list)  # per problem, counted once
    completion_tokens: list[int] = field(default_factory=list)  # per problem, all samples

    @property
    def n(self) -> np.ndarray:
        return np.array([v.size for v in self.verdicts], dtype=np.int64)

    @property
    def c(self) -> np.ndarray:
        return np.array([int(v.sum()) for v in self.verdicts], dtype=np.int64)

    def c_first(self, m: int) -> np.ndarray:
        """Correct samples among each problem's first m (the data a smaller run had)."""
        return np.array([int(v[:m].sum()) for v in self.verdicts], dtype=np.int64)


@dataclass
class RunData:
    """A run directory's configuration and tasks."""

    run_dir: Path
    label: str
    config: dict[str, Any]
    tasks: dict[str, TaskData]

    @property
    def model(self) -> str:
        """The model's name: its hub id, a local GGUF file or directory, or else the name
        of the lm-eval model that ran."""
        pretrained = self.config.get("pretrained")
        if not pretrained:
            return str(self.config.get("model", "unknown"))
        if Path(str(pretrained)).is_dir():
            return str(self.config.get("gguf_file") or Path(str(pretrained)).name)
        return str(pretrained)


def read_run(
    store: SampleStore,
    label: str,
    checker_spec: str | None = None,
    ks: Sequence[int] | None = None,
    reward_model: str | None = None,
    metrics: Sequence[str] | None = None,
) -> RunData:
    """Rescore an open run and keep what fits, forecasts and costs need, verifying once."""
    tasks: dict[str, TaskData] = {}

    def collect(task: str, doc_id: int, samples: list[Sample], scored: ScoredSamples) -> None:
        data = tasks.setdefault(task, TaskData())
        data.doc_ids.append(doc_id)
        data.verdicts.append(np.array(scored.correct, dtype=bool))
        data.prompt_tokens.append(samples[0].prompt_tokens)
        data.completion_tokens.append(sum(s.completion_tokens for s in samples))

    results = rescore_store(
        store, checker_spec, ks, on_problem=collect, reward_model=reward_model, metrics=metrics
    )
    for task, result in results.items():
        tasks[task].result = result
    if not tasks:
        raise MonkeysError(f"{store.run_dir} holds no samples yet; finish or resume the run first")
    return RunData(store.run_dir, label, store.config() or {}, {t: tasks[t] for t in results})
