"""How many threads a CPU decode step may use, and how many it should, measured as it runs.

torch starts one intra-op thread per physical core of the machine, whatever the process
may use: a CPU affinity mask (``taskset``, a scheduler's cpuset) or a cgroup CPU quota
(a container's ``--cpus``, a CI runner's limit) can leave it fewer. ``usable_cpus`` is
the smallest of the three.

A decode step is a few hundred small parallel regions, each ending at a barrier that
waits for every thread. On a machine busy with other work one of the threads is often
descheduled, and the others wait (spinning, then sleeping) for it at every barrier: issue
24 measured two threads sampling about 20x slower under load than idle, where one thread
only shares its core fairly (docs/engines.md). ``ThreadTuner`` therefore times the steps on each
candidate count (all usable CPUs, and one) in turn, a few steps each, at the start of
each round of steps, and runs the rest on the faster: idle it keeps every core, busy it
drops to one, and it follows the load as it changes.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median

import torch


def usable_cpus(root: Path = Path("/")) -> int:
    """CPUs this process may run on: the smallest of affinity, cgroup quota and torch's count.

    ``root`` is where ``/proc`` and ``/sys`` are found (tests give a directory of files).
    """
    limits = [torch.get_num_threads(), cgroup_cpu_limit(root) or math.inf]
    if root == Path("/") and hasattr(os, "sched_getaffinity"):
        limits.append(len(os.sched_getaffinity(0)))
    return max(1, int(min(limits)))


def cgroup_cpu_limit(root: Path = Path("/")) -> int | None:
    """Whole CPUs allowed by this process's cgroup quota (v2 ``cpu.max``, v1 CFS), if any.

    Every cgroup from the process's own up to the root is read, as each one's quota
    applies; a fractional quota rounds down (never below one), since a thread beyond the
    quota only waits for it.
    """
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one unified hierarchy
            quotas += _quotas(root / "sys/fs/cgroup", path, _v2_quota)
        elif "cpu" in controllers.split(","):
            mount = next(
                (
                    root / "sys/fs/cgroup" / name
                    for name in (controllers, "cpu", "cpu,cpuacct")
                    if (root / "sys/fs/cgroup" / name).is_dir()
                ),
                None,
            )
            if mount is not None:
                quotas += _quotas(mount, path, _v1_quota)
    return max(1, math.floor(min(quotas))) if quotas else None


def _quotas(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quota (in CPUs) of each cgroup from ``path`` up to ``mount``, where one is set.

    In a container the process's path may be the host's, absent from its own mount:
    then the mount's root is the process's cgroup.
    """
    here = mount / path.lstrip("/")
    if not here.is_dir():
        here = mount
    found = []
    while True:
        quota = read(here)
        if quota is not None:
            found.append(quota)
        if here == mount or mount not in here.parents:
            return found
        here = here.parent


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


class ThreadTuner:
    """Runs each step on the faster thread count, by the steps' own times (module docstring).

    A round starts with ``trials`` steps on each count, alternating, and runs the rest of
    its ``period`` steps on the faster. A round whose trials confirm the choice runs twice
    as long as the last (up to ``longest``), so a steady machine pays for fewer trials; a
    change of choice brings rounds back to ``shortest``.
    """

    def __init__(self, most: int, shortest: int = 64, longest: int = 1024, trials: int = 3):
        self.counts = sorted({most, 1}, reverse=True)
        self.shortest, self.longest, self.trials = shortest, longest, trials
        self.period = shortest
        self.times: dict[int, deque[float]] = {c: deque(maxlen=trials) for c in self.counts}
        self.phase = 0  # steps into the current round
        self.best = self.counts[0]

    def next_count(self) -> int:
        """The thread count of the next step."""
        if self.phase < self.trials * len(self.counts):
            return self.counts[self.phase % len(self.counts)]
        return self.best

    def record(self, count: int, seconds: float) -> None:
        """A step's time on ``count`` threads; after a round's trials, the faster is kept."""
        self.times[count].append(seconds)
        self.phase += 1
        if self.phase == self.trials * len(self.counts):
            best = min(self.counts, key=lambda c: median(self.times[c]))
            confirmed = best == self.best
            self.period = min(2 * self.period, self.longest) if confirmed else self.shortest
            self.best = best
        if self.phase >= self.period:
            self.phase = 0

    @contextmanager
    def sized(self) -> Iterator[None]:
        """Run the block (a whole decode, prompts included) on the usable CPUs' count."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.counts[0])
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    @contextmanager
    def step(self) -> Iterator[int]:
        """Run the block (one decode step) on the chosen count, and what follows it too.

        The count stays set after the step, so the draw and the bookkeeping between steps
        run on it as well, and a steady choice sets nothing (``sized`` restores torch's
        count at the end): restoring it after each step ran every draw on two threads
        and switched counts twice a step, 3x slower at load 3 (docs/benchmarks.md).
        """
        count = self.next_count()
        if count != torch.get_num_threads():
            torch.set_num_threads(count)
        start = time.perf_counter()
        yield count
        self.record(count, time.perf_counter() - start)
