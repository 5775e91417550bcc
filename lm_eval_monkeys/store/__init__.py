"""The run store: samples, run records, verdicts and rewards of one run in one SQLite file."""

from lm_eval_monkeys.store.core import STORE_FILE, Sample, SampleStore, check_writer, prompt_hash
from lm_eval_monkeys.store.run_records import (
    Sampling,
    TaskRecord,
    changed_keys,
    installed_record,
)
from lm_eval_monkeys.store.stored_samples import StoredSamples, reader

__all__ = [
    "STORE_FILE",
    "Sample",
    "SampleStore",
    "Sampling",
    "StoredSamples",
    "TaskRecord",
    "changed_keys",
    "check_writer",
    "installed_record",
    "prompt_hash",
    "reader",
]
