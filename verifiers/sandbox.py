"""Run untrusted programs against tests in a sandbox: one job, one file.

Each program gets its own bubblewrap sandbox started as an unprivileged uid (so
RLIMIT_NPROC holds): no network, the host filesystem read-only, a private scratch
directory, a cleared environment, its own pid namespace (everything in it dies with the
sandbox). Inside, ``sandbox_harness.py`` compiles once and forks once per test with
rlimits on address space, CPU, file size and processes and a wall-clock limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError

_HARNESS_SOURCE = Path(__file__).with_name("sandbox_harness.py").read_text()
UNSANDBOXED_ENV = "MONKEYS_UNSANDBOXED_I_TRUST_THIS_CODE"
PCH_MOUNT = "/monkeys-pch"  # where the precompiled bits/stdc++.h appears in the sandbox
_FIRST_UID = 61_000  # one uid per concurrent sandbox: RLIMIT_NPROC counts per uid


@dataclass(frozen=True)
class Limits:
    """Per-test limits; ``time_s`` is the problem's limit plus slack."""

    time_s: float = 2.0
    memory_bytes: int = 256 << 20
    output_bytes: int = 64 << 20
    processes: int = 16


class Sandbox:
    """Starts sandboxes, at most ``slots`` at once, each under its own unprivileged uid."""

    def __init__(self, slots: int | None = None, pch_dir: Path | None = None) -> None:
        self.unsandboxed = os.environ.get(UNSANDBOXED_ENV) == "1"
        if not self.unsandboxed:
            missing = [tool for tool in ("bwrap", "setpriv") if shutil.which(tool) is None]
            if missing:
                raise MonkeysError(
                    f"code verification runs programs in a sandbox and {' and '.join(missing)} "
                    f"is missing: apt-get install -y bubblewrap util-linux (or, only for code "
                    f"you trust, set {UNSANDBOXED_ENV}=1 to run it unsandboxed)"
                )
        self.pch_dir = pch_dir
        count = slots or os.cpu_count() or 1
        self._free = list(range(count))
        self._lock = threading.Condition()

    def run(
        self, language: str, source: str, tests: list[dict[str, str]], limits: Limits
    ) -> dict[str, Any]:
        """Verdict of one program over ``tests`` (stopping at the first failure)."""
        job = {
            "language": language,
            "source": source,
            "tests": tests,
            "time_s": limits.time_s,
            "memory_bytes": limits.memory_bytes,
            "output_bytes": limits.output_bytes,
            "processes": limits.processes,
            "pch_dir": PCH_MOUNT
            if self.pch_dir and not self.unsandboxed
            else self.pch_dir and str(self.pch_dir),
        }
        slot = self._take_slot()
        try:
            return self._run_job(job, slot, limits)
        finally:
            self._give_back(slot)

    def _run_job(self, job: dict[str, Any], slot: int, limits: Limits) -> dict[str, Any]:
        uid = _FIRST_UID + slot
        with tempfile.TemporaryDirectory(prefix="monkeys-sandbox-") as scratch:
            if os.geteuid() == 0:  # the dropped uid owns its scratch directory
                os.chown(scratch, uid, uid)
            command = self._command(scratch, uid)
            budget = 60 + len(job["tests"]) * (limits.time_s + 1) * 2
            try:
                done = subprocess.run(
                    command,
                    input=json.dumps(job),
                    capture_output=True,
                    text=True,
                    timeout=budget,
                    cwd=scratch,
                )
            except subprocess.TimeoutExpired:
                return {"verdict": "TLE", "detail": "sandbox time budget exceeded", "tests": []}
            finally:
                _reap(uid)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            if done.stderr.startswith("bwrap:") or "setpriv:" in done.stderr:
                raise MonkeysError(f"the sandbox could not start: {done.stderr.strip()}") from None
            # The program took the harness down with it (e.g. killed its parent).
            return {"verdict": "RE", "detail": "the program killed its test harness", "tests": []}

    def _command(self, scratch: str, uid: int) -> list[str]:
        # The system interpreter and the harness as -c: nothing under the project, /root
        # or a virtualenv needs to be readable by the sandbox's uid.
        harness = [_system_python(), "-I", "-S", "-c", _HARNESS_SOURCE]
        if self.unsandboxed:
            return harness
        drop = (
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            if os.geteuid() == 0
            else []
        )
        return [
            *drop,
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "--tmpfs",
            "/tmp",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--bind",
            scratch,
            scratch,
            "--chdir",
            scratch,
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "HOME",
            scratch,
            *harness,
        ]

    def _take_slot(self) -> int:
        with self._lock:
            while not self._free:
                self._lock.wait()
            return self._free.pop()

    def _give_back(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)
            self._lock.notify()


def _system_python() -> str:
    """The machine's own python3 (standard library only), readable by any uid."""
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return found or os.path.realpath(sys.executable)


def _reap(uid: int) -> None:
    """Kill whatever still runs as the slot's uid (the pid namespace dies asynchronously)
    and wait until nothing does, so no process outlives its check or eats the next
    program's process limit."""
    if os.geteuid() != 0:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["pkill", "-KILL", "-U", str(uid)], capture_output=True).returncode == 1:
            return  # pkill found nothing left
        time.sleep(0.01)
