"""Verdicts of programs (and patches) on disk, shared by runs and rescoring.

Checkers that run code keep each result by (problem key, digest of the program), so the
same program is never run twice for one problem, in this run or any later one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

CACHE_ENV = "MONKEYS_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lm-eval-monkeys")


def digest(text: str) -> str:
    """A short, stable key for any text (undecodable surrogates included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class VerdictCache:
    """Results on disk by (problem key, program), one SQLite file per checker."""

    def __init__(self, directory: Path, filename: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            directory / filename,
            check_same_thread=False,
            isolation_level=None,
            timeout=30,
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (problem TEXT, program TEXT, "
            "result TEXT, PRIMARY KEY (problem, program)) WITHOUT ROWID"
        )
        self._lock = threading.Lock()

    def get(self, problem: str, program: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM verdicts WHERE problem = ? AND program = ?",
                (problem, digest(program)),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, problem: str, program: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)",
                (problem, digest(program), json.dumps(result)),
            )

    def results(
        self, problem: str, programs: list[str], run: Callable[[str], dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Each program's result: from disk, else ``run`` (in parallel, one thread per core;
        ``run`` bounds its own sandboxes) and then kept."""
        found = {program: self.get(problem, program) for program in programs}
        todo = [program for program, result in found.items() if result is None]
        if todo:
            with ThreadPoolExecutor(min(len(todo), os.cpu_count() or 1)) as pool:
                for program, result in zip(todo, pool.map(run, todo), strict=True):
                    found[program] = result
                    self.put(problem, program, result)
        return found  # type: ignore[return-value]  (every None was replaced)
