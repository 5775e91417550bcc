"""Run records: per task, everything its scores depend on besides the samples.

A record names the checker (its spec, options included), k, the reported ks, the
metrics the task asked for, the prompt's identity (template, few-shot count, split,
generation settings, dataset; compared field by field) and the reward prompt. ``rescore``,
``export``, ``report``, ``reward``, ``compare`` and ``merge`` read it instead of looking
the task up again in whatever task configs happen to be installed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lm_eval_monkeys.errors import MonkeysError

if TYPE_CHECKING:
    from lm_eval_monkeys.store.core import SampleStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (task TEXT PRIMARY KEY, record TEXT NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class TaskRecord:
    """What a task's scores depend on, as the run asked for it."""

    task: str
    verifier: str
    repeats: int
    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    prompt: dict[str, Any] = field(default_factory=dict)
    reward_prompt: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> TaskRecord:
        data = json.loads(text)
        return cls(
            task=data["task"],
            verifier=data["verifier"],
            repeats=int(data["repeats"]),
            ks=tuple(data["ks"]),
            metrics=tuple(data["metrics"]),
            prompt=data.get("prompt") or {},
            reward_prompt=data.get("reward_prompt") or {},
        )

    def differences(self, other: TaskRecord) -> list[str]:
        """The fields whose change alters what a score means (k and ks may grow)."""
        fields = ("verifier", "metrics", "prompt", "reward_prompt")
        return [name for name in fields if getattr(self, name) != getattr(other, name)]


class RecordTable:
    """The ``records`` table of one store."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def get(self, task: str) -> TaskRecord | None:
        try:
            rows = self.store.read("SELECT record FROM records WHERE task = ?", (task,))
        except sqlite3.OperationalError:  # a store written before run records
            return None
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
        try:
            tasks = [r[0] for r in self.store.read("SELECT task FROM records")]
        except sqlite3.OperationalError:
            return {}
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
                    f"{record.verifier}`"
                    if changed == ["verifier"]
                    else "use a new --output_path"
                )
                raise MonkeysError(
                    f"{self.store.run_dir} holds a {record.task} run with another "
                    f"{', '.join(changed)} ({held.verifier!r} vs {record.verifier!r} checker); "
                    f"{hint}"
                )
            if record.repeats <= held.repeats and set(record.ks) <= set(held.ks):
                return
            record = TaskRecord(
                **{
                    **asdict(record),
                    "repeats": max(record.repeats, held.repeats),
                    "ks": tuple(sorted(set(record.ks) | set(held.ks))),
                }
            )

        def upsert() -> None:
            self.store.db.execute(SCHEMA)
            self.store.db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?)", (record.task, record.to_json())
            )

        self.store.write(upsert)
