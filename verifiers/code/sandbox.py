"""Run untrusted programs in bubblewrap sandboxes, each as an unprivileged uid.

A code job is one sandbox: no network, its own pid namespace, only system directories
visible (read-only), ``/tmp`` and ``/dev/shm`` as small tmpfs mounts, an empty
environment and ``/`` as working directory for bubblewrap itself. Its pid 1 is
``sandbox_runner.py``, which holds only the program and runs each test in fresh
namespaces of its own (pid, mount with new scratch mounts, IPC); this process, outside the sandbox
and under another uid, sends each test's input and reads, caps and returns the output,
so nothing the program can reach holds an expected output. ``run_command`` runs other
commands (SWE-bench's test runs) in the same kind of jail with the whole host read-only.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.code.cgroup import MemoryCgroup, job_cgroup
from lm_eval_monkeys.verifiers.code.seccomp import program_filter, system_call_number

_RUNNER_SOURCE = Path(__file__).with_name("sandbox_runner.py").read_text()
UNSANDBOXED_ENV = "MONKEYS_UNSANDBOXED_I_TRUST_THIS_CODE"
SHARED_DIR_ENV = "MONKEYS_SANDBOX_DIR"
_FIRST_UID = 61_000  # a uid per concurrent sandbox: RLIMIT_NPROC counts per uid
_UIDS_PER_SLOT = 8  # uids rotate, so a uid is reused only after its namespaces are gone
_UID_BLOCK = 8192  # uids of one Sandbox: up to 1,024 slots
_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin")
_STDERR_KEPT = 1 << 16
_PIPE_BYTES = 1 << 20  # the default /proc/sys/fs/pipe-max-size
_UID_LOCKS = Path(tempfile.gettempdir()) / "lm-eval-monkeys-uids"
_KERNEL_MOUNTS = ("--proc", "/proc", "--dev", "/dev")
_SCRATCH_BYTES = 64 << 20  # each of a job's tmpfs mounts (/tmp, /dev/shm)
_HANG_GUARD_S = 10.0  # past the time limit: the runner itself stopped answering


@dataclass(frozen=True)
class Limits:
    """Per-test limits; ``time_s`` is the problem's limit plus slack."""

    time_s: float = 2.0
    memory_bytes: int = 256 << 20
    output_bytes: int = 64 << 20
    processes: int = 16
    open_files: int = 64


COMPILE_LIMITS = Limits(time_s=60, memory_bytes=2 << 30, processes=64, open_files=256)


@dataclass(frozen=True)
class Outcome:
    """What one run of a program did: its output (``stdout`` complete unless
    ``output_exceeded``), the first 64 KiB of stderr, the wait status and usage."""

    stdout: bytes
    stderr: bytes
    status: int
    timed_out: bool
    output_exceeded: bool
    time_s: float
    cpu_s: float
    maxrss_bytes: int
    oom_killed: bool  # by the job's memory cgroup (program memory and tmpfs files)


@dataclass(frozen=True)
class Mount:
    """A host directory shown at another path in a ``run_command`` sandbox (a fixed
    path, the same for every run), writable only if it lies in the run's own directory."""

    source: Path
    target: Path
    writable: bool = False


class SandboxLost(Exception):
    """The sandbox stopped answering, its runner died, or it could not be emptied for
    the next test; the test fails with RE and this message."""


class Sandbox:
    """Starts sandboxes, at most ``slots`` at once, each under its own unprivileged uid."""

    def __init__(
        self,
        slots: int | None = None,
        pch: Callable[[], Path | None] | None = None,
        *,
        memory_cgroups: bool = True,
    ) -> None:
        """``pch`` builds (once, on the first C++ program) a precompiled-header directory;
        without ``memory_cgroups`` (or where none can be made) a job's memory is bounded
        by keeping it to one process (see ``seccomp.py``)."""
        self.unsandboxed = os.environ.get(UNSANDBOXED_ENV) == "1"
        if not self.unsandboxed:
            missing = [tool for tool in ("bwrap", "setpriv") if shutil.which(tool) is None]
            if missing:
                raise MonkeysError(
                    f"code verification runs programs in a sandbox and {' and '.join(missing)} "
                    f"is missing: apt-get install -y bubblewrap util-linux (or, only for code "
                    f"you trust, set {UNSANDBOXED_ENV}=1 to run it unsandboxed)"
                )
            if os.geteuid() != 0:
                raise MonkeysError(
                    f"the sandbox runs programs as an unprivileged uid, which needs root: as "
                    f"uid {os.geteuid()} they would run as you and read your files; run the "
                    f"verifier as root (or, only for code you trust, set {UNSANDBOXED_ENV}=1)"
                )
        self._pch_build, self._pch_lock = pch, threading.Lock()
        self._pch_dir: Path | None = None
        count = slots or os.cpu_count() or 1
        self._running = 0
        self._slots = count
        self.uids, self._uid_claim = _claim_uids(_UIDS_PER_SLOT * count, self.unsandboxed)
        self._uids = collections.deque(self.uids)
        self._lock = threading.Condition()
        self.memory_cgroups = memory_cgroups
        self._filters = {one: program_filter(single_process=one).hex() for one in (False, True)}

    @contextmanager
    def program(self, language: str, source: str) -> Iterator[Program]:
        """A sandbox holding ``source`` compiled (``Program.error`` says why not)."""
        pch_dir = self._precompiled_headers() if language == "cpp" else None
        uid = self._take_uid()
        try:
            cgroup_name = f"monkeys-{os.getpid()}-{uid}"
            with (
                job_cgroup(cgroup_name, COMPILE_LIMITS.memory_bytes, self.memory_cgroups) as cgroup,
                _start_runner(uid, pch_dir, self.unsandboxed, cgroup) as runner,
            ):
                seccomp = self._filters[cgroup is None]
                yield Program(runner, language, source, pch_dir, seccomp, cgroup)
        finally:
            self._reap(uid)
            self._give_back(uid)

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
        visible: list[Path] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> tuple[int | None, str]:
        """Run ``argv`` in ``workdir``, the one writable directory (the rest of the host is
        read-only; with ``visible``, only the system directories, /etc and those paths
        are there; ``mounts`` shows directories at other paths), with the host's network
        only if ``network``; returns (exit status, or None on timeout; combined output)."""
        for mount in mounts:  # the caller's mistake, not the input's
            if self.unsandboxed or (mount.writable and not mount.source.is_relative_to(workdir)):
                raise MonkeysError(
                    f"cannot show {mount.source} at {mount.target}: only a sandbox shows a "
                    "directory at another path, and only the run's own directory writable"
                )
        uid = self._take_uid()
        try:
            if self.unsandboxed:
                command = argv
            else:
                _chown_tree(workdir, uid)
                shown = _host_mounts([workdir]) if visible is None else _only(visible, workdir)
                setup = [*(["--share-net"] if network else []), *_at_paths(shown, mounts)]
                jail = _jail(uid, setup, str(workdir), {"HOME": "/tmp", **env})
                limits = ["prlimit", f"--as={memory_bytes}", f"--nproc={processes}", "--"]
                command = [*jail, *limits, *argv]
            try:
                done = subprocess.run(
                    command,
                    cwd=workdir,
                    env={**os.environ, **env} if self.unsandboxed else {},
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
            self._reap(uid)
            if not self.unsandboxed:
                _chown_tree(workdir, 0)
            self._give_back(uid)

    def _precompiled_headers(self) -> Path | None:
        with self._pch_lock:  # built once, by the first C++ job
            if self._pch_dir is None and self._pch_build is not None:
                self._pch_dir, self._pch_build = self._pch_build(), None
            return self._pch_dir

    def _reap(self, uid: int) -> None:
        """SIGKILL whatever still runs as this uid. Nothing runs user code after this; the
        kernel may take a second more to tear down the sandbox's namespaces, which is why
        uids rotate (a uid comes back only after all others) instead of waiting here.
        Unsandboxed, the uids are nominal (maybe another checker's): nothing is killed."""
        if self.unsandboxed:
            return
        for pid in _running_as(uid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

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


class Program:
    """A compiled program in its sandbox; ``run`` it once per test."""

    def __init__(
        self,
        runner: _Runner,
        language: str,
        source: str,
        pch_dir: Path | None,
        filter_hex: str,
        cgroup: MemoryCgroup | None,
    ) -> None:
        self._runner, self._cgroup, self._cgroup_limit = runner, cgroup, 0
        job = {
            "language": language,
            "pch_dir": str(pch_dir) if pch_dir else None,
            "compile": asdict(COMPILE_LIMITS),
            "seccomp": filter_hex,
            "clone": system_call_number("clone"),
            "scratch_bytes": _SCRATCH_BYTES,
        }
        with _sealed_file(source.encode("utf-8", "surrogatepass")) as source_fd:
            reply = runner.exchange(job, [source_fd], timeout_s=COMPILE_LIMITS.time_s + 30)
        if "sandbox_error" in reply:  # the same for every program: stop, do not judge
            raise MonkeysError(
                f"the code sandbox cannot isolate tests here: {reply['sandbox_error']}; it "
                "needs unprivileged user namespaces (kernel.unprivileged_userns_clone=1)"
            )
        self.error: str | None = reply["error"]

    def run(self, stdin: str, limits: Limits) -> Outcome:
        """Run the program once on ``stdin``; raises ``SandboxLost`` if the sandbox dies."""
        oom_kills = self._limit_cgroup(limits.memory_bytes)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        fcntl.fcntl(out_read, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # fewer wake-ups per MB read
        try:
            with _sealed_file(stdin.encode("utf-8", "surrogatepass")) as input_fd:
                self._runner.send(asdict(limits), [input_fd, out_write, err_write])
        finally:
            os.close(out_write)  # the program's ends now: EOF when it and its children end
            os.close(err_write)
        deadline = time.monotonic() + limits.time_s + _HANG_GUARD_S
        try:
            stdout, stderr, exceeded = _read_outputs(
                out_read, err_read, limits.output_bytes, deadline
            )
        finally:
            os.close(out_read)  # past the output cap, the program's next write fails
            os.close(err_read)
        report = self._runner.receive(max(deadline - time.monotonic(), 0.1))
        if not report["scratch_emptied"]:
            raise SandboxLost("the program left files in /tmp the sandbox could not remove")
        return Outcome(
            stdout=stdout,
            stderr=stderr,
            status=report["status"],
            timed_out=report["timed_out"],
            output_exceeded=exceeded,
            time_s=report["time_s"],
            cpu_s=report["cpu_s"],
            maxrss_bytes=report["maxrss_bytes"],
            oom_killed=self._cgroup is not None and self._cgroup.oom_kills() > oom_kills,
        )

    def _limit_cgroup(self, memory_bytes: int) -> int:
        """Set the job's cgroup to this test's memory limit; its OOM kills so far."""
        if self._cgroup is None:
            return 0
        if self._cgroup_limit != memory_bytes:
            self._cgroup.limit(memory_bytes)
            self._cgroup_limit = memory_bytes
        return self._cgroup.oom_kills()


class _Runner:
    """The channel to a sandbox's pid 1: JSON messages with file descriptors attached."""

    def __init__(self, channel: socket.socket, process: subprocess.Popen[bytes]) -> None:
        self._channel, self.process = channel, process

    def send(self, payload: dict[str, Any], fds: list[int]) -> None:
        try:
            socket.send_fds(self._channel, [json.dumps(payload).encode()], fds)
        except OSError as err:
            raise SandboxLost(f"the sandbox's runner is gone ({err})") from None

    def receive(self, timeout_s: float) -> dict[str, Any]:
        self._channel.settimeout(timeout_s)
        try:
            message = self._channel.recv(1 << 16)
        except TimeoutError:
            raise SandboxLost(f"the sandbox did not answer within {timeout_s:.0f} s") from None
        except OSError as err:
            raise SandboxLost(f"the sandbox's runner is gone ({err})") from None
        if not message:
            raise SandboxLost("the sandbox's runner died")
        return json.loads(message)

    def exchange(self, payload: dict[str, Any], fds: list[int], timeout_s: float) -> Any:
        self.send(payload, fds)
        return self.receive(timeout_s)


@contextmanager
def _start_runner(
    uid: int, pch_dir: Path | None, unsandboxed: bool, cgroup: MemoryCgroup | None
) -> Iterator[_Runner]:
    with ExitStack() as stack:
        runner = [_system_python(), "-I", "-S", "-c", _RUNNER_SOURCE, "{fd}"]
        if unsandboxed:
            private = stack.enter_context(tempfile.TemporaryDirectory(prefix="monkeys-code-"))
            command = [*runner, private]
        else:
            mounts = [*_system_mounts(), *_scratch_mounts(_SCRATCH_BYTES)]
            if pch_dir is not None:
                mounts += ["--ro-bind", str(pch_dir), str(pch_dir)]
            mounts += ["--remount-ro", "/"]  # bwrap's own root, where it made mount points
            # The program gets no user namespace (no mounts of its own); the runner keeps
            # CAP_SYS_ADMIN in the sandbox's, to give each test fresh namespaces.
            userns = ["--unshare-user", "--disable-userns", "--cap-add", "CAP_SYS_ADMIN"]
            command = [*_jail(uid, [*userns, *mounts], "/", {}), "--as-pid-1", *runner]
        if cgroup is not None:  # joined before anything of the job starts
            command = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup.procs), *command]
        yield stack.enter_context(_runner_process(command))


@contextmanager
def _runner_process(command: list[str]) -> Iterator[_Runner]:
    """``command`` started with one end of a socket pair as the fd named by ``{fd}``."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    process = subprocess.Popen(
        [arg.replace("{fd}", str(theirs.fileno())) for arg in command],
        env={},  # nothing of this process's environment reaches the sandbox
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=[theirs.fileno()],
    )
    theirs.close()
    try:
        yield _Runner(ours, process)
    except SandboxLost:
        process.kill()
        stderr = process.communicate()[1].decode("utf-8", "replace")
        if stderr.startswith("bwrap:") or "setpriv:" in stderr:
            raise MonkeysError(f"the sandbox could not start: {stderr.strip()}") from None
        raise
    finally:
        ours.close()  # the runner sees EOF and exits; everything in the sandbox dies
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@contextmanager
def _sealed_file(data: bytes) -> Iterator[int]:
    """A read-only descriptor of an in-memory file holding ``data`` (the program's stdin
    or source: it cannot write to it, and nothing of it is on disk)."""
    writable = os.memfd_create("monkeys", os.MFD_CLOEXEC)
    try:
        with open(writable, "wb", closefd=False) as handle:
            handle.write(data)
        readable = os.open(f"/proc/self/fd/{writable}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(writable)
    try:
        yield readable
    finally:
        os.close(readable)


def _read_outputs(out_fd: int, err_fd: int, cap: int, deadline: float) -> tuple[bytes, bytes, bool]:
    """Read stdout and stderr to their ends (the program may close stdout and go on
    computing: it is judged on what it wrote). Past ``cap`` bytes of stdout, stop reading:
    the program's next write fails. Raises SandboxLost at ``deadline``."""
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    size, kept_err = 0, 0
    open_fds = {out_fd, err_fd}
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SandboxLost("the sandbox did not end the program at its time limit")
        ready, _, _ = select.select(list(open_fds), [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, _PIPE_BYTES)
            if not chunk:
                open_fds.discard(fd)
            elif fd == out_fd:
                size += len(chunk)
                if size > cap:
                    return b"", b"".join(stderr), True
                stdout.append(chunk)
            elif kept_err < _STDERR_KEPT:
                stderr.append(chunk[: _STDERR_KEPT - kept_err])
                kept_err += len(stderr[-1])
    return b"".join(stdout), b"".join(stderr), False


def _jail(uid: int, setup: list[str], chdir: str, env: dict[str, str]) -> list[str]:
    """bwrap under an unprivileged uid, no network, seeing only what ``setup`` (bwrap
    options: mounts and the like) gives it."""
    command = [
        _tool("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        _tool("bwrap"),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        *setup,
        "--chdir", chdir,
        "--clearenv",
    ]  # fmt: skip
    for name, value in {"PATH": "/usr/local/bin:/usr/bin:/bin", **env}.items():
        command += ["--setenv", name, value]
    return command


def _host_mounts(writable: list[Path]) -> list[str]:
    """The whole host read-only, ``writable`` directories writable, a private /tmp."""
    mounts = ["--ro-bind", "/", "/", *_KERNEL_MOUNTS, "--tmpfs", "/tmp"]
    for directory in writable:
        mounts += ["--bind", str(directory), str(directory)]
    return mounts


def _only(visible: list[Path], writable: Path) -> list[str]:
    """The system directories and /etc, ``visible`` read-only, ``writable`` writable, a
    private /tmp: nothing else of the host (no data, no other runs' files)."""
    mounts = [*_system_mounts(), "--ro-bind", "/etc", "/etc", "--tmpfs", "/tmp"]
    for path in visible:
        mounts += ["--ro-bind", str(path), str(path)]
    return [*mounts, "--bind", str(writable), str(writable), "--remount-ro", "/"]


def _at_paths(shown: list[str], mounts: Sequence[Mount]) -> list[str]:
    """``shown`` with ``mounts`` added, before the root's remount read-only (bwrap makes
    their mount points in its root)."""
    at = [arg for m in mounts for arg in
          ("--bind" if m.writable else "--ro-bind", str(m.source), str(m.target))]  # fmt: skip
    if shown[-2:] == ["--remount-ro", "/"]:
        return [*shown[:-2], *at, *shown[-2:]]
    return [*shown, *at]


def _system_mounts() -> list[str]:
    """The system's programs and libraries, read-only (merged-/usr links as links)."""
    mounts: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    return [*mounts, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", *_KERNEL_MOUNTS]


def _scratch_mounts(size: int) -> list[str]:
    """Size-capped tmpfs mounts (after ``--dev``, which would cover ``/dev/shm``)."""
    return [arg for path in ("/tmp", "/dev/shm") for arg in ("--size", str(size), "--tmpfs", path)]


def _tool(name: str) -> str:
    """Absolute path: the sandbox tools are started with an empty environment."""
    return shutil.which(name) or name


def shared_dir(*parts: str) -> Path:
    """A directory under ``MONKEYS_SANDBOX_DIR`` (default /var/tmp/lm-eval-monkeys) that the
    sandbox's uids can traverse: bwrap runs as that uid, so whatever it mounts (a
    precompiled header, a test environment) must not sit under a private home."""
    path = Path(os.environ.get(SHARED_DIR_ENV) or "/var/tmp/lm-eval-monkeys")
    for depth in range(len(parts) + 1):
        trusted_dir(path.joinpath(*parts[:depth]))
    return path.joinpath(*parts)


def trusted_dir(directory: Path) -> Path:
    """``directory``, created if missing, refused unless it is a real directory (not a
    symlink) owned by root or this user and writable by no one else: what the sandbox
    mounts and this process writes as root comes from there, so another local user must
    not be able to plant or redirect it. Made traversable for the sandbox's uids."""
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        pass
    except OSError as err:
        raise MonkeysError(
            f"cannot create the sandbox directory {directory} ({err.strerror}): set "
            f"{SHARED_DIR_ENV} to a directory you own"
        ) from None
    info = os.lstat(directory)
    problem = (
        "is a symlink"
        if stat.S_ISLNK(info.st_mode)
        else "is not a directory"
        if not stat.S_ISDIR(info.st_mode)
        else f"is owned by uid {info.st_uid}"
        if info.st_uid not in (0, os.geteuid())
        else "is writable by others"
        if info.st_mode & 0o022
        else None
    )
    if problem:
        raise MonkeysError(
            f"the sandbox directory {directory} {problem}: remove it, or set {SHARED_DIR_ENV} "
            "to a directory owned by you (or root) and writable by no one else"
        )
    if info.st_uid == os.geteuid():
        os.chmod(directory, 0o755)
    return directory


def _chown_tree(root: Path, uid: int) -> None:
    """Without recursion (os.walk recurses: a tree thousands of directories deep, which
    a sandboxed command can leave, would raise RecursionError here); links not followed.
    A file with several hard links keeps its owner when the tree is given to a sandbox's
    uid: it may be shared with a store outside the tree (the SWE-bench runner links its
    environment copies to an image), which the sandbox must not be able to change."""
    os.chown(root, uid, uid)
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                directory = entry.is_dir(follow_symlinks=False)
                if uid == 0 or directory or entry.stat(follow_symlinks=False).st_nlink == 1:
                    os.lchown(entry.path, uid, uid)
                if directory:
                    pending.append(entry.path)


def _claim_uids(count: int, unsandboxed: bool) -> tuple[range, IO[str] | None]:
    """``count`` uids that no other Sandbox on this machine uses. Block i is held through
    an flock on its lock file, which the kernel releases however the holder exits; without
    it two processes (two verifiers, Ray workers of one node) would share uids and reap
    each other's programs."""
    if unsandboxed:  # no uid is dropped to, none reaped
        return range(_FIRST_UID, _FIRST_UID + count), None
    locks = trusted_dir(_UID_LOCKS)
    for block in range(256):
        fd = os.open(locks / f"{block}.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        handle = open(fd, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        first = _FIRST_UID + block * _UID_BLOCK
        return range(first, first + min(count, _UID_BLOCK)), handle
    raise MonkeysError(
        f"256 code sandboxes are already open on this machine (locks in {locks}); "
        "wait for other verifiers to finish"
    )


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
