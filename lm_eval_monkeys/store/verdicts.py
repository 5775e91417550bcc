"""The verdict cache: each distinct (task, checker, target, answer) judged once, ever.

Rows are keyed by the checker spec and digests of the target and answer keys, so a verdict is
reused only for the same answer to the same target under the same checker; a checker
whose rules change changes its target keys. Verdicts keep their status and details.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.database import SCHEMA_VERSION, Database
from lm_eval_monkeys.verifiers.base import Verdict

# verify's own cache file, named by its schema: a file of another version is left alone.
VERDICT_FILE = f"verdicts-schema{SCHEMA_VERSION}.sqlite"

Pair = tuple[str, str]  # (target key, answer key)

SCHEMA = """
CREATE TABLE verdicts (
    task TEXT NOT NULL, checker_spec TEXT NOT NULL, target TEXT NOT NULL, answer TEXT NOT NULL,
    correct INTEGER NOT NULL, status TEXT NOT NULL, details TEXT NOT NULL,
    PRIMARY KEY (task, checker_spec, target, answer)
) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 400  # pairs per query (SQLite's bound-parameter limit)


class VerdictTable:
    """The ``verdicts`` table of a database: a run store's, or a ``VerdictFile``'s."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def known(self, task: str, checker_spec: str, pairs: Sequence[Pair]) -> dict[Pair, Verdict]:
        """Cached verdicts of (target, answer) pairs; pairs never judged are left out."""
        keyed = {(short_digest(t), short_digest(a)): (t, a) for t, a in pairs}
        keys = list(keyed)
        found: dict[Pair, Verdict] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            where = " OR ".join(["(target = ? AND answer = ?)"] * len(chunk))
            rows = self.database.read(
                "SELECT target, answer, correct, status, details FROM verdicts "
                f"WHERE task = ? AND checker_spec = ? AND ({where})",
                (task, checker_spec, *(x for key in chunk for x in key)),
            )
            for target, answer, *row in rows:
                found[keyed[(target, answer)]] = self._verdict(task, *row)
        return found

    def _verdict(self, task: str, correct: object, status: object, details: object) -> Verdict:
        """A cached row as a verdict; a damaged row is a one-line error, never a guess."""
        try:
            parsed = json.loads(details) if isinstance(details, str) else None
        except json.JSONDecodeError:
            parsed = None
        if correct not in (0, 1):
            damage = f"correct is {correct!r}, not 0 or 1"
        elif not isinstance(status, str) or not isinstance(parsed, dict):
            damage = "its status or details are not text and a JSON object"
        else:
            return Verdict(bool(correct), status, parsed)
        path = self.database.path
        raise MonkeysError(
            f"{path}: a cached verdict of {task} is damaged ({damage}); clear the cache with "
            f"sqlite3 {path} 'DELETE FROM verdicts' and run the command again"
        )

    def add(self, task: str, checker_spec: str, verdicts: Mapping[Pair, Verdict]) -> None:
        """Cache final verdicts of (target, answer) pairs (a pair judged twice keeps the first)."""
        rows = [
            (
                task,
                checker_spec,
                short_digest(t),
                short_digest(a),
                int(v.correct),
                v.status,
                _details(v),
            )
            for (t, a), v in verdicts.items()
            if v.final
        ]
        if not rows or self.database.read_only:  # a read-only run still scores, caching nothing
            return
        self.database.write(
            lambda: self.database.connection.executemany(
                "INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
        )


def _details(verdict: Verdict) -> str:
    return json.dumps(dict(verdict.details), sort_keys=True, default=str)


class VerdictFile:
    """A verdict cache of its own, for ``verify`` without a run store."""

    def __init__(self, path: Path) -> None:
        fix = "set MONKEYS_CACHE_DIR to a writable directory"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MonkeysError(f"cannot use the verdict cache {path} ({err}); {fix}") from None
        self.database = Database(
            path,
            SCHEMA,
            kind="verdict cache",
            writable_fix=fix,
            outdated_fix=f"delete it (a cache: its verdicts are judged again) or {fix}",
        )
        self.table = VerdictTable(self.database)

    def close(self) -> None:
        self.database.close()
