"""``import``: imported samples written into a run store, one problem at a time.

The task documents are loaded (and the source opened) before anything is written. Each
matched problem's samples become the store's samples of its task document, in the
source's order; the source's verdicts go to the store's ``source_verdicts`` under the
source's name; the task's run record names this project's checker and, as its prompt,
where the samples came from. A new store is built beside ``RUN_DIR`` and moved into
place once complete; importing into an existing store adds what it lacks (a rerun after
an interruption resumes).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.importing.matching import DocIndex, doc_index
from lm_eval_monkeys.importing.sources import Source, SourceProblem, SourceProblems
from lm_eval_monkeys.metrics import default_ks
from lm_eval_monkeys.store import STORE_FILE, Sample, SampleStore, TaskRecord, prompt_hash

IMPORTED_METRICS = ("coverage", "majority")


@dataclass
class ImportSummary:
    """What an import did, for its one-screen report."""

    task: str
    problems: int = 0
    samples: int = 0
    unmatched: list[str] = field(default_factory=list)
    not_text: int = 0  # samples that were not strings, kept as empty completions
    unjudged_problems: int = 0  # problems without the source's verdicts

    def lines(self) -> list[str]:
        out = [f"{self.task}: {self.problems} problems, {self.samples} samples imported"]
        if self.unmatched:
            shown = "; ".join(self.unmatched[:5]) + ("; ..." if len(self.unmatched) > 5 else "")
            out.append(
                f"  {len(self.unmatched)} problems match no {self.task} document, not "
                f"imported: {shown}"
            )
        if self.not_text:
            out.append(
                f"  {self.not_text} samples were not text: kept as empty completions (no answer)"
            )
        if self.unjudged_problems:
            out.append(f"  {self.unjudged_problems} problems carry no source verdicts")
        return out


def import_samples(source: Source, run_dir: Path) -> ImportSummary:
    """Import every problem of ``source`` into the store of ``run_dir``."""
    index = doc_index(source.benchmark)  # data and documents first: fail before writing
    problems = source.problems()
    if (run_dir / STORE_FILE).is_file():
        return _import_into(source, index, problems, run_dir)
    building = run_dir.with_name(f".{run_dir.name}.importing")
    shutil.rmtree(building, ignore_errors=True)  # what an interrupted import left
    try:
        summary = _import_into(source, index, problems, building)
        if run_dir.exists():
            run_dir.rmdir()  # an empty directory only: anything else is refused
        building.rename(run_dir)
    except OSError as err:
        raise MonkeysError(
            f"cannot write {run_dir} ({err.strerror}); choose a new, writable --output_path"
        ) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return summary


def _import_into(
    source: Source, index: DocIndex, problems: SourceProblems, run_dir: Path
) -> ImportSummary:
    task = index.benchmark.task
    summary = ImportSummary(task)
    fewest, most = None, 0
    with SampleStore(run_dir) as store:
        store.bind_config({"model": f"imported:{source.model}", "source": source.describe()})
        for problem in tqdm(problems, desc=f"import {source.name}", unit="problem"):
            doc_id = index.match(problem)
            if doc_id is None:
                summary.unmatched.append(f"{problem.where} ({problem.question[:60]!r})")
                continue
            _write_problem(store, source, task, doc_id, index.docs[doc_id], problem, summary)
            n = len(problem.samples)
            fewest, most = min(fewest or n, n), max(most, n)
        if not summary.problems:
            raise MonkeysError(
                f"no problem of {source.location} matches a {task} document; is "
                f"--benchmark {source.benchmark} right?"
            )
        store.records.bind(
            TaskRecord(
                task=task,
                checker_spec=index.benchmark.checker,
                repeats=most,
                ks=tuple(default_ks(fewest or 1)),
                metrics=IMPORTED_METRICS,
                prompt={"imported_from": source.describe()},
            )
        )
    return summary


def _write_problem(
    store: SampleStore,
    source: Source,
    task: str,
    doc_id: int,
    doc: dict,
    problem: SourceProblem,
    summary: ImportSummary,
) -> None:
    store.register_docs([(task, doc_id, doc, prompt_hash(problem.prompt, {}), {})])
    samples = []
    for idx, text in enumerate(problem.samples):
        if not isinstance(text, str):
            summary.not_text += 1
            text = ""
        samples.append((task, doc_id, Sample(idx, text, 0, 0)))
    store.add(samples)
    store.record_requested([(task, doc_id, len(samples))])
    if problem.is_corrects is None:
        summary.unjudged_problems += 1
    else:
        store.source_verdicts.add(
            source.name,
            (
                (task, doc_id, idx, bool(ok))
                for idx, ok in enumerate(problem.is_corrects)
                if isinstance(ok, (bool, int))  # anything else: the source did not judge it
            ),
        )
    summary.problems += 1
    summary.samples += len(samples)
