"""The run store: every sample of a run, written as produced, in one SQLite file (WAL).

``RUN_DIR/samples.sqlite`` holds one row per (task, doc, sample index) with its token
counts, the prompt hash and the document, plus the run's configuration (model, model
args, seed). It is the source of truth: resume and extend read it to skip samples that
exist; rescore and export read it without a model. A lock file keeps a second writer of
samples out. A shard's store also records its shard and each problem's requested sample
count (what merging checks). Tables of their own: each task's run record
(``records``), the verdict cache (``verdicts``), reward-model scores (``rewards``) and
an imported run's own verdicts (``source_verdicts``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.reward_table import RewardTable
from lm_eval_monkeys.store.run_records import RecordTable
from lm_eval_monkeys.store.source_verdicts import SourceVerdictTable
from lm_eval_monkeys.store.verdicts import VerdictTable

STORE_FILE = "samples.sqlite"
LOCK_FILE = "samples.lock"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, doc TEXT NOT NULL,
    prompt_hash TEXT NOT NULL, gen_kwargs TEXT NOT NULL,
    PRIMARY KEY (task, doc_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    completion TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (task, doc_id, sample_idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requested (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, repeats INTEGER NOT NULL,
    PRIMARY KEY (task, doc_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Sample:
    """One generated completion and its token counts (the prompt counted once per doc)."""

    sample_idx: int
    completion: str
    prompt_tokens: int
    completion_tokens: int


def prompt_hash(context: str, gen_kwargs: dict[str, Any]) -> str:
    payload = json.dumps([context, gen_kwargs], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class SampleStore:
    """Open (or create) the store of one run directory; a context manager that closes it.

    ``writer=True`` takes the lock and may add samples; a reader (rescore, export, the
    task scoring a run) only reads samples but may still fill the verdict cache. A store
    in a read-only directory opens as an immutable snapshot: readable, nothing cached.
    """

    def __init__(self, run_dir: str | Path, *, writer: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE
        self._lock_handle: Any = None
        self.read_only = False
        if writer:
            self._take_lock()
        elif not self.path.is_file():
            raise MonkeysError(
                f"{self.run_dir} holds no sample store ({STORE_FILE}); pass the --output_path "
                "of a run made with a monkeys-* model"
            )
        elif self.path.stat().st_size == 0:
            raise MonkeysError(
                f"{self.path} is empty (0 bytes): the run wrote nothing; delete it and rerun"
            )
        try:
            self.db = self._connect(writer)
            if writer:
                self.db.executescript(_SCHEMA)
            else:
                self._check_tables()
            self._check_schema()
        except sqlite3.DatabaseError as err:
            self.close()
            raise store_error(self.path, err) from None
        except MonkeysError:
            self.close()
            raise
        self.records = RecordTable(self)
        self.verdicts = VerdictTable(self)
        self.rewards = RewardTable(self)
        self.source_verdicts = SourceVerdictTable(self)

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connect(self, writer: bool) -> sqlite3.Connection:
        if not writer and not os.access(self.run_dir, os.W_OK):
            # WAL readers need to create -shm/-wal files; in a read-only directory the
            # file can only be read as an immutable snapshot (no writer may be running).
            self.read_only = True
            uri = f"file:{quote(str(self.path.resolve()))}?immutable=1"
            return sqlite3.connect(uri, uri=True, isolation_level=None)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives kill -9
        return db

    def _check_tables(self) -> None:
        names = {r[0] for r in self.read("SELECT name FROM sqlite_master")}
        missing = {"meta", "docs", "samples"} - names
        if missing:
            raise MonkeysError(
                f"{self.path} is not a run store (no {', '.join(sorted(missing))} table); "
                "pass the --output_path of a run made with a monkeys-* model"
            )

    # -- configuration -------------------------------------------------------------------

    def bind_config(self, config: dict[str, Any]) -> None:
        """Record the run's configuration, or refuse if the store holds another one."""
        stored = self.meta("config")
        if stored is None:
            self.write(lambda: self.set_meta("config", json.dumps(config, sort_keys=True)))
            return
        previous = self._json(stored, "the run configuration")
        if previous != config:
            changed = sorted(
                k for k in previous.keys() | config.keys() if previous.get(k) != config.get(k)
            )
            raise MonkeysError(
                f"{self.run_dir} holds samples from a different run configuration "
                f"(changed: {', '.join(changed)}); use a new --output_path to start a new run"
            )

    # -- writing -------------------------------------------------------------------------

    def register_docs(self, docs: list[tuple[str, int, dict, str, dict]]) -> None:
        """Record (task, doc_id, doc, prompt hash, gen kwargs) of the problems a run covers,
        in one transaction; refuse a changed prompt or sampling setting for a known one."""
        known = dict(
            ((task, doc_id), phash)
            for task, doc_id, phash in self.read("SELECT task, doc_id, prompt_hash FROM docs")
        )
        for task, doc_id, _, phash, _ in docs:
            if known.get((task, doc_id), phash) != phash:
                raise MonkeysError(
                    f"{self.run_dir}: the prompt or sampling parameters of {task} doc {doc_id} "
                    "differ from the stored run's; use a new --output_path to start a new run"
                )
        new = [
            (
                task,
                doc_id,
                json.dumps(doc, default=str),
                phash,
                json.dumps(gen_kwargs, sort_keys=True, default=str),
            )
            for task, doc_id, doc, phash, gen_kwargs in docs
            if (task, doc_id) not in known
        ]
        if new:
            self.write(lambda: self.db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?)", new))

    def add(self, rows: Iterable[tuple[str, int, Sample]]) -> None:
        """Commit (task, doc_id, sample) rows in one transaction; an existing index is kept."""
        values = [
            (task, doc_id, s.sample_idx, s.completion, s.prompt_tokens, s.completion_tokens)
            for task, doc_id, s in rows
        ]
        self.write(
            lambda: self.db.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?)", values
            )
        )

    # -- reading -------------------------------------------------------------------------

    def existing_indices(self, task: str, doc_id: int) -> set[int]:
        rows = self.read(
            "SELECT sample_idx FROM samples WHERE task = ? AND doc_id = ?", (task, doc_id)
        )
        return {r[0] for r in rows}

    def completions(self, task: str, doc_id: int, limit: int | None = None) -> list[str]:
        """The completions of one problem in sample order (the first ``limit`` if given)."""
        rows = self.read(
            "SELECT completion FROM samples WHERE task = ? AND doc_id = ? AND sample_idx < ? "
            "ORDER BY sample_idx",
            (task, doc_id, limit if limit is not None else 2**62),
        )
        return [r[0] for r in rows]

    def tasks(self) -> list[str]:
        return [r[0] for r in self.read("SELECT DISTINCT task FROM docs ORDER BY task")]

    def docs(self, task: str) -> Iterator[tuple[int, dict]]:
        rows = self.read("SELECT doc_id, doc FROM docs WHERE task = ? ORDER BY doc_id", (task,))
        for doc_id, doc in rows:
            yield doc_id, self._json(doc, f"{task} doc {doc_id}")

    def samples(self, task: str, doc_id: int) -> list[Sample]:
        """One problem's samples in sample order."""
        rows = self.read(
            "SELECT sample_idx, completion, prompt_tokens, completion_tokens FROM samples "
            "WHERE task = ? AND doc_id = ? ORDER BY sample_idx",
            (task, doc_id),
        )
        return [Sample(*r) for r in rows]

    # -- requested counts -------------------------------------------------------------

    def config(self) -> dict[str, Any] | None:
        stored = self.meta("config")
        return None if stored is None else self._json(stored, "the run configuration")

    def record_requested(self, rows: list[tuple[str, int, int]]) -> None:
        """Record how many samples (task, doc_id, repeats) a run asked for (the largest so far)."""
        self.write(
            lambda: self.db.executemany(
                "INSERT INTO requested VALUES (?, ?, ?) ON CONFLICT (task, doc_id) "
                "DO UPDATE SET repeats = MAX(repeats, excluded.repeats)",
                rows,
            )
        )

    def close(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # -- internals -----------------------------------------------------------------------

    def _take_lock(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.run_dir / LOCK_FILE, "a+")
        except OSError as err:
            raise MonkeysError(
                f"cannot write the run directory {self.run_dir}: {err.strerror}; "
                "choose a writable --output_path"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise MonkeysError(
                f"{self.run_dir} is being written by {holder}; wait for it to finish "
                "or use another --output_path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock_handle = handle

    def _check_schema(self) -> None:
        version = self.meta("schema_version")
        if version is None:
            self.write(lambda: self.set_meta("schema_version", SCHEMA_VERSION))
        elif version != SCHEMA_VERSION:
            raise MonkeysError(
                f"{self.path} has store schema {version}, this version reads {SCHEMA_VERSION}; "
                "export it with the version that wrote it"
            )

    def _json(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except (json.JSONDecodeError, TypeError):
            raise MonkeysError(
                f"{self.path}: {what} is damaged (not JSON); restore the store from a copy "
                "or rerun into a new --output_path"
            ) from None

    def meta(self, key: str) -> str | None:
        try:
            rows = self.read("SELECT value FROM meta WHERE key = ?", (key,))
        except sqlite3.OperationalError:  # a reader on a store without tables yet
            return None
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """The rows of a query; a damaged file is a one-line error (a missing table is
        left to the caller, for stores written before that table existed)."""
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as err:
            if str(err).startswith("no such table"):
                raise
            raise store_error(self.path, err) from None
        except sqlite3.DatabaseError as err:
            raise store_error(self.path, err) from None

    def write(self, action: Callable[[], object]) -> None:
        """Run ``action`` (statements on ``self.db``) in one write transaction."""
        with self._transaction():
            action()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise store_error(self.path, err) from None


def store_error(path: Path, err: sqlite3.DatabaseError) -> MonkeysError:
    """The one-line error for a failed SQLite operation on ``path``, with its fix."""
    message = str(err)
    if "full" in message:
        return MonkeysError(
            f"disk full while writing {path}; every sample committed so far is kept: "
            "free space and rerun the same command to resume"
        )
    if "readonly" in message or "read-only" in message or "unable to open" in message:
        return MonkeysError(f"cannot write {path} ({message}); choose a writable --output_path")
    if "not a database" in message or "malformed" in message or "corrupt" in message:
        return MonkeysError(
            f"{path} is corrupted ({message}); move it aside to start the run afresh, "
            "or restore it from a copy"
        )
    return MonkeysError(f"sample store {path}: {message}")
