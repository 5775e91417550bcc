"""``verify``: score completions from a JSONL file with a task's checker, no model needed.

Input lines are ``{"doc": <hub-schema record>, "completion": str, ...}``; each output line
is the input plus ``"answer"`` (the extracted key, null if none), ``"correct"``,
``"status"`` and ``"details"`` (why: per-test verdicts, the limit hit, failing tests).
Distinct (reference, answer) pairs are judged once, those of a chunk of lines together
(so programs run in parallel), through the verdict cache file in ``$MONKEYS_CACHE_DIR``.
The output file appears only once every line is scored: a malformed line aborts the run
and leaves no half-written file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.output_file import writable_output
from lm_eval_monkeys.scoring.dispatch import VerifyBackend
from lm_eval_monkeys.scoring.problem_scores import ProblemAnswers, answer_key
from lm_eval_monkeys.scoring.resolver import VerdictResolver
from lm_eval_monkeys.store.verdicts import VERDICT_FILE, VerdictFile
from lm_eval_monkeys.verifiers import Checker

CACHE_ENV = "MONKEYS_CACHE_DIR"

_CHUNK = 1024  # lines scored together (bounded memory, parallel program runs)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lm-eval-monkeys")


def verify_file(
    input_path: Path,
    output_path: Path,
    checker: Checker,
    backend: VerifyBackend | None = None,
    cache_dir: Path | None = None,
) -> tuple[int, int]:
    """Score every line of ``input_path`` into ``output_path``; returns (lines, correct)."""
    lines = correct = 0
    cache = VerdictFile((cache_dir or default_cache_dir()) / VERDICT_FILE)
    resolver = VerdictResolver(checker, cache.table, backend)
    try:
        with writable_output(output_path) as path:
            # surrogateescape writes undecodable input bytes back out unchanged.
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
                bar = tqdm(desc="verify", unit="sample")
                for chunk in _chunks(_records(input_path), _CHUNK):
                    for record in _score_chunk(chunk, checker, input_path, resolver):
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                        correct += record["correct"]
                    lines += len(chunk)
                    bar.update(len(chunk))
                bar.close()
    finally:
        resolver.close()
        cache.close()
    return lines, correct


def _score_chunk(
    chunk: list[dict[str, Any]], checker: Checker, path: Path, resolver: VerdictResolver
) -> list[dict[str, Any]]:
    """Verdicts for a chunk of lines: the distinct answers of each problem are judged
    together, so checkers that run programs run them in parallel."""
    problems = []
    for record in chunk:
        try:
            target = checker.target(record["doc"])
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise MonkeysError(
                f"{path}:{record['_line']}: doc is not in this task's hub schema "
                f"({type(err).__name__}: {err}); pass records as the task's dataset stores them"
            ) from None
        problems.append(
            ProblemAnswers(record["doc"], target, [answer_key(checker, record["completion"])])
        )
    verdicts = resolver.resolve(problems)
    for record, problem in zip(chunk, problems, strict=True):
        del record["_line"]
        answer = problem.answers[0]
        verdict = None if answer is None else verdicts[(problem.target, answer)]
        record["answer"] = answer
        record["correct"] = verdict is not None and verdict.correct
        record["status"] = "no_answer" if verdict is None else verdict.status
        record["details"] = {} if verdict is None else dict(verdict.details)
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
