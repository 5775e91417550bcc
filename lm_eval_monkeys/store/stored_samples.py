"""References to stored samples, handed to lm-eval in place of the completions."""

from __future__ import annotations

from pathlib import Path

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.core import STORE_FILE, SampleStore


class StoredSamples(str):
    """What a store-backed model hands lm-eval for each sample: a reference, not the text.

    All k clones of a problem share one object, so lm-eval's memory does not grow with k;
    ``MonkeysTask`` reads the completions back from the store one problem at a time.
    """

    run_dir: str
    task: str
    doc_id: int
    n_samples: int

    def __new__(cls, run_dir: str | Path, task: str, doc_id: int, count: int) -> StoredSamples:
        text = f"<{count} samples of {task} doc {doc_id} in {Path(run_dir) / STORE_FILE}>"
        obj = super().__new__(cls, text)
        obj.run_dir, obj.task, obj.doc_id, obj.n_samples = str(run_dir), task, doc_id, count
        return obj

    def load(self) -> list[str]:
        store = reader(self.run_dir)
        completions = store.completions(self.task, self.doc_id, limit=self.n_samples)
        if len(completions) != self.n_samples:
            raise MonkeysError(
                f"{store.path} holds {len(completions)} of the {self.n_samples} samples of "
                f"{self.task} doc {self.doc_id}; rerun the same command to generate the rest"
            )
        return completions


_readers: dict[str, SampleStore] = {}


def reader(run_dir: str | Path) -> SampleStore:
    """This process's one reading connection to a run's store (shared by its tasks)."""
    key = str(run_dir)
    if key not in _readers:
        _readers[key] = SampleStore(run_dir, writer=False)
    return _readers[key]
