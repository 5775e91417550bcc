"""pid 1 of a code sandbox; started by ``sandbox.py`` (never imported), fd ``argv[1]`` its
channel to the checker.

It holds the program and nothing else: no test's input stays in it and no expected output
ever reaches it. It makes itself non-dumpable (so the program, the same uid, can neither
ptrace it nor read its ``/proc/1/mem`` or ``environ``), compiles the program once (a
binary is then kept in a sealed in-memory file, which no test can replace or change),
then for each test receives the input and two pipe ends as file descriptors and forks
into namespaces of its own: the child is pid 1 of a new pid namespace, in new mount and
IPC namespaces (SysV and POSIX message queues, semaphores); it mounts a fresh ``/tmp``,
``/dev/shm`` and ``/proc``, drops every capability, applies rlimits and the seccomp
filter and becomes the program: it execs the binary, or runs the Python code object
compiled here (a fork of this process, which holds nothing worth reading, costs ~2 ms
where a fresh interpreter costs ~15 ms per test). So each test starts from the same
state, and the program cannot see this process (it is outside the program's pid
namespace), so it can neither signal nor limit it. When the program ends, the kernel
ends everything in its namespaces and frees their mounts. (As a pid 1, the program
ignores the signals it sends itself without a handler, as every init does: ``abort()``
ends in SIGSEGV instead of SIGABRT, a runtime error either way.) The checker, outside
the sandbox, reads the output, enforces its cap and judges. Standard library only: it
runs under the system interpreter with ``-I -S``.

Unsandboxed (argv[2], a private directory; only for trusted code) there are no
namespaces: the program runs in that directory, which is emptied after each test.
"""

import builtins
import ctypes
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

# Unsandboxed (argv[2], a private directory), the scratch is that directory alone.
SCRATCH = tuple(sys.argv[2:]) or ("/tmp", "/dev/shm")
PROGRAM_DIR = os.path.join(SCRATCH[0], "program")  # where g++ works; removed after
PROGRAM_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 4, 38, 22, 2
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
LINUX_CAPABILITY_VERSION_3 = 0x20080522
BINARY_FD = 3  # where a program's binary sits in its process until execve
LIBC = ctypes.CDLL(None, use_errno=True)
HOLDING_THE_GIL = ctypes.PyDLL(None, use_errno=True)  # a raw clone must not release it
ISOLATED = os.getpid() == 1  # in the sandbox (a pid namespace of its own): tests isolated


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


def main():
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # The kernel shields pid 1 from its namespace's signals except those it handles:
    # Python handles SIGINT, so a program could interrupt this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = socket.socket(fileno=int(sys.argv[1]))
    job, fds = receive(channel)
    with os.fdopen(fds[0], "rb") as handle:
        source = handle.read()
    program_filter = bytes.fromhex(job["seccomp"])
    if ISOLATED:  # what every test needs, tried once: a clear refusal, not lost tests
        try:
            pid = fork_into_namespaces(job["clone"])
        except OSError as err:
            send(channel, {"error": None, "sandbox_error": f"no namespaces per test ({err})"})
            return
        if pid == 0:
            try:
                fresh_mounts(job["scratch_bytes"])
                os._exit(0)
            except BaseException:
                os._exit(1)
        if os.waitpid(pid, 0)[1] != 0:
            send(channel, {"error": None, "sandbox_error": "no mounts of its own per test"})
            return
    program, error = prepare(job, source)
    send(channel, {"error": error})
    if error is not None:
        return
    while True:
        try:
            request, fds = receive(channel)
        except EOFError:
            return
        outcome = run(program, request, fds, program_filter, job)
        outcome["scratch_emptied"] = ISOLATED or empty_scratch()
        send(channel, outcome)
        if not outcome["scratch_emptied"]:
            return


def checked(result):
    """``result`` of a libc call, or its errno raised."""
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def receive(channel):
    message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 4)
    if not message:
        raise EOFError
    return json.loads(message), fds


def send(channel, payload):
    channel.sendall(json.dumps(payload).encode())


def prepare(job, source):
    """The program (a sealed binary's descriptor or a Python code object), or a
    compilation error."""
    if job["language"] == "python":
        try:
            return compile(source, "solution.py", "exec"), None
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:  # deep nesting
            return None, f"{type(err).__name__}: {err}"
    os.makedirs(PROGRAM_DIR)
    path = os.path.join(PROGRAM_DIR, "main")
    with open(path + ".cpp", "wb") as handle:
        handle.write(source)
    command = ["g++", "-std=c++17", "-O2", "-pipe", "-o", path, path + ".cpp"]
    if job.get("pch_dir"):
        command[1:1] = ["-I", job["pch_dir"]]  # finds the precompiled bits/stdc++.h first
    limits = job["compile"]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            env=PROGRAM_ENV,
            timeout=limits["time_s"],
            preexec_fn=lambda: compiler_process(limits),
        )
        if done.returncode != 0:
            return None, done.stderr.decode("utf-8", "replace")
        return sealed_copy(path), None
    except subprocess.TimeoutExpired:
        return None, f"compilation exceeded {limits['time_s']} s"
    finally:
        shutil.rmtree(PROGRAM_DIR, ignore_errors=True)


def sealed_copy(path):
    """A read-only descriptor of an in-memory copy of ``path`` that nothing can change."""
    writable = os.memfd_create("program", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(path, "rb") as source, open(writable, "wb", closefd=False) as copy:
            shutil.copyfileobj(source, copy)
        seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
        fcntl.fcntl(writable, fcntl.F_ADD_SEALS, seals)
        # execve refuses a file open for writing: keep a read-only descriptor only
        return os.open(f"/proc/self/fd/{writable}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(writable)


def compiler_process(limits):
    os.setsid()  # its own group: the compiler's children end with it
    drop_capabilities()
    set_limits(limits)


def drop_capabilities():
    """No capability left (effective, permitted, inheritable, hence ambient): this
    process keeps CAP_SYS_ADMIN in the sandbox's user namespace to make each test's
    namespaces; nothing it starts may."""
    if not ISOLATED:
        return
    header = CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapData * 2)()
    checked(LIBC.capset(ctypes.byref(header), data))


def set_limits(limits):
    cpu = int(limits["time_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for name, value in (
        (resource.RLIMIT_AS, limits["memory_bytes"]),
        (resource.RLIMIT_FSIZE, limits["output_bytes"]),
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(name, (value, value))


def fork_into_namespaces(clone_number):
    """fork(), the child in new pid, mount and IPC namespaces (pid 1 of its own)."""
    flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | signal.SIGCHLD
    pid = HOLDING_THE_GIL.syscall(clone_number, flags, 0, 0, 0, 0)
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return pid


def run(program, request, fds, program_filter, job):
    """The program on the received stdin/stdout/stderr; its exit status and usage."""
    started = time.monotonic()
    pid = fork_into_namespaces(job["clone"]) if ISOLATED else os.fork()
    if pid == 0:
        try:
            if ISOLATED:
                fresh_mounts(job["scratch_bytes"])
            else:
                os.setsid()  # its own group: what kill_all_but_me ends
            become_program(program, request, fds, program_filter)
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    exited, _, _ = select.select([pidfd], [], [], request["time_s"])
    os.close(pidfd)
    kill_all_but_me(pid)
    _, status, usage = os.wait4(pid, 0)  # with it, its namespaces and mounts are gone
    elapsed = time.monotonic() - started
    while True:  # unsandboxed, orphans of the program are this process's children now
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return {
        "status": status,
        "timed_out": not exited,
        "time_s": elapsed,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_bytes": usage.ru_maxrss * 1024,
    }


def fresh_mounts(scratch_bytes):
    """In a test's new mount namespace: empty scratch mounts and a /proc of its pids."""
    checked(LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
    size = f"size={scratch_bytes},mode=0755".encode()
    for path in SCRATCH:
        checked(LIBC.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, size))
    checked(LIBC.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None))


def become_program(program, request, fds, program_filter):
    for target, fd in enumerate(fds):  # stdin, stdout, stderr
        os.dup2(fd, target)
    if isinstance(program, int):
        os.dup2(program, BINARY_FD, inheritable=False)
    os.closerange(BINARY_FD + isinstance(program, int), 1 << 16)
    os.chdir(SCRATCH[0])
    drop_capabilities()
    try:  # the program, not the runner, is what the job's cgroup kills at its limit
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    except OSError:
        pass
    set_limits(request)
    buffer = ctypes.create_string_buffer(program_filter)
    fprog = SockFprog(len(program_filter) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return
    if LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return  # never run a program without its filter
    if isinstance(program, int):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as a binary started by a shell
        os.execve(BINARY_FD, ["main"], PROGRAM_ENV)
    os._exit(run_python(program))


def run_python(code):
    """Exit status of ``code`` run as ``python3 solution.py`` would run it."""
    sys.argv = ["solution.py"]
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
        status = 0
    except SystemExit as exit_:
        status = exit_status(exit_.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # the program closed it: judged on what it wrote
    return status


def exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def kill_all_but_me(pid):
    """As pid 1, kill(-1) reaches every other process of the sandbox's pid namespace (a
    test's init among them: the kernel then ends the rest of its namespace); unsandboxed,
    only the test's process group is known."""
    try:
        if ISOLATED:
            os.kill(-1, signal.SIGKILL)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def empty_scratch():
    """Unsandboxed: remove everything the program left in its directory; False if
    something stays."""
    for entry in os.scandir(SCRATCH[0]):
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except (OSError, RecursionError):
            pass  # reported by the final look
    return not os.listdir(SCRATCH[0])


if __name__ == "__main__":
    main()
