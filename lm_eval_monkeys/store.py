"""The run store: every sample of a run, written as produced, in one SQLite file (WAL).

``RUN_DIR/samples.sqlite`` holds one row per (task, doc, sample index) with its token
counts, the prompt hash and the document, plus the run's configuration (model, model
args, seed). It is the source of truth: resume and extend read it to skip samples that
exist; rescore and export read it without a model. A lock file keeps a second writer out.
A shard's store also records its shard and each problem's requested sample count (what
merging checks), and any verification backend caches verdicts in its ``verdicts`` table.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError

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
CREATE TABLE IF NOT EXISTS rewards (
    model TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    reward REAL NOT NULL,
    PRIMARY KEY (model, task, doc_id, sample_idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requested (
    task TEXT NOT NULL, doc_id INTEGER NOT NULL, repeats INTEGER NOT NULL,
    PRIMARY KEY (task, doc_id)
) WITHOUT ROWID;
"""
# Verdicts of distinct (target, answer) pairs by hash: a cache any verification backend
# fills and reads, created on first use (also by readers such as rescore).
_VERDICTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    task TEXT NOT NULL, verifier TEXT NOT NULL, target TEXT NOT NULL, answer TEXT NOT NULL,
    correct INTEGER NOT NULL, PRIMARY KEY (task, verifier, target, answer)
) WITHOUT ROWID;
"""
# Tables that merging shards copies, with the columns that must agree between copies.
_MERGED = {
    "docs": (("task", "doc_id"), ("doc", "prompt_hash", "gen_kwargs")),
    "samples": (
        ("task", "doc_id", "sample_idx"),
        ("completion", "prompt_tokens", "completion_tokens"),
    ),
}


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
    """Open (or create) the store of one run directory."""

    def __init__(self, run_dir: str | Path, *, writer: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE
        self._lock_handle = None
        if writer:
            self._take_lock()
        elif not self.path.is_file():
            raise MonkeysError(
                f"{self.run_dir} holds no sample store ({STORE_FILE}); pass the --output_path "
                "of a run made with a monkeys-* model"
            )
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives kill -9
            if writer:
                self.db.executescript(_SCHEMA)
            self._check_schema()
        except sqlite3.DatabaseError as err:
            raise _store_error(self.path, err) from None

    # -- configuration -------------------------------------------------------------------

    def bind_config(self, config: dict[str, Any]) -> None:
        """Record the run's configuration, or refuse if the store holds another one."""
        stored = self._meta("config")
        if stored is None:
            self._write(lambda: self._set_meta("config", json.dumps(config, sort_keys=True)))
            return
        previous = json.loads(stored)
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
            for task, doc_id, phash in self.db.execute("SELECT task, doc_id, prompt_hash FROM docs")
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
            self._write(lambda: self.db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?)", new))

    def add(self, rows: Iterable[tuple[str, int, Sample]]) -> None:
        """Commit (task, doc_id, sample) rows in one transaction; an existing index is kept."""
        values = [
            (task, doc_id, s.sample_idx, s.completion, s.prompt_tokens, s.completion_tokens)
            for task, doc_id, s in rows
        ]
        self._write(
            lambda: self.db.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?)", values
            )
        )

    # -- reading -------------------------------------------------------------------------

    def existing_indices(self, task: str, doc_id: int) -> set[int]:
        rows = self.db.execute(
            "SELECT sample_idx FROM samples WHERE task = ? AND doc_id = ?", (task, doc_id)
        )
        return {r[0] for r in rows}

    def completions(self, task: str, doc_id: int, limit: int | None = None) -> list[str]:
        """The completions of one problem in sample order (the first ``limit`` if given)."""
        rows = self.db.execute(
            "SELECT completion FROM samples WHERE task = ? AND doc_id = ? AND sample_idx < ? "
            "ORDER BY sample_idx",
            (task, doc_id, limit if limit is not None else 2**62),
        )
        return [r[0] for r in rows]

    def tasks(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT task FROM docs ORDER BY task")]

    def docs(self, task: str) -> Iterator[tuple[int, dict]]:
        rows = self.db.execute(
            "SELECT doc_id, doc FROM docs WHERE task = ? ORDER BY doc_id", (task,)
        )
        for doc_id, doc in rows:
            yield doc_id, json.loads(doc)

    def samples(self, task: str, doc_id: int) -> list[Sample]:
        rows = self.db.execute(
            "SELECT sample_idx, completion, prompt_tokens, completion_tokens FROM samples "
            "WHERE task = ? AND doc_id = ? ORDER BY sample_idx",
            (task, doc_id),
        )
        return [Sample(*r) for r in rows]

    # -- shards, requested counts, merging ------------------------------------------------

    def config(self) -> dict[str, Any] | None:
        stored = self._meta("config")
        return None if stored is None else json.loads(stored)

    def shard(self) -> str | None:
        """The ``i/N`` shard this run generates, None for a whole run."""
        return self._meta("shard")

    def bind_shard(self, shard: str | None) -> None:
        """Record the run's shard, or refuse a rerun with another one (or with none)."""
        stored = self.shard()
        has_samples = self.db.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is not None
        if stored == shard or (stored is None and not has_samples):
            if shard is not None and stored is None:
                self._write(lambda: self._set_meta("shard", shard))
            return
        held = f"shard {stored}" if stored else "a whole (unsharded) run"
        wanted = f"--shard {shard}" if shard else "a run without --shard"
        raise MonkeysError(f"{self.run_dir} holds {held}; use a new --output_path for {wanted}")

    def record_requested(self, rows: list[tuple[str, int, int]]) -> None:
        """Record how many samples (task, doc_id, repeats) a run asked for (the largest so far)."""
        self._write(
            lambda: self.db.executemany(
                "INSERT INTO requested VALUES (?, ?, ?) ON CONFLICT (task, doc_id) "
                "DO UPDATE SET repeats = MAX(repeats, excluded.repeats)",
                rows,
            )
        )

    def incomplete(self, limit: int = 3) -> tuple[int, list[tuple[str, int, int, int]]]:
        """Problems holding fewer samples than requested: their count and the first few
        as (task, doc_id, held, requested); requested is 0 where it was never recorded
        (a run stopped between registering its problems and recording their counts)."""
        query = (
            "SELECT d.task, d.doc_id, COUNT(s.sample_idx), COALESCE(r.repeats, 0) FROM docs d "
            "LEFT JOIN requested r ON r.task = d.task AND r.doc_id = d.doc_id "
            "LEFT JOIN samples s ON s.task = d.task AND s.doc_id = d.doc_id "
            "AND s.sample_idx < r.repeats GROUP BY d.task, d.doc_id "
            "HAVING r.repeats IS NULL OR COUNT(s.sample_idx) < r.repeats "
            "ORDER BY d.task, d.doc_id"
        )
        try:
            rows = self.db.execute(query).fetchall()
        except sqlite3.OperationalError:  # a store written before counts were recorded
            return 0, []
        return len(rows), rows[:limit]

    def doc_ids(self) -> dict[str, list[int]]:
        """Every task's registered doc ids."""
        found: dict[str, list[int]] = {}
        for task, doc_id in self.db.execute("SELECT task, doc_id FROM docs ORDER BY task, doc_id"):
            found.setdefault(task, []).append(doc_id)
        return found

    def requested(self) -> dict[str, set[int]]:
        """The distinct requested sample counts of each task."""
        found: dict[str, set[int]] = {}
        try:
            rows = self.db.execute("SELECT DISTINCT task, repeats FROM requested").fetchall()
        except sqlite3.OperationalError:
            rows = []
        for task, repeats in rows:
            found.setdefault(task, set()).add(repeats)
        return found

    def differences(self, other: Path, limit: int = 3) -> list[str]:
        """Rows that ``other``'s store holds under the same key with different content."""
        found: list[str] = []
        with self._attached(other):
            for table, (keys, values) in _MERGED.items():
                differs = " OR ".join(f"m.{v} IS NOT o.{v}" for v in values)
                rows = self.db.execute(
                    f"SELECT {', '.join('m.' + k for k in keys)} FROM other.{table} o "
                    f"JOIN main.{table} m USING ({', '.join(keys)}) WHERE {differs} LIMIT ?",
                    (limit - len(found),),
                ).fetchall()
                found += [f"{table} " + " ".join(map(str, row)) for row in rows]
                if len(found) >= limit:
                    break
        return found

    def absorb(self, other: Path) -> None:
        """Copy ``other``'s docs, samples, requested counts, verdicts and rewards in one
        transaction; rows already held are kept (callers check ``differences`` first)."""
        with self._attached(other):
            present = {r[0] for r in self.db.execute("SELECT name FROM other.sqlite_master")}

            def copy() -> None:
                self.db.execute(_VERDICTS_SCHEMA)
                for table in ("docs", "samples", "verdicts", "rewards"):
                    if table in present:
                        self.db.execute(
                            f"INSERT OR IGNORE INTO main.{table} SELECT * FROM other.{table}"
                        )
                if "requested" in present:
                    self.db.execute(
                        "INSERT INTO main.requested SELECT * FROM other.requested WHERE true "
                        "ON CONFLICT (task, doc_id) DO UPDATE "
                        "SET repeats = MAX(repeats, excluded.repeats)"
                    )

            self._write(copy)

    @contextmanager
    def _attached(self, other: Path) -> Iterator[None]:
        try:
            self.db.execute("ATTACH DATABASE ? AS other", (str(Path(other) / STORE_FILE),))
        except sqlite3.DatabaseError as err:
            raise _store_error(Path(other) / STORE_FILE, err) from None
        try:
            yield
        finally:
            self.db.execute("DETACH DATABASE other")

    # -- verdict cache ---------------------------------------------------------------------

    def known_verdicts(
        self, task: str, verifier: str, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], bool]:
        """Cached verdicts of (target, answer) pairs; pairs never verified are left out."""
        keyed = {(_digest(t), _digest(a)): (t, a) for t, a in pairs}
        found: dict[tuple[str, str], bool] = {}
        keys = list(keyed)
        try:
            for start in range(0, len(keys), 400):
                chunk = keys[start : start + 400]
                where = " OR ".join(["(target = ? AND answer = ?)"] * len(chunk))
                rows = self.db.execute(
                    f"SELECT target, answer, correct FROM verdicts WHERE task = ? AND "
                    f"verifier = ? AND ({where})",
                    (task, verifier, *(x for key in chunk for x in key)),
                )
                for target, answer, correct in rows:
                    found[keyed[(target, answer)]] = bool(correct)
        except sqlite3.OperationalError:  # no verdicts table yet
            return {}
        return found

    def add_verdicts(self, task: str, verifier: str, verdicts: dict[tuple[str, str], bool]) -> None:
        """Cache verdicts of (target, answer) pairs (a pair verified twice keeps the first)."""
        rows = [
            (task, verifier, _digest(t), _digest(a), int(ok)) for (t, a), ok in verdicts.items()
        ]

        def insert() -> None:
            self.db.execute(_VERDICTS_SCHEMA)
            self.db.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?)", rows)

        self._write(insert)

    # -- reward-model scores --------------------------------------------------------------

    def add_rewards(self, model: str, rows: Iterable[tuple[str, int, int, float]]) -> None:
        """Commit (task, doc_id, sample_idx, reward) scores of one reward model together."""
        values = [(model, task, doc_id, idx, reward) for task, doc_id, idx, reward in rows]
        self._write(
            lambda: self.db.executemany(
                "INSERT OR IGNORE INTO rewards VALUES (?, ?, ?, ?, ?)", values
            )
        )

    def reward_models(self) -> list[str]:
        """The reward models (as named when scoring) with scores in this store."""
        try:
            rows = self.db.execute("SELECT DISTINCT model FROM rewards ORDER BY model").fetchall()
        except sqlite3.OperationalError:  # a store from before rewards were kept
            return []
        return [r[0] for r in rows]

    def rewards(self, model: str, task: str, doc_id: int) -> dict[int, float]:
        """One problem's scores from one reward model, by sample index."""
        rows = self.db.execute(
            "SELECT sample_idx, reward FROM rewards WHERE model = ? AND task = ? AND doc_id = ?",
            (model, task, doc_id),
        )
        return dict(rows.fetchall())

    def unrewarded(self, model: str, task: str, doc_id: int) -> list[tuple[int, str]]:
        """(sample_idx, completion) of one problem's samples that ``model`` has not scored."""
        rows = self.db.execute(
            "SELECT s.sample_idx, s.completion FROM samples s LEFT JOIN rewards r "
            "ON r.model = ? AND r.task = s.task AND r.doc_id = s.doc_id "
            "AND r.sample_idx = s.sample_idx "
            "WHERE s.task = ? AND s.doc_id = ? AND r.reward IS NULL ORDER BY s.sample_idx",
            (model, task, doc_id),
        )
        return rows.fetchall()

    def count_unrewarded(self, model: str) -> int:
        """How many stored samples ``model`` has not scored."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM samples s WHERE NOT EXISTS (SELECT 1 FROM rewards r "
            "WHERE r.model = ? AND r.task = s.task AND r.doc_id = s.doc_id "
            "AND r.sample_idx = s.sample_idx)",
            (model,),
        ).fetchone()
        return row[0]

    def close(self) -> None:
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
        version = self._meta("schema_version")
        if version is None:
            self._write(lambda: self._set_meta("schema_version", SCHEMA_VERSION))
        elif version != SCHEMA_VERSION:
            raise MonkeysError(
                f"{self.path} has store schema {version}, this version reads {SCHEMA_VERSION}; "
                "export it with the version that wrote it"
            )

    def _meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a reader on a store without tables yet
            return None
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _write(self, action: Any) -> None:
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
            raise _store_error(self.path, err) from None


def _store_error(path: Path, err: sqlite3.DatabaseError) -> MonkeysError:
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


class StoredSamples(str):
    """What a store-backed model hands lm-eval for each sample: a reference, not the text.

    All k clones of a problem share one object, so lm-eval's memory does not grow with k;
    ``MonkeysTask`` reads the completions back from the store one problem at a time.
    """

    run_dir: str
    task: str
    doc_id: int
    count: int

    def __new__(cls, run_dir: str | Path, task: str, doc_id: int, count: int) -> StoredSamples:
        text = f"<{count} samples of {task} doc {doc_id} in {Path(run_dir) / STORE_FILE}>"
        obj = super().__new__(cls, text)
        obj.run_dir, obj.task, obj.doc_id, obj.count = str(run_dir), task, doc_id, count
        return obj

    def load(self) -> list[str]:
        store = _readers.get(self.run_dir)
        if store is None:
            store = _readers[self.run_dir] = SampleStore(self.run_dir, writer=False)
        completions = store.completions(self.task, self.doc_id, limit=self.count)
        if len(completions) != self.count:
            raise MonkeysError(
                f"{store.path} holds {len(completions)} of the {self.count} samples of "
                f"{self.task} doc {self.doc_id}; rerun the same command to generate the rest"
            )
        return completions


_readers: dict[str, SampleStore] = {}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
