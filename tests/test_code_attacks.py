"""Attacks on the code verifier: each program prints the right answer only if its attack
works, so AC means a hole. Every one got AC on the sandbox before issue 12.

Real programs in real bubblewrap sandboxes, as an unprivileged uid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.code.cgroup import own_hierarchy
from lm_eval_monkeys.verifiers.code.codecontests import CodeChecker, extract_program

EXPECTED = "monkeys-expected-5c1d2e"  # the one test's answer; the attacks look for it
SECRET = "monkeys-secret-9e4b"


def problem(tests: list[tuple[str, str]], seconds: int = 10, memory: int = 256 << 20) -> dict:
    return {
        "name": "attack",
        "description": "",
        "public_tests": {"input": [i for i, _ in tests], "output": [o for _, o in tests]},
        "private_tests": {"input": [], "output": []},
        "generated_tests": {"input": [], "output": []},
        "time_limit": {"seconds": seconds, "nanos": 0},
        "memory_limit_bytes": memory,
    }


LEAK = problem([("1\n", EXPECTED + "\n")])
ADD = problem([("1 2\n", "3\n"), ("5 7\n", "12\n"), ("100 -1\n", "99\n")])


def py(body: str) -> str:
    return f"```python\n{body}\n```"


def cpp(body: str) -> str:
    return f"```cpp\n{body}\n```"


# Strings are assembled at run time so that the program's own text never holds the marker.
FIND_IN_PYTHON_OBJECTS = """
PREFIX = "monkeys-" + "expected-"
def found(value):
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) > len(PREFIX)
"""
PARENT_FRAMES = py(
    FIND_IN_PYTHON_OBJECTS
    + """
import sys
def scan(obj, seen, depth=0):
    if found(obj):
        return obj
    if depth > 8 or id(obj) in seen or not isinstance(obj, (dict, list, tuple)):
        return None
    seen.add(id(obj))
    for item in (obj.values() if isinstance(obj, dict) else obj):
        hit = scan(item, seen, depth + 1)
        if hit:
            return hit
frame = sys._getframe()
while frame is not None:
    hit = scan(dict(frame.f_locals), set())
    if hit:
        print(hit.strip())
        break
    frame = frame.f_back
"""
)
GC_OBJECTS = py(
    FIND_IN_PYTHON_OBJECTS
    + """
import gc
def values(obj):  # dicts of strings only are untracked by gc: look one level down
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for item in items:
        yield item
        if isinstance(item, dict):
            yield from item.values()
hits = [v for obj in gc.get_objects() for v in values(obj) if found(v)]
if hits:
    print(hits[0].strip())
"""
)
# Scans the readable memory of the parent and of pid 1 for the marker; READ(pid, fd,
# buffer, size, address) is how one attack reads another process's memory.
CPP_SCAN = """
#include <bits/stdc++.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
READER
int main() {
    std::string prefix = std::string("monkeys-") + "expected-";
    for (pid_t pid : {getppid(), (pid_t)1}) {
        std::string proc = "/proc/" + std::to_string(pid);
        if (!attach(pid, proc)) continue;
        std::ifstream maps(proc + "/maps");
        std::string line;
        while (std::getline(maps, line)) {
            unsigned long lo, hi;
            char perms[5];
            if (sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) != 3) continue;
            if (perms[0] != 'r' || hi - lo > (64UL << 20)) continue;
            std::string buffer(hi - lo, '\\0');
            long got = READ(pid, &buffer[0], buffer.size(), lo);
            if (got <= 0) continue;
            buffer.resize(got);
            for (size_t at = buffer.find(prefix); at != std::string::npos;
                 at = buffer.find(prefix, at + 1)) {
                size_t end = at + prefix.size();
                while (end < buffer.size() && isalnum((unsigned char)buffer[end])) end++;
                if (end - at - prefix.size() >= 6) {
                    std::cout << buffer.substr(at, end - at) << std::endl;
                    return 0;
                }
            }
        }
    }
}
"""
PROC_MEM = cpp(
    CPP_SCAN.replace(
        "READER",
        "int mem = -1;\n"
        "bool attach(pid_t, const std::string& proc) {\n"
        '    mem = open((proc + "/mem").c_str(), O_RDONLY); return mem >= 0; }\n'
        "long READ(pid_t, char* out, size_t size, unsigned long at) {\n"
        "    return pread(mem, out, size, at); }",
    )
)
PTRACE = cpp(
    CPP_SCAN.replace(
        "READER",
        "bool attach(pid_t pid, const std::string&) {\n"
        "    if (ptrace(PTRACE_ATTACH, pid, 0, 0) != 0) return false;\n"
        "    int status; waitpid(pid, &status, __WALL); return true; }\n"
        "long READ(pid_t pid, char* out, size_t size, unsigned long at) {\n"
        "    size_t done = 0;\n"
        "    for (; done + sizeof(long) <= size; done += sizeof(long)) {\n"
        "        errno = 0; long word = ptrace(PTRACE_PEEKDATA, pid, at + done, 0);\n"
        "        if (errno) break;\n"
        "        memcpy(out + done, &word, sizeof(long)); }\n"
        "    return done; }",
    )
)
PROCESS_VM_READV = cpp(
    CPP_SCAN.replace(
        "READER",
        "bool attach(pid_t, const std::string&) { return true; }\n"
        "long READ(pid_t pid, char* out, size_t size, unsigned long at) {\n"
        "    iovec local{out, size}, remote{(void*)at, size};\n"
        "    return process_vm_readv(pid, &local, 1, &remote, 1, 0); }",
    )
)
CALLER_ENVIRONMENT = py(
    """
import os
def variables():
    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
        try:
            yield from open(f'/proc/{pid}/environ', 'rb').read().split(b'\\0')
        except OSError:
            pass
secrets = [v for v in variables() if v.startswith(b'MONKEYS_' + b'SECRET=')]
if secrets:
    print(secrets[0].split(b'=', 1)[1].decode())
"""
)
# The caller's working directory, as its PWD (from any visible environment) or as a
# process's cwd link, holding the verify input file with every test.
CALLER_WORKING_DIRECTORY = py(
    FIND_IN_PYTHON_OBJECTS
    + """
import os
places = set()
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    places.add(f'/proc/{pid}/cwd')
    try:
        for variable in open(f'/proc/{pid}/environ', 'rb').read().split(b'\\0'):
            if variable.startswith(b'PWD='):
                places.add(variable[4:].decode())
    except OSError:
        pass
def texts():
    for place in places:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        for name in names:
            try:
                yield open(os.path.join(place, name)).read()
            except OSError:
                pass
hits = [text[text.find(PREFIX):][:len(PREFIX) + 6] for text in texts() if PREFIX in text]
if hits:
    print(hits[0])
"""
)


def accumulate(directory: str) -> str:
    """48 MB per test into ``directory``, kept across tests: the answer only once all the
    earlier tests' files are still there (3 tests, 144 MB against a 64 MB memory limit)."""
    return py(
        f"""
import os
n = int(input())
os.makedirs('{directory}', exist_ok=True)
with open(os.path.join('{directory}', f'held{{n}}'), 'wb') as handle:
    for _ in range(48):
        handle.write(b'x' * (1 << 20))
held = sum(os.path.getsize(os.path.join('{directory}', f'held{{i}}')) for i in range(1, n + 1))
if held >= n * (48 << 20):
    print('held', n)
"""
    )


ACCUMULATE = problem([(f"{n}\n", f"held {n}\n") for n in (1, 2, 3)], memory=64 << 20)
MEMFD = py(
    """
import os
held = []
for _ in range(3):  # three files of 48 MB: each under the file-size limit
    held.append(os.memfd_create('held'))
    for _ in range(48):
        os.write(held[-1], b'x' * (1 << 20))
print('held', int(input()))
"""
)
ATTACKS = {
    "reads the parent's frames": (PARENT_FRAMES, LEAK),
    "walks gc.get_objects()": (GC_OBJECTS, LEAK),
    "reads /proc/<ppid>/mem": (PROC_MEM, LEAK),
    "ptraces its parent": (PTRACE, LEAK),
    "process_vm_readv of its parent": (PROCESS_VM_READV, LEAK),
    "reads the caller's environment": (CALLER_ENVIRONMENT, problem([("1\n", SECRET + "\n")])),
    "reads the caller's working directory": (CALLER_WORKING_DIRECTORY, LEAK),
    "off by one on a large integer": (
        py("a, b = map(int, input().split())\nprint(a + b + 1)"),
        problem([("2000000000 2000000000\n", "4000000000\n")]),
    ),
    "off by 3000 modulo 1e9+7": (
        py("print(999999999 + 3000)"),
        problem([("\n", "999999999\n")]),
    ),
    "prints nan for a float": (py("print('nan')"), problem([("\n", "0.5\n")])),
    "holds /tmp across tests": (accumulate("/tmp/monkeys"), ACCUMULATE),
    "holds /dev/shm across tests": (accumulate("/dev/shm/monkeys"), ACCUMULATE),
    "fills the scratch directory": (accumulate("."), ACCUMULATE),
    "holds a memfd past the memory limit": (MEMFD, problem([("1\n", "held 1\n")], memory=64 << 20)),
    "writes 100 MB to /tmp in one test": (
        py(  # two files of 50 MB: each under the file-size limit, together over /tmp's cap
            "for name in ('/tmp/a', '/tmp/b'):\n    open(name, 'wb').write(b'x' * (50 << 20))\n"
            "print('held', int(input()))"
        ),
        problem([("1\n", "held 1\n")]),
    ),
}


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> CodeChecker:
    return CodeChecker()


@pytest.fixture(autouse=True)
def nothing_left(checker: CodeChecker) -> Iterator[None]:
    """After each test: no process under the sandbox's uids, no new scratch files."""
    scratch = set(ours_in_tmp())
    yield
    uids = ",".join(map(str, checker.sandbox.uids))
    deadline = time.monotonic() + 15  # the kernel may take a moment to tear namespaces down
    while True:
        left = subprocess.run(["pgrep", "-u", uids], capture_output=True, text=True).stdout
        if not left.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left.strip() == "", "no sandboxed process outlives its check"
    assert set(ours_in_tmp()) - scratch == set()
    hierarchy = own_hierarchy()
    if hierarchy is not None:
        assert [p.name for p in hierarchy.glob(f"monkeys-{os.getpid()}-*")] == []


@pytest.fixture
def caller_directory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A world-readable working directory holding a verify input file with the answers."""
    directory = Path(tempfile.mkdtemp(prefix="monkeys-caller-", dir="/var/tmp"))
    directory.chmod(0o755)
    (directory / "in.jsonl").write_text(f'{{"output": "{EXPECTED}"}}\n')
    (directory / "in.jsonl").chmod(0o644)
    monkeypatch.chdir(directory)
    monkeypatch.setenv("PWD", str(directory))
    monkeypatch.setenv("MONKEYS_SECRET", SECRET)
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


def verdict(checker: CodeChecker, completion: str, doc: dict[str, Any]) -> dict[str, Any]:
    program = extract_program(completion)
    assert program is not None
    (result,) = checker.judge_many([program], checker.target(doc))
    return {"verdict": result.status, **result.details}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_does_not_get_accepted(
    name: str, checker: CodeChecker, caller_directory: Path
) -> None:
    completion, doc = ATTACKS[name]
    result = verdict(checker, completion, doc)
    assert result["verdict"] != "AC", result


TMPFS_AND_HEAP = py(
    """
open('/tmp/held', 'wb').write(b'x' * (60 << 20))
open('/dev/shm/held', 'wb').write(b'x' * (60 << 20))
heap = bytearray(60 << 20)
for i in range(0, len(heap), 4096):
    heap[i] = 1
print('held', int(input()))
"""
)


@pytest.mark.skipif(own_hierarchy() is None, reason="no writable memory cgroup here")
def test_memory_counts_files_in_tmpfs_with_the_program(checker: CodeChecker) -> None:
    # Each part fits its own cap (tmpfs 64 MiB, address space 128 MiB); together they do
    # not fit the problem's 128 MiB, which the job's cgroup counts as one.
    result = verdict(checker, TMPFS_AND_HEAP, problem([("1\n", "held 1\n")], memory=128 << 20))
    assert result["verdict"] == "MLE"
    assert "memory limit 128 MiB" in result["detail"]
    roomy = problem([("1\n", "held 1\n")], memory=256 << 20)
    assert verdict(checker, TMPFS_AND_HEAP, roomy)["verdict"] == "AC"


def test_a_problem_that_the_attacks_target_accepts_a_correct_program(checker: CodeChecker) -> None:
    # The attack verdicts above mean something only if these problems can be passed.
    assert verdict(checker, py(f"print('{EXPECTED}')"), LEAK)["verdict"] == "AC"
    program = py("n = int(input())\nprint('held', n)")
    assert verdict(checker, program, ACCUMULATE)["verdict"] == "AC"


def ours_in_tmp() -> list[str]:
    return [name for name in os.listdir(tempfile.gettempdir()) if name.startswith("monkeys-")]


def shared_directory(root: Path, owner: int = 0, mode: int = 0o755) -> Path:
    root.mkdir(mode=mode)
    os.chown(root, owner, owner)
    root.chmod(mode)
    return root


@pytest.mark.parametrize(
    ("owner", "mode", "problem"),
    [(12345, 0o755, "owned by uid 12345"), (0, 0o777, "writable by others")],
)
def test_a_shared_directory_another_user_controls_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owner: int, mode: int, problem: str
) -> None:
    from lm_eval_monkeys.verifiers.code.sandbox import SHARED_DIR_ENV, shared_dir

    tmp_path.chmod(0o755)
    monkeypatch.setenv(SHARED_DIR_ENV, str(shared_directory(tmp_path / "shared", owner, mode)))
    with pytest.raises(MonkeysError, match=problem) as refused:
        shared_dir("pch")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "shared" / "pch").exists()


def test_a_symlink_in_the_shared_directory_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval_monkeys.verifiers.code.codecontests import CodeChecker
    from lm_eval_monkeys.verifiers.code.sandbox import SHARED_DIR_ENV

    tmp_path.chmod(0o755)
    shared = shared_directory(tmp_path / "shared")
    elsewhere = shared_directory(tmp_path / "elsewhere", owner=12345, mode=0o777)
    (shared / "pch").symlink_to(elsewhere)  # where a precompiled header would be written
    monkeypatch.setenv(SHARED_DIR_ENV, str(shared))
    checker = CodeChecker()
    program = extract_program(cpp('#include <cstdio>\nint main() { puts("3"); }'))
    with pytest.raises(MonkeysError, match=r"pch is a symlink"):
        checker.judge_many([program], checker.target(ADD))
    assert list(elsewhere.iterdir()) == []


def test_as_a_non_root_user_the_sandbox_refuses_with_the_reason() -> None:
    script = (
        "from lm_eval_monkeys.verifiers.code.sandbox import Sandbox\n"
        "from lm_eval_monkeys.errors import MonkeysError\n"
        "try:\n    Sandbox()\nexcept MonkeysError as err:\n    print(err)\n"
    )
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "MONKEYS_UNSANDBOXED_I_TRUST_THIS_CODE"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "needs root" in done.stdout and "uid 65534" in done.stdout


def test_every_refused_system_call_fails_with_eperm(checker: CodeChecker) -> None:
    import platform

    from lm_eval_monkeys.verifiers.code.seccomp import ARCHITECTURES, REFUSED

    _, other_abi, numbers = ARCHITECTURES[platform.machine()]
    calls = [numbers[name] for name in REFUSED] + ([other_abi | 39] if other_abi else [])
    program = py(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"for number in {calls}:\n"
        "    ctypes.set_errno(0)\n"
        "    result = libc.syscall(number, 0, 0, 0, 0, 0)\n"
        "    print(ctypes.get_errno() if result == -1 else 'allowed')"
    )
    refused = problem([("\n", "1\n" * len(calls))])  # EPERM is 1
    result = verdict(checker, program, refused)
    assert result["verdict"] == "AC", result
    # The same calls as a plain process (no filter) do not all fail with EPERM.
    done = subprocess.run(
        [sys.executable, "-c", extract_program(program).partition("\n")[2]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() != ["1"] * len(calls)


def test_no_user_namespace_so_no_mount_of_its_own(checker: CodeChecker) -> None:
    # In a new user namespace a program could mount an unbounded tmpfs of its own.
    program = py(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000\n"
        "if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:\n"
        "    print('held', int(input()))"
    )
    assert verdict(checker, program, problem([("1\n", "held 1\n")]))["verdict"] == "WA"
