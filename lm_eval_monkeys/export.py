"""Export a stored run: one record per sample, as JSONL or Parquet, streamed per problem.

Records: task, doc_id, sample_idx, completion, answer, correct, prompt_tokens,
completion_tokens. Both formats load with ``datasets.load_dataset("json"|"parquet", ...)``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.rescore import grader_for, scored_problems
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
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)


def sample_records(run_dir: Path, verifier: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """The run's samples with verdicts, one problem's records at a time."""
    store = SampleStore(run_dir, writer=False)
    try:
        for task in store.tasks():
            _, grader = grader_for(task, verifier)
            for doc_id, samples, scored in scored_problems(store, task, grader):
                yield [
                    {
                        "task": task,
                        "doc_id": doc_id,
                        "sample_idx": s.sample_idx,
                        "completion": s.completion,
                        "answer": answer,
                        "correct": correct,
                        "prompt_tokens": s.prompt_tokens,
                        "completion_tokens": s.completion_tokens,
                    }
                    for s, answer, correct in zip(
                        samples, scored.answers, scored.correct, strict=True
                    )
                ]
    finally:
        store.close()


def export_run(run_dir: Path, fmt: str, output: Path | None, verifier: str | None = None) -> int:
    """Write every sample of the run; JSONL goes to stdout without ``output``. Returns the count."""
    if fmt not in FORMATS:
        raise MonkeysError(f"unknown export format {fmt!r}; use jsonl or parquet")
    if fmt == "parquet" and output is None:
        raise MonkeysError("parquet export needs --output FILE.parquet")
    problems = sample_records(run_dir, verifier)
    if output is None:
        count = 0
        for records in problems:
            sys.stdout.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            count += len(records)
        return count
    tmp = output.with_name(f".{output.name}.partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        count = _write_jsonl(problems, tmp) if fmt == "jsonl" else _write_parquet(problems, tmp)
        os.replace(tmp, output)
    except OSError as err:
        raise MonkeysError(
            f"cannot write {output}: {err.strerror}; choose a writable --output"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return count


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
