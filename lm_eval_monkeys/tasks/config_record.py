"""A task's run record, read off its lm-eval config (what its scores depend on)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from lm_eval_monkeys.store import Sampling, TaskRecord

# Config fields that change the prompt a model sees or how it samples.
_PROMPT_FIELDS = (
    "dataset_path",
    "dataset_name",
    "custom_dataset",
    "test_split",
    "fewshot_split",
    "num_fewshot",
    "fewshot_config",
    "description",
    "doc_to_text",
    "doc_to_target",
    "doc_to_choice",
    "target_delimiter",
    "fewshot_delimiter",
    "use_prompt",
    "generation_kwargs",
)


def identity(value: Any) -> Any:
    """A JSON-able stand-in for a config value: functions by their qualified name."""
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', value)}"
    if isinstance(value, dict):
        return {str(k): identity(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [identity(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def reward_prompt(doc_to_text: Any) -> dict[str, str]:
    """How the reward command renders a problem's question: the task's zero-shot
    ``doc_to_text``, as a template or as the function (module, name and file)."""
    if callable(doc_to_text):
        path = inspect.getsourcefile(doc_to_text) or ""
        return {
            "function": f"{doc_to_text.__module__}:{doc_to_text.__qualname__}",
            "file": path,
        }
    return {"template": str(doc_to_text or "")}


def task_record(
    config: Any,
    checker_spec: str,
    repeats: int,
    ks: Sequence[int],
    metrics: Sequence[str],
    fewshot_seed: int | None,
    sampling: Sampling | None,
) -> TaskRecord:
    prompt = {name: identity(getattr(config, name, None)) for name in _PROMPT_FIELDS}
    prompt["fewshot_seed"] = fewshot_seed
    return TaskRecord(
        task=str(config.task),
        checker_spec=checker_spec,
        repeats=repeats,
        ks=tuple(ks),
        metrics=tuple(metrics),
        prompt=prompt,
        reward_prompt=reward_prompt(config.doc_to_text),
        sampling=sampling,
    )
