"""``verify``: score completions from a JSONL file with a task's checker, no model needed.

Input lines are ``{"doc": <hub-schema record>, "completion": str, ...}``; each output line
is the input plus ``"answer"`` (the extracted key, null if none) and ``"correct"``.
Distinct (reference, answer) pairs are checked once, those of a chunk of lines together
(so programs run in parallel). The output file appears only once
every line is scored: a malformed line aborts the run and leaves no half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.selection import Grader
from lm_eval_monkeys.verify_backends import VerdictResolver

_CHUNK = 1024  # lines scored together (bounded memory, parallel program runs)


def verify_file(
    input_path: Path, output_path: Path, grader: Grader, resolver: VerdictResolver | None = None
) -> tuple[int, int]:
    """Score every line of ``input_path`` into ``output_path``; returns (lines, correct).
    With ``resolver`` (and a ``known_grader``), each chunk's distinct answers are verified
    through its backend (e.g. a Ray cluster) first."""
    lines = correct = 0
    output_path = output_path.resolve()
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.")
    except OSError as err:
        raise MonkeysError(
            f"cannot write {output_path}: {err.strerror}; choose a writable --output"
        ) from None
    try:
        # surrogateescape writes undecodable input bytes back out unchanged.
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            bar = tqdm(desc="verify", unit="sample")
            for chunk in _chunks(_records(input_path), _CHUNK):
                for record in _score_chunk(chunk, grader, input_path, resolver):
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    correct += record["correct"]
                lines += len(chunk)
                bar.update(len(chunk))
            bar.close()
        os.replace(tmp_name, output_path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return lines, correct


def _score_chunk(
    chunk: list[dict[str, Any]], grader: Grader, path: Path, resolver: VerdictResolver | None
) -> list[dict[str, Any]]:
    """Verdicts for a chunk of lines: the distinct answers of each problem are checked
    together, so checkers that run programs run them in parallel."""
    targets = []
    for record in chunk:
        try:
            targets.append(grader.checker.target(record["doc"]))
        except (KeyError, TypeError, AttributeError) as err:
            raise MonkeysError(
                f"{path}:{record['_line']}: doc is not in this task's hub schema "
                f"(missing {err}); pass records as the task's dataset stores them"
            ) from None
    answers = [grader.answer(record["completion"]) for record in chunk]
    by_target: dict[str, set[str]] = {}
    for target, answer in zip(targets, answers, strict=True):
        if answer is not None:
            by_target.setdefault(target, set()).add(answer)
    if resolver is not None:
        docs = {target: record["doc"] for target, record in zip(targets, chunk, strict=True)}
        resolver.prefetch(grader, [(docs[t], distinct) for t, distinct in by_target.items()])
    for target, distinct in by_target.items():
        grader.verdicts(sorted(distinct), target)
    for record, target, answer in zip(chunk, targets, answers, strict=True):
        del record["_line"]
        record["answer"] = answer
        record["correct"] = grader.verdict(answer, target)
    return chunk


def _chunks(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """Input records with their line numbers; a line that is not one is a clear error."""
    try:
        handle = path.open("rb")
    except OSError as err:
        raise MonkeysError(f"cannot read --input {path}: {err.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            # Undecodable bytes become lone surrogates, which the grader treats as no answer.
            text = raw.decode("utf-8", errors="surrogateescape")
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise MonkeysError(
                    f"{path}:{number}: not valid JSON ({err.msg}); each line must be "
                    '{"doc": {...}, "completion": "..."}'
                ) from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("doc"), dict)
                or ("completion" not in record)
            ):
                raise MonkeysError(
                    f'{path}:{number}: expected an object with "doc" (an object) and '
                    f'"completion"; fix or remove that line'
                )
            record["_line"] = number
            yield record
