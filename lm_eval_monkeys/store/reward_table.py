"""Reward-model scores: one per (reward model, sample), written by ``lm-eval-monkeys reward``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lm_eval_monkeys.store.core import SampleStore

SCHEMA = """
CREATE TABLE rewards (
    model TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    reward REAL NOT NULL,
    PRIMARY KEY (model, task, doc_id, sample_idx)
) WITHOUT ROWID;
"""


class RewardTable:
    """The ``rewards`` table of one store."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def add(self, model: str, rows: Iterable[tuple[str, int, int, float]]) -> None:
        """Commit (task, doc_id, sample_idx, reward) scores of one reward model together."""
        values = [(model, task, doc_id, idx, reward) for task, doc_id, idx, reward in rows]

        self.store.database.write(
            lambda: self.store.database.connection.executemany(
                "INSERT OR IGNORE INTO rewards VALUES (?, ?, ?, ?, ?)", values
            )
        )

    def models(self) -> list[str]:
        """The reward models (as named when scoring) with scores in this store."""
        return [
            r[0]
            for r in self.store.database.read("SELECT DISTINCT model FROM rewards ORDER BY model")
        ]

    def scores(self, model: str, task: str, doc_id: int) -> dict[int, float]:
        """One problem's scores from one reward model, by sample index."""
        return dict(
            self.store.database.read(
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
        total = self.store.database.read("SELECT COUNT(*) FROM samples")[0][0]
        scored = self.store.database.read("SELECT COUNT(*) FROM rewards WHERE model = ?", (model,))
        return total - scored[0][0]
