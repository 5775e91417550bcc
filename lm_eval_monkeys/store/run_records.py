"""Run records: per task, everything its scores depend on besides the samples.

A record names the checker (its spec, options included), k, the reported ks, the
metrics the task asked for, how samples were drawn (all k per problem, or in rounds
until verified: ``Sampling``), the prompt's identity (template, few-shot count, split,
generation settings, dataset; compared field by field) and the reward prompt. ``rescore``,
``export``, ``report``, ``reward``, ``compare`` and ``merge`` read it instead of looking
the task up again in whatever task configs happen to be installed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.task_configs import DEFAULT_METRICS, installed_configs

if TYPE_CHECKING:
    from lm_eval_monkeys.store.core import SampleStore

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE records (task TEXT PRIMARY KEY, record TEXT NOT NULL) WITHOUT ROWID;
"""


def changed_keys(first: Mapping[str, Any], *others: Mapping[str, Any]) -> list[str]:
    """The keys, sorted, whose values are not the same in every mapping (absent is None)."""
    keys = set(first).union(*others)
    return sorted(k for k in keys if any(other.get(k) != first.get(k) for other in others))


# The one allocation rule: each round goes evenly to the problems still unsolved (chosen
# by measurement, docs/adaptive.md); the record names it so a later rule cannot be mistaken.
EVEN = "even"


@dataclass(frozen=True)
class Sampling:
    """An adaptive run's rounds: ``round_size`` samples per unsolved problem a round, up to
    k per problem, and at most ``budget`` samples in all (None: no budget); the last round
    of a budget is spread evenly over the unsolved problems (``allocation``)."""

    round_size: int
    budget: int | None = None
    allocation: str = EVEN


@dataclass(frozen=True)
class TaskRecord:
    """What a task's scores depend on, as the run asked for it."""

    task: str
    checker_spec: str
    repeats: int
    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    prompt: dict[str, Any] = field(default_factory=dict)
    reward_prompt: dict[str, str] = field(default_factory=dict)
    sampling: Sampling | None = None  # None: every problem got all k samples

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> TaskRecord:
        data = json.loads(text)
        return cls(
            task=data["task"],
            checker_spec=data["checker_spec"],
            repeats=int(data["repeats"]),
            ks=tuple(data["ks"]),
            metrics=tuple(data["metrics"]),
            prompt=data.get("prompt") or {},
            reward_prompt=data.get("reward_prompt") or {},
            sampling=Sampling(**data["sampling"]) if data.get("sampling") else None,
        )

    def differences(self, other: TaskRecord) -> list[str]:
        """What changed that alters what a score means, in words (k and ks may grow)."""
        fields = {"checker": "checker_spec", "metrics": "metrics", "prompt": "prompt"}
        fields["reward prompt"] = "reward_prompt"
        fields["sampling"] = "sampling"
        return changed_keys(*({w: getattr(r, f) for w, f in fields.items()} for r in (self, other)))


class RecordTable:
    """The ``records`` table of one store."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def get(self, task: str) -> TaskRecord | None:
        rows = self.store.database.read("SELECT record FROM records WHERE task = ?", (task,))
        if not rows:
            return None
        try:
            return TaskRecord.from_json(rows[0][0])
        except (ValueError, KeyError, TypeError):
            raise MonkeysError(
                f"{self.store.path}: the run record of {task} is damaged (not JSON); "
                "restore the store from a copy, or rescore with --verifier NAME"
            ) from None

    def all(self) -> dict[str, TaskRecord]:
        tasks = [r[0] for r in self.store.database.read("SELECT task FROM records")]
        return {task: record for task in tasks if (record := self.get(task)) is not None}

    def bind(self, record: TaskRecord) -> None:
        """Record a task's run record; refuse one that changes what its scores mean, and
        keep the largest k and ks asked for (an extended run reports more)."""
        held = self.get(record.task)
        if held is not None:
            changed = held.differences(record)
            if changed:
                hint = (
                    f"rescore it with `lm-eval-monkeys rescore {self.store.run_dir} --verifier "
                    f"{record.checker_spec}`"
                    if changed == ["checker"]
                    else "use a new --output_path"
                )
                checkers = (
                    f" ({held.checker_spec!r} vs {record.checker_spec!r} checker)"
                    if "checker" in changed
                    else ""
                )
                raise MonkeysError(
                    f"{self.store.run_dir} holds a {record.task} run with another "
                    f"{', '.join(changed)}{checkers}; {hint}"
                )
            if record.repeats <= held.repeats and set(record.ks) <= set(held.ks):
                return
            record = replace(
                record,
                repeats=max(record.repeats, held.repeats),
                ks=tuple(sorted(set(record.ks) | set(held.ks))),
            )

        self.store.database.write(
            lambda: self.store.database.connection.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?)", (record.task, record.to_json())
            )
        )


def installed_record(task: str, checker: str | None = None) -> TaskRecord:
    """What a task without a run record is scored by: a store written through the
    ``SampleStore`` API records none. Its checker (``checker`` if given), metrics and
    zero-shot prompt are read off the installed config; k and the prompt's identity are
    unknown (0 and empty)."""
    config = installed_configs().get(task, {})
    metadata = config.get("metadata") or {}
    spec = checker or metadata.get("verifier")
    if not spec:
        raise MonkeysError(
            f"{task} has no run record and no installed config names its checker; score "
            "runs of the installed monkeys_* tasks, or rescore with --verifier NAME"
        )
    if not checker:
        logger.warning(
            "%s has no run record (a store written through the API): scoring it as its "
            "installed config says (checker %s)",
            task,
            spec,
        )
    doc_to_text = config.get("doc_to_text")
    return TaskRecord(
        task=task,
        checker_spec=spec,
        repeats=0,
        ks=(),
        metrics=tuple(metadata.get("metrics") or DEFAULT_METRICS),
        reward_prompt=doc_to_text
        if isinstance(doc_to_text, dict)
        else {"template": str(doc_to_text or "")},
    )
