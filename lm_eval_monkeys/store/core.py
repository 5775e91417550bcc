"""The run store: every sample of a run, written as produced, in one SQLite file (WAL).

``RUN_DIR/samples.sqlite`` holds one row per (task, doc, sample index) with its token
counts, the prompt hash and the document, plus the run's configuration (model, model
args, seed). It is the source of truth: resume and extend read it to skip samples that
exist; rescore and export read it without a model. A lock file keeps a second writer of
samples out. A shard's store also records its shard and each problem's requested sample
count (what merging checks). Tables of their own: each task's run record
(``records``), the verdict cache (``verdicts``), reward-model scores (``rewards``) and
an imported run's own verdicts (``source_verdicts``). Every table is created with the
file; the connection is a ``Database`` (database.py).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.database import Database
from lm_eval_monkeys.store.reward_table import SCHEMA as REWARDS_SCHEMA
from lm_eval_monkeys.store.reward_table import RewardTable
from lm_eval_monkeys.store.run_records import SCHEMA as RECORDS_SCHEMA
from lm_eval_monkeys.store.run_records import RecordTable, changed_keys
from lm_eval_monkeys.store.source_verdicts import SCHEMA as SOURCE_VERDICTS_SCHEMA
from lm_eval_monkeys.store.source_verdicts import SourceVerdictTable
from lm_eval_monkeys.store.verdicts import SCHEMA as VERDICTS_SCHEMA
from lm_eval_monkeys.store.verdicts import VerdictTable

STORE_FILE = "samples.sqlite"
LOCK_FILE = "samples.lock"

_SAMPLE_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE docs (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, doc TEXT NOT NULL,
    prompt_hash TEXT NOT NULL, gen_kwargs TEXT NOT NULL,
    PRIMARY KEY (task, doc_id)
) WITHOUT ROWID;
CREATE TABLE samples (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    completion TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (task, doc_id, sample_idx)
) WITHOUT ROWID;
CREATE TABLE requested (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, repeats INTEGER NOT NULL,
    PRIMARY KEY (task, doc_id)
) WITHOUT ROWID;
"""
SCHEMA = _SAMPLE_TABLES + RECORDS_SCHEMA + VERDICTS_SCHEMA + REWARDS_SCHEMA + SOURCE_VERDICTS_SCHEMA


@dataclass(frozen=True)
class Sample:
    """One generated completion and its token counts (the prompt counted once per doc)."""

    sample_idx: int
    completion: str
    prompt_tokens: int
    completion_tokens: int


def prompt_hash(context: str, gen_kwargs: dict[str, Any]) -> str:
    payload = json.dumps([context, gen_kwargs], sort_keys=True, default=str)
    return short_digest(payload)


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
            self.database = Database(
                self.path,
                SCHEMA,
                kind="run store",
                writable_fix="choose a writable --output_path",
                outdated_fix="pass the --output_path of a run made with this version, or "
                "export it with the version that wrote it",
                create=writer,
                # WAL readers need to create -shm/-wal files; in a read-only directory the
                # file can only be read as an immutable snapshot (no writer may be running).
                snapshot=not writer and not os.access(self.run_dir, os.W_OK),
            )
        except MonkeysError:
            self.close()
            raise
        self.records = RecordTable(self)
        self.verdicts = VerdictTable(self.database)
        self.rewards = RewardTable(self)
        self.source_verdicts = SourceVerdictTable(self)

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- configuration -------------------------------------------------------------------

    def bind_config(self, config: dict[str, Any]) -> None:
        """Record the run's configuration, or refuse if the store holds another one."""
        stored = self.meta("config")
        if stored is None:
            self.database.write(lambda: self.set_meta("config", json.dumps(config, sort_keys=True)))
            return
        previous = self._json(stored, "the run configuration")
        if changed := changed_keys(previous, config):
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
            for task, doc_id, phash in self.database.read(
                "SELECT task, doc_id, prompt_hash FROM docs"
            )
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
            self.database.write(
                lambda: self.database.connection.executemany(
                    "INSERT INTO docs VALUES (?, ?, ?, ?, ?)", new
                )
            )

    def add(self, rows: Iterable[tuple[str, int, Sample]]) -> None:
        """Commit (task, doc_id, sample) rows in one transaction; an existing index is kept."""
        values = [
            (task, doc_id, s.sample_idx, s.completion, s.prompt_tokens, s.completion_tokens)
            for task, doc_id, s in rows
        ]
        self.database.write(
            lambda: self.database.connection.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?)", values
            )
        )

    # -- reading -------------------------------------------------------------------------

    def existing_indices(self, task: str, doc_id: int) -> set[int]:
        rows = self.database.read(
            "SELECT sample_idx FROM samples WHERE task = ? AND doc_id = ?", (task, doc_id)
        )
        return {r[0] for r in rows}

    def completions(
        self, task: str, doc_id: int, limit: int | None = None, start: int = 0
    ) -> list[str]:
        """The completions of one problem in sample order: indices ``start`` up to ``limit``
        (all of them by default)."""
        rows = self.database.read(
            "SELECT completion FROM samples WHERE task = ? AND doc_id = ? "
            "AND sample_idx >= ? AND sample_idx < ? ORDER BY sample_idx",
            (task, doc_id, start, limit if limit is not None else 2**62),
        )
        return [r[0] for r in rows]

    def tasks(self) -> list[str]:
        return [r[0] for r in self.database.read("SELECT DISTINCT task FROM docs ORDER BY task")]

    def docs(self, task: str) -> Iterator[tuple[int, dict]]:
        rows = self.database.read(
            "SELECT doc_id, doc FROM docs WHERE task = ? ORDER BY doc_id", (task,)
        )
        for doc_id, doc in rows:
            yield doc_id, self._json(doc, f"{task} doc {doc_id}")

    def samples(self, task: str, doc_id: int) -> list[Sample]:
        """One problem's samples in sample order."""
        rows = self.database.read(
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
        self.database.write(
            lambda: self.database.connection.executemany(
                "INSERT INTO requested VALUES (?, ?, ?) ON CONFLICT (task, doc_id) "
                "DO UPDATE SET repeats = MAX(repeats, excluded.repeats)",
                rows,
            )
        )

    def close(self) -> None:
        if hasattr(self, "database"):
            self.database.close()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # -- internals -----------------------------------------------------------------------

    def _take_lock(self) -> None:
        self._lock_handle = _writer_lock(self.run_dir)

    def _json(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except (json.JSONDecodeError, TypeError):
            raise MonkeysError(
                f"{self.path}: {what} is damaged (not JSON); restore the store from a copy "
                "or rerun into a new --output_path"
            ) from None

    def meta(self, key: str) -> str | None:
        rows = self.database.read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.database.connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def check_writer(run_dir: Path) -> None:
    """Refuse, as opening the store to write would, a run directory that cannot be
    written or that another process is writing (the lock is taken and let go)."""
    _writer_lock(run_dir).close()


def _writer_lock(run_dir: Path) -> Any:
    """The run directory's lock file, locked (created with the directory if need be)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a+")
    except OSError as err:
        raise MonkeysError(
            f"cannot write the run directory {run_dir}: {err.strerror}; "
            "choose a writable --output_path"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise MonkeysError(
            f"{run_dir} is being written by {holder}; wait for it to finish "
            "or use another --output_path"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
