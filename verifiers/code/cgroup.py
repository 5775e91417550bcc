"""A memory cgroup per code job, where this machine lets the checker create one.

RLIMIT_AS counts a program's address space only; files it writes to the sandbox's tmpfs
mounts are memory too. A job's cgroup (the cgroup v1 memory hierarchy, whose tmpfs pages
are charged to the writer's cgroup) holds the runner and everything it starts, limited to
the problem's memory limit plus a small allowance for the runner, so the program's memory
and its files count together; an OOM kill in it is reported as MLE. Without a writable
hierarchy (cgroup v2, a container without the controller) jobs run without one, and a
program may not start processes (``seccomp.py``): its one address space under the
rlimit, the size-capped tmpfs mounts and the seccomp filter (no memfd, no SysV shm)
bound what it holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HIERARCHY = Path("/sys/fs/cgroup/memory")
RUNNER_ALLOWANCE = 32 << 20  # the runner's own interpreter, shared with its Python forks


class MemoryCgroup:
    """One job's memory cgroup: its ``procs`` file, limit and OOM-kill count."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs = directory / "cgroup.procs"

    def limit(self, memory_bytes: int) -> None:
        """Limit the job to ``memory_bytes`` plus the runner's allowance."""
        try:
            (self.directory / "memory.limit_in_bytes").write_text(
                str(memory_bytes + RUNNER_ALLOWANCE)
            )
        except OSError:
            pass  # usage above the new limit could not be reclaimed: the rlimits still hold

    def oom_kills(self) -> int:
        for line in (self.directory / "memory.oom_control").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0


def own_hierarchy() -> Path | None:
    """This process's cgroup in the v1 memory hierarchy, if it may create children there."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            directory = HIERARCHY / path.lstrip("/")
            usable = (directory / "memory.oom_control").exists() and os.access(directory, os.W_OK)
            return directory if usable else None
    return None


@contextmanager
def job_cgroup(name: str, memory_bytes: int, wanted: bool = True) -> Iterator[MemoryCgroup | None]:
    """A fresh cgroup ``name`` limited to ``memory_bytes`` (None where there is none, or
    if not ``wanted``), removed afterwards."""
    parent = own_hierarchy() if wanted else None
    if parent is None:
        yield None
        return
    directory = parent / name
    directory.mkdir()
    try:
        cgroup = MemoryCgroup(directory)
        (directory / "memory.swappiness").write_text("0")  # OOM, not swap, at the limit
        cgroup.limit(memory_bytes)
        yield cgroup
    finally:
        _remove(directory)


def _remove(directory: Path, wait_s: float = 5.0) -> None:
    """rmdir once the job's last process is gone (the kernel may take a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            directory.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
