"""Verdicts that came with imported samples: the source's own judgement of each sample.

An imported run (``lm-eval-monkeys import``) keeps the verdicts its source recorded (the
paper's ``is_corrects``) here, one per (source, task, doc, sample), beside this project's
verdict cache, so that ``audit`` can set the two side by side. A sample the source did
not judge has no row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lm_eval_monkeys.store.core import SampleStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS source_verdicts (
    source TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL,
    sample_idx INTEGER NOT NULL, correct INTEGER NOT NULL,
    PRIMARY KEY (source, task, doc_id, sample_idx)
) WITHOUT ROWID;
"""


class SourceVerdictTable:
    """The ``source_verdicts`` table of one store (absent from runs that imported nothing)."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def add(self, source: str, rows: Iterable[tuple[str, int, int, bool]]) -> None:
        """Commit (task, doc_id, sample_idx, correct) verdicts of one source together."""
        values = [(source, task, doc_id, idx, int(ok)) for task, doc_id, idx, ok in rows]

        def insert() -> None:
            self.store.db.execute(SCHEMA)
            self.store.db.executemany(
                "INSERT OR REPLACE INTO source_verdicts VALUES (?, ?, ?, ?, ?)", values
            )

        self.store.write(insert)

    def sources(self) -> list[str]:
        """The sources with verdicts in this store."""
        return [r[0] for r in self._query("SELECT DISTINCT source FROM source_verdicts")]

    def verdicts(self, source: str, task: str, doc_id: int) -> dict[int, bool]:
        """One problem's verdicts from ``source``, by sample index."""
        rows = self._query(
            "SELECT sample_idx, correct FROM source_verdicts "
            "WHERE source = ? AND task = ? AND doc_id = ?",
            (source, task, doc_id),
        )
        return {idx: bool(ok) for idx, ok in rows}

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        try:
            return self.store.read(sql, args)
        except sqlite3.OperationalError:  # no table: nothing imported
            return []
