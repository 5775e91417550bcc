"""``audit``: an imported run's source verdicts against this project's, sample by sample.

Per task: the confusion table of the two verdicts, coverage@k by each (the same unbiased
estimator, from each problem's count of correct samples), and every disagreeing sample
with both verdicts and the answer each checker extracted (the source's by the paper's
own rule, where it has one), so a reader can judge who is right. At k = 10,000 every
disagreement on a problem's only correct sample is a coverage difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import coverage_at_k, default_ks
from lm_eval_monkeys.output_file import writable_output
from lm_eval_monkeys.scoring import VerdictResolver
from lm_eval_monkeys.scoring.rescore import scored_problems, task_scoring
from lm_eval_monkeys.store import SampleStore

# The paper's GSM8K rule (its evaluation code): the text after "#### " up to the first
# character outside digits, "$", "-", "." and ",", with commas, "$" and a final "." dropped.
_PAPER_GSM8K = re.compile(r"#### (\-?[\$0-9\.\,]+)")


def paper_gsm8k_answer(completion: str) -> str | None:
    match = _PAPER_GSM8K.search(completion)
    if match is None:
        return None
    return re.sub(r"\.$", "", match.group(1).strip().replace(",", "").replace("$", ""))


def paper_math_answer(completion: str) -> str | None:
    # The paper judged MATH with lm-eval's Minerva rules; the same functions, from lm-eval.
    from lm_eval.tasks.minerva_math.utils import get_unnormalized_answer, normalize_final_answer

    return normalize_final_answer(get_unnormalized_answer(completion))


SOURCE_ANSWERS: dict[str, Callable[[str], str | None]] = {
    "monkeys_gsm8k": paper_gsm8k_answer,
    "monkeys_math": paper_math_answer,
}


@dataclass
class TaskAudit:
    """One task's agreement between the source's verdicts and this project's."""

    task: str
    source: str
    checker: str
    problems: int = 0
    # (source says correct, this project says correct) -> samples
    confusion: dict[tuple[bool, bool], int] = field(
        default_factory=lambda: dict.fromkeys(
            [(True, True), (True, False), (False, True), (False, False)], 0
        )
    )
    unjudged: int = 0  # samples the source has no verdict for
    # (n, c by the source, c by the checker) of each problem the source judged in full
    counts: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def disagreements(self) -> int:
        return self.confusion[(True, False)] + self.confusion[(False, True)]

    def coverage(self, ks: Sequence[int]) -> dict[int, tuple[float, float]]:
        """coverage@k by the source's verdicts and by this project's, per k."""
        n, c_source, c_ours = (np.array(column) for column in zip(*self.counts, strict=True))
        return {
            k: (
                float(np.mean(coverage_at_k(n, c_source, k))),
                float(np.mean(coverage_at_k(n, c_ours, k))),
            )
            for k in ks
        }

    def table(self, ks: Sequence[int] | None = None) -> str:
        judged = sum(self.confusion.values())
        agree = self.confusion[(True, True)] + self.confusion[(False, False)]
        c = self.confusion
        lines = [
            f"{self.task}: {self.problems} problems, source {self.source} vs checker "
            f"{self.checker}",
            f"  {'':>22}{'checker correct':>17}{'checker wrong':>15}",
            f"  {'source correct':>22}{c[(True, True)]:>17}{c[(True, False)]:>15}",
            f"  {'source wrong':>22}{c[(False, True)]:>17}{c[(False, False)]:>15}",
            f"  agreement {agree}/{judged} samples"
            + (f" ({agree / judged:.4%})" if judged else "")
            + (f"; {self.unjudged} samples without a source verdict" if self.unjudged else ""),
        ]
        if self.counts:
            fewest = min(n for n, _, _ in self.counts)
            lines.append(
                f"  coverage@k over the {len(self.counts)} problems the source judged in full:"
            )
            lines.append(f"  {'k':>6}{'source':>12}{'checker':>12}")
            for k, (by_source, by_checker) in self.coverage(ks or default_ks(fewest)).items():
                lines.append(f"  {k:>6}{by_source:>12.4f}{by_checker:>12.4f}")
        return "\n".join(lines)


def audit_run(
    run_dir: Path,
    output: Path | None = None,
    checker_spec: str | None = None,
    ks: Sequence[int] | None = None,
) -> list[TaskAudit]:
    """Audit every task of an imported run; disagreeing samples go to ``output`` (JSONL)."""
    with SampleStore(run_dir, writer=False) as store:
        sources = store.source_verdicts.sources()
        if not sources:
            raise MonkeysError(
                f"{run_dir} holds no imported verdicts to audit; import samples with their "
                "is_corrects first (lm-eval-monkeys import)"
            )
        if ks:
            for task in store.tasks():
                _check_ks(store, task, ks)
        if output is None:
            return [a for source in sources for a in _audits(store, source, checker_spec, None)]
        with writable_output(output) as path, path.open("w", encoding="utf-8") as out:
            return [a for source in sources for a in _audits(store, source, checker_spec, out)]


def _check_ks(store: SampleStore, task: str, ks: Sequence[int]) -> None:
    fewest = store.database.read(
        "SELECT MIN(n) FROM (SELECT COUNT(*) AS n FROM samples WHERE task = ? GROUP BY doc_id)",
        (task,),
    )[0][0]
    if fewest is not None and max(ks) > fewest:
        raise MonkeysError(
            f"k={max(ks)} exceeds the {fewest} samples of some {task} problem; lower --ks"
        )


def _audits(
    store: SampleStore, source: str, checker_spec: str | None, out: TextIO | None
) -> Iterator[TaskAudit]:
    for task in store.tasks():
        scoring = task_scoring(store, task, checker_spec)
        audit = TaskAudit(task, source, scoring.checker.spec)
        source_answer = SOURCE_ANSWERS.get(task)
        resolver = VerdictResolver(scoring.checker, store.verdicts)
        try:
            for doc_id, samples, scored in scored_problems(
                store, task, scoring.checker, resolver, group=False
            ):
                theirs = store.source_verdicts.verdicts(source, task, doc_id)
                c_source = c_ours = 0
                for sample, answer, verdict in zip(
                    samples, scored.answers, scored.verdicts, strict=True
                ):
                    ours = verdict is not None and verdict.correct
                    c_ours += ours
                    if sample.sample_idx not in theirs:
                        audit.unjudged += 1
                        continue
                    said = theirs[sample.sample_idx]
                    c_source += said
                    audit.confusion[(said, ours)] += 1
                    if said != ours and out is not None:
                        out.write(
                            json.dumps(
                                _disagreement(
                                    task,
                                    doc_id,
                                    sample.completion,
                                    sample.sample_idx,
                                    said,
                                    ours,
                                    answer,
                                    source_answer,
                                ),
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                audit.problems += 1
                if len(theirs) == len(samples):  # coverage only where the source judged all
                    audit.counts.append((len(samples), c_source, c_ours))
        finally:
            resolver.close()
            scoring.checker.close()
        yield audit


def _disagreement(
    task: str,
    doc_id: int,
    completion: str,
    sample_idx: int,
    source_correct: bool,
    correct: bool,
    answer: str | None,
    source_answer: Callable[[str], str | None] | None,
) -> dict[str, Any]:
    return {
        "task": task,
        "doc_id": doc_id,
        "sample_idx": sample_idx,
        "source_correct": source_correct,
        "correct": correct,
        "answer": answer,
        "source_answer": source_answer(completion) if source_answer else None,
        "completion": completion,
    }
