"""The verdict cache: each distinct (task, checker, target, answer) judged once, ever.

Keys are digests of the checker's spec and of the target and answer keys, so a verdict is
reused only for the same answer to the same target under the same checker; a checker
whose rules change changes its target keys. Verdicts keep their status and details.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import Verdict


class Database(Protocol):
    """What the table needs of its file: a run store, or a ``VerdictFile``."""

    path: Path
    db: sqlite3.Connection
    read_only: bool

    def write(self, action: Callable[[], object]) -> None: ...

    def read(self, sql: str, args: Sequence[object] = ()) -> list[Any]: ...


Pair = tuple[str, str]  # (target key, answer key)

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    task TEXT NOT NULL, verifier TEXT NOT NULL, target TEXT NOT NULL, answer TEXT NOT NULL,
    correct INTEGER NOT NULL, status TEXT NOT NULL DEFAULT '', details TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (task, verifier, target, answer)
) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 400  # pairs per query (SQLite's bound-parameter limit)


def digest(text: str) -> str:
    """A short, stable key for any text (undecodable surrogates included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class VerdictTable:
    """The ``verdicts`` table of one store (or verdict file)."""

    def __init__(self, store: Database) -> None:
        self.store = store

    def known(self, task: str, verifier: str, pairs: Sequence[Pair]) -> dict[Pair, Verdict]:
        """Cached verdicts of (target, answer) pairs; pairs never judged are left out."""
        keyed = {(digest(t), digest(a)): (t, a) for t, a in pairs}
        keys = list(keyed)
        found: dict[Pair, Verdict] = {}
        columns = self._columns()
        if not columns:
            return found
        extra = ", status, details" if "status" in columns else ", '', '{}'"
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            where = " OR ".join(["(target = ? AND answer = ?)"] * len(chunk))
            rows = self.store.read(
                f"SELECT target, answer, correct{extra} FROM verdicts "
                f"WHERE task = ? AND verifier = ? AND ({where})",
                (task, verifier, *(x for key in chunk for x in key)),
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
            return Verdict(bool(correct), status or ("correct" if correct else "wrong"), parsed)
        path = self.store.path
        raise MonkeysError(
            f"{path}: a cached verdict of {task} is damaged ({damage}); clear the cache with "
            f"sqlite3 {path} 'DELETE FROM verdicts' and run the command again"
        )

    def add(self, task: str, verifier: str, verdicts: Mapping[Pair, Verdict]) -> None:
        """Cache final verdicts of (target, answer) pairs (a pair judged twice keeps the first)."""
        rows = [
            (task, verifier, digest(t), digest(a), int(v.correct), v.status, _details(v))
            for (t, a), v in verdicts.items()
            if v.final
        ]
        if not rows or self.store.read_only:  # a read-only run still scores, caching nothing
            return

        def insert() -> None:
            db = self.store.db
            db.execute(SCHEMA)
            if "status" not in self._columns():  # a table from before verdicts had details
                db.execute("ALTER TABLE verdicts ADD COLUMN status TEXT NOT NULL DEFAULT ''")
                db.execute("ALTER TABLE verdicts ADD COLUMN details TEXT NOT NULL DEFAULT '{}'")
            db.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

        self.store.write(insert)

    def _columns(self) -> set[str]:
        try:
            return {row[1] for row in self.store.read("PRAGMA table_info(verdicts)")}
        except sqlite3.DatabaseError:
            return set()


def _details(verdict: Verdict) -> str:
    return json.dumps(dict(verdict.details), sort_keys=True, default=str)


class VerdictFile:
    """A verdict cache of its own, for ``verify`` without a run store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read_only = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(SCHEMA)
        except (OSError, sqlite3.DatabaseError) as err:
            raise MonkeysError(
                f"cannot use the verdict cache {path} ({err}); set MONKEYS_CACHE_DIR to a "
                "writable directory"
            ) from None
        self.table = VerdictTable(self)

    def read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        return self.db.execute(sql, args).fetchall()

    def write(self, action: Callable[[], object]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            action()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
