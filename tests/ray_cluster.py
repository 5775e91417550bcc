"""A real multi-node Ray cluster on 127.0.0.1, for tests and benchmarks.

One head node with no CPUs (nothing runs on it) plus worker nodes, each its own
``ray start`` with its own raylet, as on separate machines. Everything lives under a
private temp directory, and ``stop`` kills exactly the processes of this cluster (found
by that directory and their descendants), by pid: ``ray stop`` would take down every Ray
process on the machine, including other people's clusters.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_OBJECT_STORE = str(80 << 20)  # bytes per node; the default (30% of RAM) is far too much here
# A lost node is declared dead after 2 missed 1 s health checks instead of Ray's ~15 s.
_FAST_FAILURE_DETECTION = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "2",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRayCluster:
    def __init__(self, workers: int, env: dict[str, str] | None = None) -> None:
        # Short path: Ray's unix socket paths under it must stay below 108 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="rmk", dir="/tmp"))
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, **_FAST_FAILURE_DETECTION, **(env or {})}
        try:
            self._ray_start(
                "--head",
                f"--port={self.address.rpartition(':')[2]}",
                "--num-cpus=0",
                "--include-dashboard=false",
                f"--temp-dir={self.temp}",
            )
            self.add_workers(workers)
        except BaseException:
            self.stop()
            raise

    def add_workers(self, count: int) -> None:
        """``count`` more worker nodes with one CPU each (one after the other: nodes
        starting together on one machine time out registering)."""
        for _ in range(count):
            self._ray_start(f"--address={self.address}", "--num-cpus=1")

    def _ray_start(self, *args: str) -> None:
        done = subprocess.run(
            [
                "ray",
                "start",
                "--node-ip-address=127.0.0.1",
                f"--object-store-memory={_OBJECT_STORE}",
                "--disable-usage-stats",
                *args,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stderr[-3000:]}")

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process of this cluster (its daemons, raylets,
        workers and whatever they started)."""
        table: dict[int, tuple[int, str]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "cmdline").read_bytes()
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            table[int(entry.name)] = (ppid, raw.replace(b"\0", b" ").decode(errors="replace"))
        ours = {pid for pid, (_, cmd) in table.items() if str(self.temp) in cmd}
        grew = True
        while grew:
            children = {pid for pid, (ppid, _) in table.items() if ppid in ours} - ours
            ours |= children
            grew = bool(children)
        return {pid: table[pid][1] for pid in ours}

    def wait_for(self, needle: str, timeout: float = 60) -> int:
        """The pid of a cluster process whose command line holds ``needle``, once one runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [pid for pid, cmd in self.processes().items() if needle in cmd]
            if found:
                return min(found)
            time.sleep(0.05)
        raise TimeoutError(f"no cluster process running {needle!r} within {timeout} s")

    def stop(self) -> None:
        """SIGKILL every process of this cluster (repeatedly: raylets restart workers while
        they live), then remove its directory."""
        for _ in range(20):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)
