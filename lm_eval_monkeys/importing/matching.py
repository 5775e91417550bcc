"""Imported problems matched to this project's task documents.

Each benchmark maps to the task whose documents (and so whose checker and doc ids) an
imported problem takes: GSM8K and MATH by question text (whitespace-normalised),
CodeContests by ``orig_dset_idx`` into ``deepmind/code_contests``'s test split (the
tests come from that data, never from the imported record) or by statement, MiniF2F by
theorem name. A problem that matches nothing is reported by the importer, never dropped
silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.importing.sources import SourceProblem
from lm_eval_monkeys.tasks import data


def _text_key(text: Any) -> str:
    return " ".join(str(text or "").split())


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark's imported problems find their task documents."""

    task: str
    checker: str
    load_docs: Callable[[], Iterable[dict[str, Any]]]
    doc_key: Callable[[dict[str, Any]], str]
    problem_key: Callable[[SourceProblem], str]


def _question(problem: SourceProblem) -> str:
    return _text_key(problem.question)


def _theorem(problem: SourceProblem) -> str:
    for name in ("theorem_name", "name", "id"):
        if problem.fields.get(name):
            return str(problem.fields[name])
    return ""


BENCHMARKS: dict[str, Benchmark] = {
    "gsm8k": Benchmark(
        "monkeys_gsm8k",
        "gsm8k",
        lambda: data.load_gsm8k()["test"],
        lambda doc: _text_key(doc["question"]),
        _question,
    ),
    "math": Benchmark(
        "monkeys_math",
        "math",
        lambda: data.load_math()["test"],
        lambda doc: _text_key(doc["problem"]),
        _question,
    ),
    "minif2f": Benchmark(
        "monkeys_minif2f_mathd",
        "lean",
        lambda: data.load_minif2f_mathd()["test"],
        lambda doc: str(doc["name"]),
        _theorem,
    ),
}


@dataclass
class DocIndex:
    """A task's documents, found by key; each document is taken at most once."""

    benchmark: Benchmark
    docs: list[dict[str, Any]]
    by_key: dict[str, list[int]] = field(default_factory=dict)
    taken: set[int] = field(default_factory=set)
    by_original: dict[int, int] = field(default_factory=dict)  # CodeContests only

    def match(self, problem: SourceProblem) -> int | None:
        """The doc id of ``problem``, or None when no untaken document matches."""
        original = problem.fields.get("orig_dset_idx")
        if self.by_original and original is not None:
            candidates = [self.by_original.get(int(original), -1)]
        else:
            candidates = self.by_key.get(self.benchmark.problem_key(problem), [])
        for doc_id in candidates:
            if doc_id >= 0 and doc_id not in self.taken:
                self.taken.add(doc_id)
                return doc_id
        return None


def doc_index(benchmark: str) -> DocIndex:
    """The task documents of ``benchmark``, loaded once (before anything is written)."""
    if benchmark == "codecontests":
        return _codecontests_index()
    chosen = BENCHMARKS[benchmark]
    docs = [dict(doc) for doc in chosen.load_docs()]
    index = DocIndex(chosen, docs)
    for doc_id, doc in enumerate(docs):
        index.by_key.setdefault(chosen.doc_key(doc), []).append(doc_id)
    return index


def _codecontests_index() -> DocIndex:
    if data.local_data_dir() is not None and not data.codecontests_has_local_tests():
        raise MonkeysError(
            "imported CodeContests samples are judged by the problems' own tests, which the "
            f"local data lacks; {data.CODECONTESTS_NEEDS_TESTS}"
        )
    chosen = Benchmark(
        "monkeys_codecontests",
        "code",
        lambda: data.load_codecontests()["test"],
        lambda doc: _text_key(doc["description"]),
        _question,
    )
    index = DocIndex(chosen, [dict(doc) for doc in chosen.load_docs()])
    position = {}
    for doc_id, doc in enumerate(index.docs):
        index.by_key.setdefault(chosen.doc_key(doc), []).append(doc_id)
        position[doc["name"]] = doc_id
    # orig_dset_idx counts every test problem, the task's documents only those without
    # images: the problem's name bridges the two.
    for original, name in enumerate(data.codecontests_test_split()["name"]):
        index.by_original[original] = position.get(name, -1)
    return index
