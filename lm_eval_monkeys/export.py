"""Export a stored run: one record per sample, as JSONL or Parquet, streamed per problem.

Records: task, doc_id, sample_idx, completion, answer, correct, status (the checker's
word: AC, WA, resolved, ...), details (JSON: per-test results, the limit hit, failing
tests), prompt_tokens, completion_tokens. Both formats load with
``datasets.load_dataset("json"|"parquet", ...)``. Verdicts come from the run's cache.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.output_file import writable_output
from lm_eval_monkeys.scoring import VerdictResolver
from lm_eval_monkeys.scoring.rescore import scored_problems, task_scoring
from lm_eval_monkeys.store import SampleStore

FORMATS = ("jsonl", "parquet")
_ROW_GROUP = 65_536
_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("doc_id", pa.int64()),
        ("sample_idx", pa.int64()),
        ("completion", pa.string()),
        ("answer", pa.string()),
        ("correct", pa.bool_()),
        ("status", pa.string()),
        ("details", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)


def sample_records(
    run_dir: Path, checker_spec: str | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The run's samples with verdicts, one problem's records at a time."""
    with SampleStore(run_dir, writer=False) as store:
        for task in store.tasks():
            scoring = task_scoring(store, task, checker_spec)
            resolver = VerdictResolver(scoring.checker, store.verdicts)
            try:
                for doc_id, samples, scored in scored_problems(
                    store,
                    task,
                    scoring.checker,
                    resolver,
                    group=False,  # no vote classes
                ):
                    yield [
                        {
                            "task": task,
                            "doc_id": doc_id,
                            "sample_idx": s.sample_idx,
                            "completion": s.completion,
                            "answer": answer,
                            "correct": verdict is not None and verdict.correct,
                            "status": "no_answer" if verdict is None else verdict.status,
                            "details": json.dumps(
                                {} if verdict is None else dict(verdict.details), default=str
                            ),
                            "prompt_tokens": s.prompt_tokens,
                            "completion_tokens": s.completion_tokens,
                        }
                        for s, answer, verdict in zip(
                            samples, scored.answers, scored.verdicts, strict=True
                        )
                    ]
            finally:
                resolver.close()
                scoring.checker.close()


def export_run(
    run_dir: Path, fmt: str, output: Path | None, checker_spec: str | None = None
) -> int:
    """Write every sample of the run; JSONL goes to stdout without ``output``. Returns the count."""
    if fmt not in FORMATS:
        raise MonkeysError(f"unknown export format {fmt!r}; use jsonl or parquet")
    if fmt == "parquet" and output is None:
        raise MonkeysError("parquet export needs --output FILE.parquet")
    problems = sample_records(run_dir, checker_spec)
    if output is None:
        count = 0
        for records in problems:
            sys.stdout.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            count += len(records)
        return count
    with writable_output(output) as path:
        return _write_jsonl(problems, path) if fmt == "jsonl" else _write_parquet(problems, path)


def _write_jsonl(problems: Iterator[list[dict[str, Any]]], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8", errors="surrogateescape") as out:
        for records in problems:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            count += len(records)
    return count


def _write_parquet(problems: Iterator[list[dict[str, Any]]], path: Path) -> int:
    count, rows = 0, []
    with pq.ParquetWriter(path, _SCHEMA) as writer:
        for records in problems:
            rows.extend(records)
            if len(rows) >= _ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA))
                count, rows = count + len(rows), []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA))
    return count + len(rows)
