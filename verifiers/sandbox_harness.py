"""Runs one program's tests inside the sandbox; started by ``sandbox.py``, never imported.

Reads a job (JSON on stdin), compiles once, then forks once per test: the child applies the
rlimits and runs the program (a Python code object or a compiled binary), the parent
enforces the wall-clock limit, caps the output, kills the child's process group and
compares. Writes the verdicts as JSON on stdout. Standard library only: it runs under
the system interpreter with ``-I``.
"""

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time

MLE_EXIT = 99  # a Python child reports MemoryError with this status


def main():
    job = json.load(sys.stdin)
    program, error = prepare(job)
    if error is not None:
        emit({"verdict": "CE", "detail": error[-2000:], "tests": []})
        return
    results = []
    for number, test in enumerate(job["tests"]):
        result = run_test(program, job, test["input"])
        if result["verdict"] == "OK":
            result["verdict"] = "AC" if same_output(result.pop("stdout"), test["output"]) else "WA"
        result.pop("stdout", None)
        result["test"] = number
        results.append(result)
        if result["verdict"] != "AC" and job.get("stop_at_first_failure", True):
            break
    failed = [r for r in results if r["verdict"] != "AC"]
    emit({"verdict": failed[0]["verdict"] if failed else "AC", "detail": "", "tests": results})


def emit(payload):
    sys.stdout.write(json.dumps(payload))
    sys.stdout.flush()


def prepare(job):
    """A callable that runs the program in the current (child) process, or a CE message."""
    source = job["source"]
    if job["language"] == "python":
        try:
            code = compile(source, "solution.py", "exec")
        except (SyntaxError, ValueError) as err:
            return None, f"{type(err).__name__}: {err}"
        return ("python", code), None
    with open("main.cpp", "w") as handle:
        handle.write(source)
    command = ["g++", "-std=c++17", "-O2", "-pipe", "-o", "main", "main.cpp"]
    if job.get("pch_dir"):
        command[1:1] = ["-I", job["pch_dir"]]  # finds the precompiled bits/stdc++.h first
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: limit(60, 2 << 30, job["output_bytes"], 64),
        )
    except subprocess.TimeoutExpired:
        return None, "compilation timed out"
    if done.returncode != 0:
        return None, done.stderr
    return ("binary", os.path.abspath("main")), None


def limit(cpu_s, memory_bytes, file_bytes, processes):
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_test(program, job, test_input):
    with open("input.txt", "w") as handle:
        handle.write(test_input)
    out_read, out_write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: becomes the program
        try:
            os.close(out_read)
            os.dup2(os.open("input.txt", os.O_RDONLY), 0)
            os.dup2(out_write, 1)
            os.dup2(os.open("stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
            limit(
                int(job["time_s"]) + 1, job["memory_bytes"], job["output_bytes"], job["processes"]
            )
            kind, target = program
            if kind == "binary":
                os.execv(target, [target])
            sys.stdin = open(0)
            sys.stdout = open(1, "w")
            exec(target, {"__name__": "__main__"})
            sys.stdout.flush()
            os._exit(0)
        except MemoryError:
            os._exit(MLE_EXIT)
        except SystemExit as exit_:
            sys.stdout.flush()
            os._exit(exit_.code if isinstance(exit_.code, int) else 1)
        except BaseException:
            os._exit(1)
    os.close(out_write)
    output, verdict, detail = read_output(out_read, started + job["time_s"], job["output_bytes"])
    try:
        os.killpg(pid, signal.SIGKILL)  # the program and anything it started
    except ProcessLookupError:
        pass
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.monotonic() - started
    if verdict is None:
        verdict, detail = classify(status, usage, job)
    return {"verdict": verdict, "detail": detail, "time_s": round(elapsed, 4), "stdout": output}


def read_output(fd, deadline, cap):
    chunks, size = [], 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.close(fd)
            return b"", "TLE", "wall-clock limit"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            os.close(fd)
            return b"".join(chunks), None, ""
        size += len(chunk)
        if size > cap:
            os.close(fd)
            return b"", "WA", "output limit exceeded"
        chunks.append(chunk)


def classify(status, usage, job):
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        if code == 0:
            return "OK", ""
        if code == MLE_EXIT:
            return "MLE", "memory limit"
        return "RE", f"exit status {code}"
    sig = os.WTERMSIG(status)
    if sig in (signal.SIGXCPU, signal.SIGKILL) and usage.ru_utime + usage.ru_stime >= job["time_s"]:
        return "TLE", "CPU-time limit"
    if sig == signal.SIGXFSZ:
        return "WA", "file size limit"
    with open("stderr.txt", "rb") as handle:
        stderr = handle.read(1 << 16)
    if b"bad_alloc" in stderr or usage.ru_maxrss * 1024 >= 0.9 * job["memory_bytes"]:
        return "MLE", f"signal {sig}: out of memory"
    return "RE", f"signal {sig}"


def same_output(actual, expected):
    """DeepMind's comparison: whitespace tokens, case-insensitive, floats within 1e-5."""
    got = actual.decode("utf-8", "replace").split()
    want = expected.split()
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if a.lower() == b.lower():
            continue
        try:
            x, y = float(a), float(b)
        except ValueError:
            return False
        if abs(x - y) > 1e-5 * max(1.0, abs(y)):
            return False
    return True


if __name__ == "__main__":
    main()
