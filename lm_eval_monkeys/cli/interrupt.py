"""Ctrl-C or SIGTERM during a run: one line saying what the store kept and how to resume.

Every sample is committed to the run's store as it is generated, and a rerun of the same
command generates only the samples the store lacks, so an interrupted run loses at most
the samples in flight. SIGTERM (a scheduler's stop) is handled as Ctrl-C is.
"""

from __future__ import annotations

import gc
import shlex
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store import STORE_FILE, SampleStore


class Interrupted(MonkeysError):
    """A run stopped by a signal; the exit status is 128 + the signal's number."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_status = 128 + signal_number


class _Signalled(BaseException):
    """SIGTERM, raised where the run is, as KeyboardInterrupt is for Ctrl-C."""


def _raise_signalled(signal_number: int, frame: FrameType | None) -> None:
    raise _Signalled


def run_resumably(run: Callable[[], object], run_dir: Path | None, argv: list[str]) -> None:
    """Call ``run``; turn Ctrl-C and SIGTERM during it into ``Interrupted``, naming the
    samples kept in ``run_dir`` and the command (``argv``) that resumes the run."""
    previous = signal.signal(signal.SIGTERM, _raise_signalled)
    stopped_by = None
    try:
        run()
    except KeyboardInterrupt:
        stopped_by = signal.SIGINT
    except _Signalled:
        stopped_by = signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped_by is not None:
        # The exception is gone here, so the frames it held can be freed now: their
        # progress bars close (and draw their last state) before our line, not after.
        gc.collect()
        raise Interrupted(_kept(run_dir, argv), stopped_by)


def _kept(run_dir: Path | None, argv: list[str]) -> str:
    command = shlex.join(["lm-eval-monkeys", *argv])
    if run_dir is None:
        return (
            "interrupted; nothing was kept (a run keeps its samples with a monkeys-* model "
            f"and --output_path); rerun: {command}"
        )
    samples = problems = 0
    if (run_dir / STORE_FILE).is_file():
        with SampleStore(run_dir, writer=False) as store:
            ((samples, problems),) = store.database.read(
                "SELECT COUNT(*), COUNT(DISTINCT task || '/' || doc_id) FROM samples", ()
            )
    return (
        f"interrupted; {samples} samples of {problems} problems are kept in {run_dir}; "
        f"the same command resumes the run, generating only what is missing: {command}"
    )
