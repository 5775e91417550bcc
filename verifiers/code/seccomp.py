"""The seccomp filter every program under test runs with, as classic BPF bytes.

It refuses (EPERM) the system calls that reach into other processes' memory (``ptrace``,
``process_vm_readv``/``writev``, ``pidfd_getfd``, ``kcmp``), those that hold memory
outside the address-space limit (``memfd_create``, ``memfd_secret``, SysV shared memory,
``userfaultfd``), ``io_uring`` (which runs calls past seccomp), ``bpf`` and
``perf_event_open``, and the kernel state that outlives a test or is shared with
programs in other sandboxes: keyrings (``add_key``, ``request_key``, ``keyctl``: a uid's
keyrings persist), file locks (``flock``; ``fcntl``'s POSIX, open-file-description and
lease commands, which work on read-only files such as the system's binaries) and
``inotify`` (which sees other sandboxes open those files). Where no memory cgroup counts
a job's processes together, a filter that also refuses new processes (``fork``,
``vfork``, ``clone`` without ``CLONE_THREAD``; ``clone3`` answers ENOSYS, so libc falls
back to ``clone``) keeps the job to one address space, which the address-space limit
bounds; threads still work. x32 calls are refused and another architecture's (i386
through ``int 0x80``) kill the process: the numbers above would not apply to them.

Built here, in the checker, and handed to the sandbox's runner, which installs it in each
program's process just before ``execve``.
"""

from __future__ import annotations

import platform
import struct

from lm_eval_monkeys.errors import MonkeysError

REFUSED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "memfd_create",
    "memfd_secret",
    "shmget",
    "shmat",
    "userfaultfd",
    "io_uring_setup",
    "bpf",
    "perf_event_open",
    "add_key",
    "request_key",
    "keyctl",
    "flock",
    "inotify_init",
    "inotify_init1",
)
NEW_PROCESS = ("fork", "vfork")  # refused where no cgroup counts processes together
# fcntl commands: F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW,
# F_SETLEASE, F_GETLEASE, F_NOTIFY
REFUSED_FCNTL = (5, 6, 7, 36, 37, 38, 1024, 1025, 1026)
CLONE_THREAD = 0x00010000
# (audit architecture, lowest number of another ABI sharing the architecture, numbers;
# a call the architecture lacks, such as aarch64's fork, is absent)
ARCHITECTURES: dict[str, tuple[int, int | None, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        0x40000000,  # x32 system calls
        {
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "pidfd_getfd": 438,
            "kcmp": 312,
            "memfd_create": 319,
            "memfd_secret": 447,
            "shmget": 29,
            "shmat": 30,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "bpf": 321,
            "perf_event_open": 298,
            "add_key": 248,
            "request_key": 249,
            "keyctl": 250,
            "flock": 73,
            "inotify_init": 253,
            "inotify_init1": 294,
            "fcntl": 72,
            "fork": 57,
            "vfork": 58,
            "clone": 56,
            "clone3": 435,
        },
    ),
    "aarch64": (
        0xC00000B7,
        None,
        {
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "pidfd_getfd": 438,
            "kcmp": 272,
            "memfd_create": 279,
            "memfd_secret": 447,
            "shmget": 194,
            "shmat": 196,
            "userfaultfd": 282,
            "io_uring_setup": 425,
            "bpf": 280,
            "perf_event_open": 241,
            "add_key": 217,
            "request_key": 218,
            "keyctl": 219,
            "flock": 32,
            "inotify_init1": 26,
            "fcntl": 25,
            "clone": 220,
            "clone3": 435,
        },
    ),
}
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_IF_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_IF_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JUMP_IF_ANY_BIT = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO_EPERM = 0x00050000 | 1
_ERRNO_ENOSYS = 0x00050000 | 38
# Offsets in struct seccomp_data; an argument's low 32 bits (little-endian machines)
_ARCH_OFFSET, _NUMBER_OFFSET, _FIRST_ARGUMENT, _SECOND_ARGUMENT = 4, 0, 16, 24
_Instruction = tuple[int | str, str | int, str | int, int]  # opcode or label; jump targets


def program_filter(machine: str | None = None, *, single_process: bool = False) -> bytes:
    """The filter for ``machine`` (default: this one) as ``struct sock_filter`` records;
    ``single_process`` also refuses new processes (threads are allowed)."""
    name = machine or platform.machine()
    if name not in ARCHITECTURES:
        raise MonkeysError(
            f"the code sandbox's seccomp filter knows x86_64 and aarch64, not {name}: "
            "verify code on one of those"
        )
    arch, other_abi, numbers = ARCHITECTURES[name]
    refused = [*REFUSED, *(NEW_PROCESS if single_process else ())]
    program: list[_Instruction] = [
        (_LOAD_WORD, 0, 0, _ARCH_OFFSET),
        (_JUMP_IF_EQUAL, 1, 0, arch),
        (_RETURN, 0, 0, _KILL_PROCESS),
        (_LOAD_WORD, 0, 0, _NUMBER_OFFSET),
    ]
    if other_abi is not None:
        program.append((_JUMP_IF_AT_LEAST, "refuse", 0, other_abi))
    program += [(_JUMP_IF_EQUAL, "refuse", 0, numbers[call]) for call in refused if call in numbers]
    program.append((_JUMP_IF_EQUAL, "fcntl", 0, numbers["fcntl"]))
    if single_process:
        program += [
            (_JUMP_IF_EQUAL, "clone", 0, numbers["clone"]),
            (_JUMP_IF_EQUAL, "no such call", 0, numbers["clone3"]),
        ]
    program += [("allow", 0, 0, 0), ("refuse", 0, 0, 0), ("fcntl", 0, 0, 0)]
    program.append((_LOAD_WORD, 0, 0, _SECOND_ARGUMENT))
    program += [(_JUMP_IF_EQUAL, "refuse", 0, command) for command in REFUSED_FCNTL]
    program += [("allow", 0, 0, 0), ("refuse", 0, 0, 0)]
    if single_process:
        program += [
            ("clone", 0, 0, 0),
            (_LOAD_WORD, 0, 0, _FIRST_ARGUMENT),
            (_JUMP_IF_ANY_BIT, "allow", "refuse", CLONE_THREAD),
            ("allow", 0, 0, 0),
            ("refuse", 0, 0, 0),
            ("no such call", 0, 0, 0),
            (_RETURN, 0, 0, _ERRNO_ENOSYS),
        ]
    return _assemble(program)


def system_call_number(name: str) -> int:
    """``name``'s number on this machine (the runner makes raw ``clone`` calls)."""
    return ARCHITECTURES[platform.machine()][2][name]


def _assemble(program: list[_Instruction]) -> bytes:
    """Records from instructions whose jump targets are labels. A label (an opcode that
    is a string) marks the next instruction, and a jump goes to the label's first mark
    after it (BPF jumps only forward); the labels "allow" and "refuse" are returns."""
    returns = {"allow": _ALLOW, "refuse": _ERRNO_EPERM}
    placed: list[tuple[int, str | int, str | int, int]] = []
    marks: list[tuple[str, int]] = []
    for opcode, if_true, if_false, value in program:
        if isinstance(opcode, str):
            marks.append((opcode, len(placed)))
            if opcode in returns:
                placed.append((_RETURN, 0, 0, returns[opcode]))
        else:
            placed.append((opcode, if_true, if_false, value))

    def jump(index: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        return next(at for label, at in marks if label == target and at > index) - index - 1

    records = []
    for index, (opcode, if_true, if_false, value) in enumerate(placed):
        jumps = [jump(index, if_true), jump(index, if_false)]
        assert all(offset < 256 for offset in jumps), "a BPF jump reaches 255 ahead at most"
        records.append(struct.pack("=HBBI", opcode, jumps[0], jumps[1], value))
    return b"".join(records)
