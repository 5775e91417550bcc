"""Reward-model scores: one per (reward model, sample), written by ``lm-eval-monkeys reward``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lm_eval_monkeys.store.core import SampleStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS rewards (
    model TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    reward REAL NOT NULL,
    PRIMARY KEY (model, task, doc_id, sample_idx)
) WITHOUT ROWID;
"""


class RewardTable:
    """The ``rewards`` table of one store (absent until a reward model scores the run)."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def add(self, model: str, rows: Iterable[tuple[str, int, int, float]]) -> None:
        """Commit (task, doc_id, sample_idx, reward) scores of one reward model together."""
        values = [(model, task, doc_id, idx, reward) for task, doc_id, idx, reward in rows]

        def insert() -> None:
            self.store.db.execute(SCHEMA)
            self.store.db.executemany(
                "INSERT OR IGNORE INTO rewards VALUES (?, ?, ?, ?, ?)", values
            )

        self.store.write(insert)

    def models(self) -> list[str]:
        """The reward models (as named when scoring) with scores in this store."""
        return [r[0] for r in self._query("SELECT DISTINCT model FROM rewards ORDER BY model")]

    def scores(self, model: str, task: str, doc_id: int) -> dict[int, float]:
        """One problem's scores from one reward model, by sample index."""
        return dict(
            self._query(
                "SELECT sample_idx, reward FROM rewards WHERE model = ? AND task = ? "
                "AND doc_id = ?",
                (model, task, doc_id),
            )
        )

    def unscored(self, model: str, task: str, doc_id: int) -> list[tuple[int, str]]:
        """(sample_idx, completion) of one problem's samples that ``model`` has not scored."""
        scored = self.scores(model, task, doc_id)
        return [
            (s.sample_idx, s.completion)
            for s in self.store.samples(task, doc_id)
            if s.sample_idx not in scored
        ]

    def count_unscored(self, model: str) -> int:
        """How many stored samples ``model`` has not scored."""
        total = self.store.read("SELECT COUNT(*) FROM samples")[0][0]
        rows = self._query("SELECT COUNT(*) FROM rewards WHERE model = ?", (model,))
        return total - (rows[0][0] if rows else 0)

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        try:
            return self.store.read(sql, args)
        except sqlite3.OperationalError:  # no rewards table: nothing scored yet
            return []
