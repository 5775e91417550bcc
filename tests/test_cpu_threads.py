"""Thread counts: the CPUs a process may use (affinity, cgroup v1 and v2 quotas), and the
tuner that runs each decode step on the faster of all of them and one.

The cgroup files are real files in the layout the kernel mounts (``/proc/self/cgroup``,
``/sys/fs/cgroup/...``) under a test directory; affinity is a real subprocess's mask.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lm_eval_monkeys.models.cpu_threads import ThreadTuner, cgroup_cpu_limit, usable_cpus


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_cgroup_v2_quota_rounds_down_and_the_tightest_ancestor_wins(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "0::/ci.slice/job-7\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
            "sys/fs/cgroup/ci.slice/cpu.max": "150000 100000\n",  # 1.5 CPUs
            "sys/fs/cgroup/ci.slice/job-7/cpu.max": "max 100000\n",
        },
    )
    assert cgroup_cpu_limit(root) == 1
    (root / "sys/fs/cgroup/ci.slice/cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(root) is None


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(root) == 3
    (root / "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(root) is None


def test_a_container_sees_its_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    """Inside a container /proc/self/cgroup names the host's path, absent from the mount."""
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "0::/system.slice/docker-abc.scope\n",
            "sys/fs/cgroup/cpu.max": "50000 100000\n",  # half a CPU: still one thread
        },
    )
    assert cgroup_cpu_limit(root) == 1


def test_no_cgroup_files_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert usable_cpus(tmp_path) == torch.get_num_threads()


def test_a_quota_caps_the_usable_cpus(tmp_path: Path) -> None:
    root = write(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "100000 100000"})
    assert usable_cpus(root) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity")
def test_a_process_pinned_to_one_cpu_uses_one_thread() -> None:
    pin = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
    code = "from lm_eval_monkeys.models.cpu_threads import usable_cpus; print(usable_cpus())"
    pinned = subprocess.run([sys.executable, "-c", pin + code], capture_output=True, text=True)
    assert pinned.stdout.strip() == "1", pinned.stderr
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert int(free.stdout) == min(len(os.sched_getaffinity(0)), torch.get_num_threads())


def run_steps(tuner: ThreadTuner, seconds: dict[int, float], steps: int) -> list[int]:
    """The counts the tuner picks for ``steps`` steps that take ``seconds[count]`` each."""
    chosen = []
    for _ in range(steps):
        count = tuner.next_count()
        chosen.append(count)
        tuner.record(count, seconds[count])
    return chosen


def test_tuner_keeps_the_faster_count_and_measures_less_often_while_it_holds() -> None:
    tuner = ThreadTuner(most=4, shortest=8, longest=32, trials=2)
    busy = {4: 0.05, 1: 0.01}  # the busy machine: one thread is faster
    assert run_steps(tuner, busy, 8) == [4, 1, 4, 1, 1, 1, 1, 1]  # trials alternate
    assert run_steps(tuner, busy, 16) == [4, 1, 4, 1] + [1] * 12  # confirmed: twice as long
    assert run_steps(tuner, busy, 32) == [4, 1, 4, 1] + [1] * 28  # and again, to the longest
    idle = {4: 0.002, 1: 0.01}  # the load went away
    assert run_steps(tuner, idle, 8) == [4, 1, 4, 1, 4, 4, 4, 4]  # back to every CPU
    assert tuner.period == 8  # the choice changed: measure often again


def test_tuner_with_one_cpu_runs_every_step_on_one_thread() -> None:
    tuner, before = ThreadTuner(most=1), torch.get_num_threads()
    with tuner.sized():
        for _ in range(5):
            with tuner.step() as count:
                assert count == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_tuner_step_keeps_its_count_until_the_next_and_sized_restores_torchs() -> None:
    """What runs between steps (the draw) runs on the step's count; the decode's end
    restores torch's own."""
    before = torch.get_num_threads()
    tuner = ThreadTuner(most=before + 1, shortest=4, trials=1)
    inside, between = [], []
    with tuner.sized():
        for _ in range(2):
            with tuner.step() as count:
                inside.append((count, torch.get_num_threads()))
            between.append(torch.get_num_threads())
    assert inside == [(before + 1, before + 1), (1, 1)]
    assert between == [before + 1, 1]
    assert torch.get_num_threads() == before
