"""pid 1 of a code sandbox; started by ``sandbox.py`` (never imported), fd ``argv[1]`` its
channel to the checker.

It holds the program and nothing else: no test's input stays in it and no expected output
ever reaches it. It makes itself non-dumpable (so the program, the same uid, can neither
ptrace it nor read its ``/proc/1/mem`` or ``environ``), compiles the program once, then for
each test receives the input and two pipe ends as file descriptors and forks; the child
applies rlimits and the seccomp filter and becomes the program: it execs a binary, or
runs the Python code object compiled here (a fork of this process, which holds nothing
worth reading, costs ~2 ms where a fresh interpreter costs ~15 ms per test). After each
test it kills every other process in the sandbox and empties the scratch mounts. The
checker, outside the sandbox, reads the output, enforces its cap and judges. Standard
library only: it runs under the system interpreter with ``-I -S``.
"""

import builtins
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback

# Unsandboxed (argv[2], a private directory), the scratch is that directory alone.
SCRATCH = tuple(sys.argv[2:]) or ("/tmp", "/dev/shm")
PROGRAM_DIR = os.path.join(SCRATCH[0], "program")
PROGRAM_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 4, 38, 22, 2
LIBC = ctypes.CDLL(None, use_errno=True)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


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
    program, error = prepare(job, source)
    send(channel, {"error": error})
    if error is not None:
        return
    keep = {os.path.join(PROGRAM_DIR, name) for name in os.listdir(PROGRAM_DIR)}
    while True:
        try:
            request, fds = receive(channel)
        except EOFError:
            return
        outcome = run(program, request, fds, program_filter)
        outcome["scratch_emptied"] = empty_scratch(keep)
        send(channel, outcome)
        if not outcome["scratch_emptied"]:
            return


def receive(channel):
    message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 4)
    if not message:
        raise EOFError
    return json.loads(message), fds


def send(channel, payload):
    channel.sendall(json.dumps(payload).encode())


def prepare(job, source):
    """The program (a binary's path or a Python code object), or a compilation error."""
    os.makedirs(PROGRAM_DIR)
    if job["language"] == "python":
        try:
            return compile(source, "solution.py", "exec"), None
        except (SyntaxError, ValueError) as err:
            return None, f"{type(err).__name__}: {err}"
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
            preexec_fn=lambda: set_limits(limits),
        )
    except subprocess.TimeoutExpired:
        return None, f"compilation exceeded {limits['time_s']} s"
    os.remove(path + ".cpp")
    if done.returncode != 0:
        return None, done.stderr.decode("utf-8", "replace")
    return path, None


def set_limits(limits):
    os.setsid()
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


def run(program, request, fds, program_filter):
    """The program on the received stdin/stdout/stderr; its exit status and usage."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            become_program(program, request, fds, program_filter)
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    exited, _, _ = select.select([pidfd], [], [], request["time_s"])
    os.close(pidfd)
    kill_all_but_me(pid)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.monotonic() - started
    while True:  # orphans of the program are this process's children now
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


def become_program(program, request, fds, program_filter):
    for target, fd in enumerate(fds):  # stdin, stdout, stderr
        os.dup2(fd, target)
    os.closerange(3, 1 << 16)
    os.chdir(SCRATCH[0])
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
    if isinstance(program, str):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as a binary started by a shell
        os.execve(program, [program], PROGRAM_ENV)
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
    """As pid 1, kill(-1) reaches every other process of the sandbox's pid namespace;
    unsandboxed, only the program's process group is known."""
    try:
        if os.getpid() == 1:
            os.kill(-1, signal.SIGKILL)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def empty_scratch(keep):
    """Remove everything the program left in the scratch mounts; False if something stays."""
    for root in SCRATCH:
        for directory, dirs, _ in os.walk(root):
            for name in dirs:  # a program may have made its directories unreadable
                path = os.path.join(directory, name)
                if not os.path.islink(path):
                    os.chmod(path, stat.S_IRWXU)
        for entry in os.scandir(root):
            if entry.path == PROGRAM_DIR:
                for inner in os.scandir(PROGRAM_DIR):
                    if inner.path not in keep:
                        remove(inner)
            else:
                remove(entry)
    left = [e.path for root in SCRATCH for e in os.scandir(root) if e.path != PROGRAM_DIR]
    return not left and set(os.listdir(PROGRAM_DIR)) <= {os.path.basename(k) for k in keep}


def remove(entry):
    try:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    except OSError:
        pass  # reported by empty_scratch's final look


if __name__ == "__main__":
    main()
