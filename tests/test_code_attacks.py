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
    """What the code checker makes in /tmp (other tests running beside these make
    other ``monkeys-*`` entries there)."""
    return [name for name in os.listdir(tempfile.gettempdir()) if name.startswith("monkeys-code-")]


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
    calls = [numbers[name] for name in REFUSED if name in numbers]
    calls += [other_abi | 39] if other_abi else []
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


# Issue 21: channels from one test to the next, and between programs judged at once.
# Test 0 hands the program a value; test 1 wants it back, without giving it: a program
# can be right on test 1 only through state that outlived test 0.
REMEMBERED = "7319"
RECALL = problem([(f"store {REMEMBERED}\n", "stored\n"), ("recall\n", f"{REMEMBERED}\n")])


def recall(store: str, load: str, prelude: str = "") -> str:
    """A program keeping test 0's value with ``store`` (``value`` a str) and printing what
    ``load`` finds (``value``) in test 1."""
    return py(
        f"""{prelude}
command = input().split()
if command[0] == 'store':
    value = command[1]
    try:
{_indent(store, 8)}
    except OSError:
        pass
    print('stored')
else:
    value = ''
    try:
{_indent(load, 8)}
    except OSError:
        pass
    print(value)
"""
    )


def _indent(code: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in code.strip().splitlines())


LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
CHANNELS = {
    "the mode bits of /tmp": recall(
        "os.chmod('/tmp', 0o700 | int(value) % 64)",
        "value = str(7319 - 7319 % 64 + (os.stat('/tmp').st_mode & 63))",
        "import os",
    ),
    "a user.* xattr on /tmp": recall(
        "os.setxattr('/tmp', 'user.kept', value.encode())",
        "value = os.getxattr('/tmp', 'user.kept').decode()",
        "import os",
    ),
    "a file in /tmp": recall(
        "open('/tmp/kept', 'w').write(value)", "value = open('/tmp/kept').read()", "import os"
    ),
    "the user keyring": recall(
        "libc.syscall(248, b'user', b'kept', value.encode(), len(value), -4)",  # add_key
        "key = libc.syscall(250, 10, -4, b'user', b'kept', 0)\n"  # keyctl(KEYCTL_SEARCH)
        "buffer = ctypes.create_string_buffer(16)\n"
        "size = libc.syscall(250, 11, key, buffer, 16)\n"  # keyctl(KEYCTL_READ)
        "value = buffer.raw[:size].decode() if key > 0 and size > 0 else ''",
        LIBC,
    ),
    "a SysV message queue": recall(
        "queue = libc.msgget(0x5EED, 0o1600)\n"  # IPC_CREAT | 0600
        "message = ctypes.create_string_buffer(8 + 16)\n"
        "ctypes.memmove(message, ctypes.byref(ctypes.c_long(1)), 8)\n"
        "ctypes.memmove(ctypes.byref(message, 8), value.encode(), len(value))\n"
        "libc.msgsnd(queue, message, 16, 0)",
        "queue = libc.msgget(0x5EED, 0o600)\n"
        "message = ctypes.create_string_buffer(8 + 16)\n"
        "size = libc.msgrcv(queue, message, 16, 0, 0o4000) if queue >= 0 else -1\n"  # NOWAIT
        "value = message.raw[8:8 + 16].rstrip(b'\\0').decode() if size > 0 else ''",
        LIBC,
    ),
    "a SysV semaphore": recall(
        "semaphores = libc.semget(0x5EED, 1, 0o1600)\n"
        "libc.semctl(semaphores, 0, 16, ctypes.c_int(int(value)))",  # SETVAL
        "semaphores = libc.semget(0x5EED, 1, 0o600)\n"
        "value = str(libc.semctl(semaphores, 0, 12)) if semaphores >= 0 else ''",  # GETVAL
        LIBC,
    ),
    "a POSIX message queue": recall(
        "queue = libc.mq_open(b'/kept', os.O_CREAT | os.O_RDWR, 0o600, None)\n"
        "libc.mq_send(queue, value.encode(), len(value), 0)",
        "queue = libc.mq_open(b'/kept', os.O_RDWR | os.O_NONBLOCK)\n"
        "buffer = ctypes.create_string_buffer(8192)\n"
        "size = libc.mq_receive(queue, buffer, 8192, None) if queue >= 0 else -1\n"
        "value = buffer.raw[:size].decode() if size > 0 else ''",
        LIBC,
    ),
    "the pid counter": recall(
        "for _ in range(int(value) // 100):\n"  # 73 processes started and ended
        "    child = os.fork()\n"
        "    if child == 0:\n"
        "        os._exit(0)\n"
        "    os.waitpid(child, 0)",
        "value = '7319' if os.getpid() > 60 else ''",
        "import os",
    ),
    "the program's binary, replaced by a script": cpp(
        r"""
#include <bits/stdc++.h>
#include <sys/stat.h>
#include <unistd.h>
int main() {
    std::string command;
    std::cin >> command;
    if (command == "store") {  // the next test runs whatever /tmp/program/main is now
        for (const char* path : {"/tmp/program/main", "/proc/self/exe"}) {
            unlink(path);
            FILE* script = fopen(path, "w");
            if (!script) continue;
            fputs("#!/bin/sh\necho 7319\n", script);
            fclose(script);
            chmod(path, 0755);
        }
        puts("stored");
    }
}
"""
    ),
}


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_no_state_outlives_a_test(checker: CodeChecker, channel: str) -> None:
    result = verdict(checker, CHANNELS[channel], RECALL)
    assert result["verdict"] == "WA", result
    assert [t["verdict"] for t in result["tests"]] == ["AC", "WA"]  # test 0 was fine


def test_a_program_that_keeps_nothing_passes_the_recall_problem(checker: CodeChecker) -> None:
    # What the channels above would fake, given honestly: the problem can be passed.
    program = py(f"print('stored' if input().startswith('store') else '{REMEMBERED}')")
    assert verdict(checker, program, RECALL)["verdict"] == "AC"


HOLDER = py(  # knows the value; marks it with locks on a file every sandbox can read
    """
import fcntl, os, struct, time
fd = os.open('/usr/bin/env', os.O_RDONLY)
for offset in (7319, 20000):  # F_OFD_SETLK, a read lock of one byte
    try:
        fcntl.fcntl(fd, 37, struct.pack('hhqqi', fcntl.F_RDLCK, 0, offset, 1, 0))
    except OSError:
        pass
try:
    fcntl.flock(fd, fcntl.LOCK_SH)
except OSError:
    pass
print(7319)
time.sleep(8)
"""
)
FINDER = py(  # holds no value: prints the offset another program locked
    """
import fcntl, os, struct, time
fd = os.open('/usr/bin/env', os.O_RDONLY)
found = ''
deadline = time.monotonic() + 8
while not found and time.monotonic() < deadline:
    query = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 20000, 0)
    try:  # F_OFD_GETLK: the first lock in the range that a write lock would conflict with
        kind, _, start, _, _ = struct.unpack('hhqqi', fcntl.fcntl(fd, 36, query))
    except OSError:
        break
    if kind != fcntl.F_UNLCK:
        found = str(start)
    time.sleep(0.05)
print(found)
"""
)


def test_programs_judged_at_once_share_no_locks(checker: CodeChecker) -> None:
    doc = problem([("1\n", "7319\n")], seconds=12)
    holder, finder = extract_program(HOLDER), extract_program(FINDER)
    held, found = checker.judge_many([holder, finder], checker.target(doc))
    assert held.status == "AC"  # it printed what it knows
    assert found.status == "WA", found.details


FORKED_WORKERS = py(  # three processes of 200 MiB each, alive together
    """
import os
readers = []
for _ in range(3):
    ready, done = os.pipe()
    if os.fork() == 0:
        held = bytearray(200 << 20)
        for i in range(0, len(held), 4096):
            held[i] = 1
        os.write(done, b'1')
        os.read(os.pipe()[0], 1)  # blocks: holds its memory until killed
    readers.append(ready)
print('held', sum(len(os.read(r, 1)) for r in readers))
"""
)
FORKED = problem([("\n", "held 3\n")], memory=256 << 20)


@pytest.mark.parametrize("memory_cgroups", [True, False], ids=["cgroup", "no cgroup"])
def test_memory_limit_holds_across_processes(memory_cgroups: bool) -> None:
    if memory_cgroups and own_hierarchy() is None:
        pytest.skip("no writable memory cgroup here")
    from lm_eval_monkeys.verifiers.code.sandbox import Sandbox

    checker = CodeChecker(sandbox=Sandbox(memory_cgroups=memory_cgroups))
    result = verdict(checker, FORKED_WORKERS, FORKED)
    assert result["verdict"] != "AC", result
    # One process of 200 MiB (and threads) stays within the same limit.
    one = py(
        "import threading\nheld = bytearray(200 << 20)\n"
        "thread = threading.Thread(target=lambda: held.__setitem__(0, 1))\n"
        "thread.start()\nthread.join()\nprint('held', 3)"
    )
    assert verdict(checker, one, FORKED)["verdict"] == "AC"


TWO_TESTS = problem([("1\n", "1\n"), ("2\n", "2\n")])
RUNNER_ATTACKS = {
    "prlimit on pid 1": py(
        "import resource\nn = int(input())\n"
        "if n == 1:\n"
        "    for limit in (resource.RLIMIT_NOFILE, resource.RLIMIT_AS):\n"
        "        try:\n"
        "            resource.prlimit(1, limit, (3, 3) if limit == resource.RLIMIT_NOFILE"
        " else (1 << 20, 1 << 20))\n"
        "        except OSError:\n"
        "            pass\n"
        "print(n + 1 if n == 2 else n)"
    ),
    "a 3,000-deep directory left in /tmp": py(
        "import os\nn = int(input())\n"
        "if n == 1:\n"
        "    os.chdir('/tmp')\n"
        "    for _ in range(3000):\n"
        "        os.mkdir('d')\n"
        "        os.chdir('d')\n"
        "print(n + 1 if n == 2 else n)"
    ),
}


@pytest.mark.parametrize("attack", list(RUNNER_ATTACKS))
def test_the_program_cannot_end_or_limit_its_runner(checker: CodeChecker, attack: str) -> None:
    # Wrong on test 2; an attack on the runner in test 1 once made that "runner died",
    # a verdict that is not final, so the program was judged again on every rescore.
    program = extract_program(RUNNER_ATTACKS[attack])
    (result,) = checker.judge_many([program], checker.target(TWO_TESTS))
    assert (result.status, result.final) == ("WA", True), result.details


def test_a_source_too_deep_to_compile_is_a_compilation_error(checker: CodeChecker) -> None:
    deep = "print(" + "1" + "+1" * 100_000 + ")"
    for completion in (py(deep), f"```\n#include <x>\n{deep}\n```"):
        program = extract_program(completion)  # no RecursionError out of the checker
        assert program is not None
        (result,) = checker.judge_many([program], checker.target(TWO_TESTS))
        assert (result.status, result.final) == ("CE", True), result.details


def test_the_program_holds_no_capability(checker: CodeChecker) -> None:
    program = py(
        "fields = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "print(*[int(fields[name], 16) for name in ('CapEff', 'CapPrm', 'CapInh', 'CapAmb')])"
    )
    assert verdict(checker, program, problem([("\n", "0 0 0 0\n")]))["verdict"] == "AC"


# The program judged is the program written: as extracted from its fence, byte for byte.
AS_WRITTEN = {
    "trailing spaces in a string literal": (
        'text = """a  \nb"""\nprint(len(text))',
        "5",
        "AC",
    ),
    "a blank line in a string literal": ('print("""a\n\nb""".count("\\n"))', "2", "AC"),
    "a backslash then a space": ("print(1 + \\ \n1)", "2", "CE"),
}


@pytest.mark.parametrize("case", list(AS_WRITTEN))
def test_the_program_judged_is_the_program_written(checker: CodeChecker, case: str) -> None:
    source, output, wanted = AS_WRITTEN[case]
    program = extract_program(py(source))
    assert program == f"python\n{source}\n"
    assert verdict(checker, py(source), problem([("\n", output + "\n")]))["verdict"] == wanted


# No output stops the checker, however large or odd; the comparison is DeepMind's
# (ASCII case folding and whitespace), and equal decimals of any length match.
ODD_OUTPUTS = {
    "an exponent decimal cannot hold": ("1e9999999999999999999", "1.5", "WA"),
    "an exponent past any decimal": ("1e99999999999999999999999999", "1", "WA"),
    "a Kelvin sign for k": ("\u212a", "k", "WA"),
    "a no-break space as a separator": ("1\u00a02", "1 2", "WA"),
    "250 correct digits against 12": ("0." + "3" * 250, "0.333333333333", "AC"),
}


@pytest.mark.parametrize("case", list(ODD_OUTPUTS))
def test_odd_output_is_a_verdict(checker: CodeChecker, case: str) -> None:
    printed, expected, wanted = ODD_OUTPUTS[case]
    program = py(f"import sys\nsys.stdout.write({printed!r})")
    assert verdict(checker, program, problem([("\n", expected + "\n")]))["verdict"] == wanted


def test_a_large_output_costs_the_checker_little_memory() -> None:
    # 4 Mi tokens (36 MiB): split into Python strings they took ~20x their size.
    script = (
        "import resource\n"
        "from lm_eval_monkeys.verifiers.code.output_match import same_output\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "got = b'12345678 ' * (4 << 20)\n"
        "want = '12345678 ' * ((4 << 20) - 1) + '12345679'\n"
        "assert not same_output(got, want)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mib = int(done.stdout)
    assert grown_mib < 200, f"the comparison grew the checker by {grown_mib} MiB"
