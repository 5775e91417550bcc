"""Run untrusted programs against tests in a sandbox: one job, one file.

Each program gets its own bubblewrap sandbox started as an unprivileged uid (so
RLIMIT_NPROC holds): no network, the host filesystem read-only, a private scratch
directory, a cleared environment, its own pid namespace (everything in it dies with the
sandbox). Inside, ``sandbox_harness.py`` compiles once and forks once per test with
rlimits on address space, CPU, file size and processes and a wall-clock limit.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lm_eval_monkeys.errors import MonkeysError

_HARNESS_SOURCE = Path(__file__).with_name("sandbox_harness.py").read_text()
UNSANDBOXED_ENV = "MONKEYS_UNSANDBOXED_I_TRUST_THIS_CODE"
SHARED_DIR_ENV = "MONKEYS_SANDBOX_DIR"
_FIRST_UID = 61_000  # a uid per concurrent sandbox: RLIMIT_NPROC counts per uid
_UIDS_PER_SLOT = 8  # uids rotate, so a uid is reused only after its namespaces are gone
_UID_BLOCK = 8192  # uids of one Sandbox: up to 1,024 slots
_UID_LOCKS = Path(tempfile.gettempdir()) / "lm-eval-monkeys-uids"


@dataclass(frozen=True)
class Limits:
    """Per-test limits; ``time_s`` is the problem's limit plus slack."""

    time_s: float = 2.0
    memory_bytes: int = 256 << 20
    output_bytes: int = 64 << 20
    processes: int = 16


class Sandbox:
    """Starts sandboxes, at most ``slots`` at once, each under its own unprivileged uid."""

    def __init__(
        self, slots: int | None = None, pch: Callable[[], Path | None] | None = None
    ) -> None:
        """``pch`` builds (once, on the first C++ program) a precompiled-header directory."""
        self.unsandboxed = os.environ.get(UNSANDBOXED_ENV) == "1"
        if not self.unsandboxed:
            missing = [tool for tool in ("bwrap", "setpriv") if shutil.which(tool) is None]
            if missing:
                raise MonkeysError(
                    f"code verification runs programs in a sandbox and {' and '.join(missing)} "
                    f"is missing: apt-get install -y bubblewrap util-linux (or, only for code "
                    f"you trust, set {UNSANDBOXED_ENV}=1 to run it unsandboxed)"
                )
        self._pch_build, self._pch_lock = pch, threading.Lock()
        self._pch_dir: Path | None = None
        count = slots or os.cpu_count() or 1
        self._running = 0
        self._slots = count
        uids, self._uid_claim = _claim_uids(_UIDS_PER_SLOT * count, self.unsandboxed)
        self._uids = collections.deque(uids)
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
        }
        pch_dir = self._precompiled_headers() if language == "cpp" else None
        if pch_dir is not None:
            job["pch_dir"] = str(pch_dir)  # under shared_dir(): readable in the sandbox
        uid = self._take_uid()
        try:
            return self._run_job(job, uid, limits, pch_dir)
        finally:
            self._give_back(uid)

    def _run_job(
        self, job: dict[str, Any], uid: int, limits: Limits, pch_dir: Path | None
    ) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="monkeys-sandbox-") as scratch:
            if os.geteuid() == 0:  # the dropped uid owns its scratch directory
                os.chown(scratch, uid, uid)
            command = self._command(scratch, uid, pch_dir)
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

    def _command(self, scratch: str, uid: int, pch_dir: Path | None) -> list[str]:
        # The system interpreter and the harness as -c: nothing under the project, /root
        # or a virtualenv needs to be readable by the sandbox's uid.
        harness = [_system_python(), "-I", "-S", "-c", _HARNESS_SOURCE]
        if self.unsandboxed:
            return harness
        return [*_jail(uid, [Path(scratch)], scratch, {"HOME": scratch}), *harness]

    def run_command(
        self,
        argv: list[str],
        workdir: Path,
        *,
        env: dict[str, str],
        timeout_s: float,
        memory_bytes: int = 8 << 30,
        processes: int = 512,
        network: bool = False,
    ) -> tuple[int | None, str]:
        """Run ``argv`` in ``workdir``, the one writable directory (the rest of the host is
        read-only), with the host's network only if ``network``; returns (exit status, or
        None on timeout; combined output)."""
        uid = self._take_uid()
        try:
            if self.unsandboxed:
                command = argv
            else:
                if os.geteuid() == 0:
                    _chown_tree(workdir, uid)
                jail = _jail(uid, [workdir], str(workdir), {"HOME": "/tmp", **env}, network)
                limits = ["prlimit", f"--as={memory_bytes}", f"--nproc={processes}", "--"]
                command = [*jail, *limits, *argv]
            try:
                done = subprocess.run(
                    command,
                    cwd=workdir,
                    env={**os.environ, **env} if self.unsandboxed else None,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                )
            except subprocess.TimeoutExpired as expired:
                output = (expired.stdout or b"").decode("utf-8", "replace")
                return None, output
            output = done.stdout.decode("utf-8", "replace")
            if done.returncode != 0 and (output.startswith("bwrap:") or "setpriv:" in output):
                raise MonkeysError(f"the sandbox could not start: {output.strip()}")
            return done.returncode, output
        finally:
            _reap(uid)
            if os.geteuid() == 0 and not self.unsandboxed:
                _chown_tree(workdir, 0)
            self._give_back(uid)

    def _precompiled_headers(self) -> Path | None:
        with self._pch_lock:  # built once, by the first C++ job
            if self._pch_dir is None and self._pch_build is not None:
                self._pch_dir, self._pch_build = self._pch_build(), None
            return self._pch_dir

    def _take_uid(self) -> int:
        with self._lock:
            while self._running >= self._slots:
                self._lock.wait()
            self._running += 1
            return self._uids.popleft()

    def _give_back(self, uid: int) -> None:
        with self._lock:
            self._running -= 1
            self._uids.append(uid)
            self._lock.notify()


def _jail(
    uid: int, writable: list[Path], chdir: str, env: dict[str, str], network: bool = False
) -> list[str]:
    """bwrap under an unprivileged uid: no network (unless ``network``), host read-only
    but ``writable``."""
    drop = (
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        if os.geteuid() == 0
        else []
    )
    command = [
        *drop,
        "bwrap",
        "--unshare-all",
        *(["--share-net"] if network else []),
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/", "/",
        "--tmpfs", "/tmp",
        "--proc", "/proc",
        "--dev", "/dev",
    ]  # fmt: skip
    for directory in writable:
        command += ["--bind", str(directory), str(directory)]
    command += ["--chdir", chdir, "--clearenv"]
    for name, value in {"PATH": "/usr/local/bin:/usr/bin:/bin", **env}.items():
        command += ["--setenv", name, value]
    return command


def shared_dir(*parts: str) -> Path:
    """A directory under ``MONKEYS_SANDBOX_DIR`` (default /var/tmp/lm-eval-monkeys) that the
    sandbox's uids can traverse: bwrap runs as that uid, so whatever it mounts (a
    precompiled header, a test environment) must not sit under a private home."""
    path = Path(os.environ.get(SHARED_DIR_ENV) or "/var/tmp/lm-eval-monkeys", *parts)
    path.mkdir(parents=True, exist_ok=True)
    for directory in [path, *path.parents][: len(parts) + 1]:
        if directory.stat().st_uid == os.geteuid():
            directory.chmod(directory.stat().st_mode | 0o755)
    return path


def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), uid, uid)


def _claim_uids(count: int, unsandboxed: bool) -> tuple[range, IO[str] | None]:
    """``count`` uids that no other Sandbox on this machine uses. Block i is held through
    an flock on its lock file, which the kernel releases however the holder exits; without
    it two processes (two verifiers, Ray workers of one node) would share uids and reap
    each other's programs."""
    if os.geteuid() != 0 or unsandboxed:  # no uid is dropped to, none reaped
        return range(_FIRST_UID, _FIRST_UID + count), None
    _UID_LOCKS.mkdir(exist_ok=True)
    for block in range(256):
        handle = open(_UID_LOCKS / f"{block}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        first = _FIRST_UID + block * _UID_BLOCK
        return range(first, first + min(count, _UID_BLOCK)), handle
    raise MonkeysError(
        f"256 code sandboxes are already open on this machine (locks in {_UID_LOCKS}); "
        "wait for other verifiers to finish"
    )


def _reap(uid: int) -> None:
    """SIGKILL whatever still runs as this uid. Nothing runs user code after this; the
    kernel may take a second more to tear down the sandbox's namespaces, which is why uids
    rotate (a uid comes back only after all others) instead of waiting here."""
    if os.geteuid() != 0:
        return
    for pid in _running_as(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _running_as(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields.get(
            "State", ""
        ).strip().startswith("Z"):
            pids.append(int(entry.name))
    return pids


def _system_python() -> str:
    """The machine's own python3 (standard library only), readable by any uid."""
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return found or os.path.realpath(sys.executable)
