"""One SQLite file: its connection (WAL), schema version, transactions and one-line errors.

Both the run store and the verdict file (``verify``'s cache) are a ``Database``. Every
table of a file is created with the file, in one transaction, and the file's schema
version (SQLite's ``user_version``) is set with them; a file of another version is
refused with one line, so no reader ever meets a missing table or column.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lm_eval_monkeys.errors import MonkeysError

# Version 2: every table created with the file (version 1 created some lazily and had no
# status or details in its verdicts; 0 is an empty file, or one of another program).
SCHEMA_VERSION = 2


class Database:
    """An open SQLite file of ``kind`` (e.g. "run store"), created with ``schema`` when new.

    ``snapshot=True`` opens it as an immutable snapshot (for a directory without write
    access, where WAL readers cannot create their -shm file; no writer may be running);
    ``create=False`` refuses a file without tables instead of creating them. ``writable_fix``
    and ``outdated_fix`` say what a user does about an unwritable or outdated file.
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        kind: str,
        writable_fix: str,
        outdated_fix: str,
        create: bool = True,
        snapshot: bool = False,
    ) -> None:
        self.path = path
        self.kind = kind
        self.writable_fix = writable_fix
        self.read_only = snapshot
        try:
            self.connection = self._connect()
        except sqlite3.DatabaseError as err:
            raise self.error(err) from None
        try:
            if create and not snapshot:
                self.write(lambda: self._create_tables(schema))
            self._check_schema(outdated_fix)
            if not snapshot:  # only now: switching to WAL would rewrite a refused file
                self.read("PRAGMA journal_mode=WAL")
                self.read("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives kill -9
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            uri = f"file:{quote(str(self.path.resolve()))}?immutable=1"
            return sqlite3.connect(uri, uri=True, isolation_level=None)
        return sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)

    def _tables(self) -> list[Any]:
        return self.read("SELECT name FROM sqlite_master WHERE type = 'table'")

    def _create_tables(self, schema: str) -> None:
        """In a file without tables (a new one), every table and the schema version; in the
        write transaction, so two processes creating one file create it once."""
        if self._tables():
            return
        for statement in schema.split(";"):
            if statement.strip():
                self.connection.execute(statement)
        self.connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, outdated_fix: str) -> None:
        tables = self._tables()
        version = self.read("PRAGMA user_version")[0][0]
        if not tables:
            raise MonkeysError(
                f"{self.path} holds no tables: it is not a {self.kind}; {outdated_fix}"
            )
        if version != SCHEMA_VERSION:
            raise MonkeysError(
                f"{self.path} is not a {self.kind} of this version (schema {version}, this "
                f"version reads {SCHEMA_VERSION}): it was written by an earlier version or by "
                f"another program; {outdated_fix}"
            )

    def read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """The rows of a query; any SQLite failure is a one-line error."""
        try:
            return self.connection.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:
            raise self.error(err) from None

    def write(self, action: Callable[[], object]) -> None:
        """Run ``action`` (statements on ``self.connection``) in one write transaction."""
        with self._transaction():
            action()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise self.error(err) from None

    @contextmanager
    def attached(self, other: Path) -> Iterator[None]:
        """``other``'s file readable as schema ``other`` while the block runs."""
        try:
            self.connection.execute("ATTACH DATABASE ? AS other", (str(other),))
        except sqlite3.DatabaseError as err:
            raise database_error(other, err, self.writable_fix) from None
        try:
            yield
        finally:
            self.connection.execute("DETACH DATABASE other")

    def error(self, err: sqlite3.DatabaseError) -> MonkeysError:
        return database_error(self.path, err, self.writable_fix)

    def close(self) -> None:
        if hasattr(self, "connection"):
            self.connection.close()


def database_error(path: Path, err: sqlite3.DatabaseError, writable_fix: str) -> MonkeysError:
    """The one-line error for a failed SQLite operation on ``path``, with its fix."""
    message = str(err)
    if "full" in message:
        return MonkeysError(
            f"disk full while writing {path}; everything committed so far is kept: "
            "free space and rerun the same command to resume"
        )
    if "readonly" in message or "read-only" in message or "unable to open" in message:
        return MonkeysError(f"cannot write {path} ({message}); {writable_fix}")
    if "not a database" in message or "malformed" in message or "corrupt" in message:
        return MonkeysError(
            f"{path} is corrupted ({message}); move it aside to start afresh, "
            "or restore it from a copy"
        )
    return MonkeysError(f"{path}: {message}")
