"""Verdicts that came with imported samples: the source's own judgement of each sample.

An imported run (``lm-eval-monkeys import``) keeps the verdicts its source recorded (the
paper's ``is_corrects``) here, one per (source, task, doc, sample), beside this project's
verdict cache, so that ``audit`` can set the two side by side. A sample the source did
not judge has no row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lm_eval_monkeys.store.core import SampleStore

SCHEMA = """
CREATE TABLE source_verdicts (
    source TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL,
    sample_idx INTEGER NOT NULL, correct INTEGER NOT NULL,
    PRIMARY KEY (source, task, doc_id, sample_idx)
) WITHOUT ROWID;
"""


class SourceVerdictTable:
    """The ``source_verdicts`` table of one store (empty in runs that imported nothing)."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def add(self, source: str, rows: Iterable[tuple[str, int, int, bool]]) -> None:
        """Commit (task, doc_id, sample_idx, correct) verdicts of one source together."""
        values = [(source, task, doc_id, idx, int(ok)) for task, doc_id, idx, ok in rows]

        self.store.database.write(
            lambda: self.store.database.connection.executemany(
                "INSERT OR REPLACE INTO source_verdicts VALUES (?, ?, ?, ?, ?)", values
            )
        )

    def sources(self) -> list[str]:
        """The sources with verdicts in this store."""
        return [
            r[0] for r in self.store.database.read("SELECT DISTINCT source FROM source_verdicts")
        ]

    def verdicts(self, source: str, task: str, doc_id: int) -> dict[int, bool]:
        """One problem's verdicts from ``source``, by sample index."""
        rows = self.store.database.read(
            "SELECT sample_idx, correct FROM source_verdicts "
            "WHERE source = ? AND task = ? AND doc_id = ?",
            (source, task, doc_id),
        )
        return {idx: bool(ok) for idx, ok in rows}
