"""The seccomp filter every program under test runs with, as classic BPF bytes.

It refuses (EPERM) the system calls that reach into other processes' memory (``ptrace``,
``process_vm_readv``/``writev``, ``pidfd_getfd``, ``kcmp``) and those that hold memory
outside the address-space limit (``memfd_create``, ``memfd_secret``, SysV shared memory,
``userfaultfd``), plus ``io_uring`` (which runs calls past seccomp), ``bpf`` and
``perf_event_open``. x32 calls are refused and another architecture's (i386 through
``int 0x80``) kill the process: the numbers above would not apply to them.

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
)
# (audit architecture, lowest number of another ABI sharing the architecture, numbers)
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
        },
    ),
}
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_IF_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_IF_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO_EPERM = 0x00050000 | 1
_ARCH_OFFSET, _NUMBER_OFFSET = 4, 0  # in struct seccomp_data


def program_filter(machine: str | None = None) -> bytes:
    """The filter for ``machine`` (default: this one) as ``struct sock_filter`` records."""
    name = machine or platform.machine()
    if name not in ARCHITECTURES:
        raise MonkeysError(
            f"the code sandbox's seccomp filter knows x86_64 and aarch64, not {name}: "
            "verify code on one of those"
        )
    arch, other_abi, numbers = ARCHITECTURES[name]
    refused = [numbers[call] for call in REFUSED]
    checks = ([other_abi] if other_abi is not None else []) + refused
    program: list[tuple[int, int, int, int]] = [
        (_LOAD_WORD, 0, 0, _ARCH_OFFSET),
        (_JUMP_IF_EQUAL, 1, 0, arch),
        (_RETURN, 0, 0, _KILL_PROCESS),
        (_LOAD_WORD, 0, 0, _NUMBER_OFFSET),
    ]
    for index, number in enumerate(checks):
        to_refusal = len(checks) - index  # past the remaining checks and the ALLOW
        opcode = _JUMP_IF_AT_LEAST if number == other_abi else _JUMP_IF_EQUAL
        program.append((opcode, to_refusal, 0, number))
    program += [(_RETURN, 0, 0, _ALLOW), (_RETURN, 0, 0, _ERRNO_EPERM)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
