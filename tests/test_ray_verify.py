"""Verification on a real Ray cluster (a head and two one-CPU worker nodes on 127.0.0.1).

Every comparison is against local verification of a copy of the same store. The faults
are real: a Ray worker process killed with SIGKILL while it runs sandboxed programs, and a
worker node's raylet killed with its workers (a lost node); the node test runs last, as
it leaves the cluster one node short.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from ray_cluster import LocalRayCluster, free_port
from test_shards import content

from lm_eval_monkeys.cli import main
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.export import sample_records
from lm_eval_monkeys.scoring.dispatch import get_verify_backend
from lm_eval_monkeys.scoring.rescore import rescore_run
from lm_eval_monkeys.store import Sample, SampleStore

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    cache = tmp_path_factory.mktemp("worker-cache")  # the workers' code verdict cache
    started = LocalRayCluster(workers=2, env={"MONKEYS_CACHE_DIR": str(cache)})
    try:
        yield started
    finally:
        started.stop()
        assert not started.processes(), "cluster processes left behind"


@pytest.fixture(autouse=True)
def local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONKEYS_CACHE_DIR", str(tmp_path / "local-cache"))


def make_store(run_dir: Path, task: str, problems: list[tuple[dict, list[str]]]) -> None:
    """A run store written through the store's own API: docs, requested counts, samples."""
    store = SampleStore(run_dir)
    store.bind_config({"model": "handmade"})
    store.register_docs([(task, i, doc, f"prompt{i}", {}) for i, (doc, _) in enumerate(problems)])
    store.record_requested([(task, i, len(texts)) for i, (_, texts) in enumerate(problems)])
    store.add(
        (task, i, Sample(j, text, 10, len(text.split())))
        for i, (_, texts) in enumerate(problems)
        for j, text in enumerate(texts)
    )
    store.close()


def gsm8k_problems(data_dir: Path, count: int, k: int) -> list[tuple[dict, list[str]]]:
    rng = random.Random(0)
    docs = [json.loads(line) for line in (data_dir / "gsm8k/test.jsonl").open()][:count]
    problems = []
    for doc in docs:
        gold = int(doc["answer"].split("####")[-1].replace(",", ""))
        values = [gold, gold, gold + 1, gold * 2, 0]
        texts = [f"Step by step.\n#### {rng.choice(values)}" for _ in range(k - 1)]
        problems.append((doc, [*texts, "no answer here"]))
    return problems


def code_problems(count: int, sleep_s: float) -> list[tuple[dict, list[str]]]:
    """CodeContests-schema problems (a + b), each with right, wrong and crashing programs
    that sleep first, so tasks are still running when a worker is killed. A nonce makes
    the programs new to the workers' on-disk verdict cache."""
    nonce = uuid.uuid4().hex
    head = f"import time\ntime.sleep({sleep_s})  # {nonce}\na, b = map(int, input().split())\n"
    programs = [
        head + "print(a + b)",
        head + "print(b + a)",
        head + "print(a - b)",
        head + "raise SystemExit(3)",
    ]
    problems = []
    for i in range(count):
        doc = {
            "name": f"sum{i}",
            "public_tests": {"input": [f"{i} {i + 7}\n"], "output": [f"{2 * i + 7}\n"]},
            "private_tests": {"input": [], "output": []},
            "generated_tests": {"input": [], "output": []},
            "time_limit": {"seconds": 2, "nanos": 0},
            "memory_limit_bytes": 256 << 20,
        }
        texts = [f"```python\n{programs[j % 4]}\n```" for j in range(8)]
        problems.append((doc, texts))
    return problems


def verdict_rows(run_dir: Path) -> list[tuple]:
    """The cached verdicts (details hold run times, which differ from run to run)."""
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        query = "SELECT task, checker_spec, target, answer, correct, status FROM verdicts"
        return db.execute(query + " ORDER BY 1, 2, 3, 4").fetchall()


def per_sample(run_dir: Path) -> list[tuple]:
    return [
        (r["task"], r["doc_id"], r["sample_idx"], r["answer"], r["correct"])
        for records in sample_records(run_dir)
        for r in records
    ]


def twin_stores(tmp_path: Path, task: str, problems: list) -> tuple[Path, Path]:
    ray_run, local_run = tmp_path / "ray-run", tmp_path / "local-run"
    make_store(ray_run, task, problems)
    shutil.copytree(ray_run, local_run)
    return ray_run, local_run


def test_rescore_and_verify_on_ray_equal_local(
    cluster: LocalRayCluster, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray_run, local_run = twin_stores(
        tmp_path, "monkeys_gsm8k", gsm8k_problems(data_dir, count=30, k=16)
    )
    main(["rescore", str(ray_run), "--verify_backend", "ray", "--ray_address", cluster.address])
    local = rescore_run(local_run)
    assert json.loads((ray_run / "rescore.json").read_text()) == {
        task: result.flat() for task, result in local.items()
    }
    assert 0 < local["monkeys_gsm8k"].curves["coverage"][1] < 1
    rows = verdict_rows(ray_run)
    assert rows == verdict_rows(local_run) and len(rows) > 30

    # `verify` of JSONL: the same output lines through the cluster (address from RAY_ADDRESS).
    lines = tmp_path / "in.jsonl"
    with lines.open("w") as out:
        for doc, texts in gsm8k_problems(data_dir, count=10, k=6):
            out.writelines(json.dumps({"doc": doc, "completion": t}) + "\n" for t in texts)
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    for backend in ("ray", "local"):
        output = str(tmp_path / f"{backend}.jsonl")
        main(["verify", "--task", "monkeys_gsm8k", "--input", str(lines), "--output", output,
              "--verify_backend", backend])  # fmt: skip
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()


HOOK = """
import json, sys
log = open(sys.argv[1], "a")
for line in sys.stdin:
    request = json.loads(line)
    log.write(json.dumps(request["completion"]) + "\\n"); log.flush()
    gold = request["doc"]["answer"].split("####")[-1].strip()
    ok = request["completion"].strip().endswith(gold)
    print(json.dumps({"id": request["id"], "correct": ok}), flush=True)
"""


def test_verdicts_cached_in_the_store_are_never_verified_again(
    cluster: LocalRayCluster, tmp_path: Path, data_dir: Path
) -> None:
    """A hook verifier that logs every request it gets, run by the Ray workers and then
    locally: the second backend and a rerun find every verdict in the store."""
    hook, log = tmp_path / "hook.py", tmp_path / "requests.log"
    hook.write_text(HOOK)
    spec = f"command:{sys.executable} {hook} {log}"
    problems = gsm8k_problems(data_dir, count=12, k=8)
    run_dir = tmp_path / "run"
    make_store(run_dir, "monkeys_gsm8k", problems)
    distinct = sum(len({t for t in texts}) for _, texts in problems)

    backend = get_verify_backend("ray", address=cluster.address)
    try:
        on_ray = rescore_run(run_dir, spec, backend=backend)
        assert len(log.read_text().splitlines()) == distinct  # each once, none lost
        assert rescore_run(run_dir, spec, backend=backend) == on_ray
    finally:
        backend.close()
    assert rescore_run(run_dir, spec) == on_ray  # local backend, same store
    assert len(log.read_text().splitlines()) == distinct, "something was verified again"
    assert len(verdict_rows(run_dir)) == distinct


def test_a_checker_failing_on_a_worker_stops_with_its_message(
    cluster: LocalRayCluster, tmp_path: Path, data_dir: Path
) -> None:
    """A checker error is no worker fault: it is not retried, and its message comes back."""
    run_dir = tmp_path / "run"
    make_store(run_dir, "monkeys_gsm8k", gsm8k_problems(data_dir, count=2, k=4))
    backend = get_verify_backend("ray", address=cluster.address)
    try:
        with pytest.raises(MonkeysError, match="a Ray worker could not verify monkeys_gsm8k: "):
            rescore_run(run_dir, f"command:{tmp_path / 'no-such-verifier'}", backend=backend)
    finally:
        backend.close()


def rescore_while(cluster: LocalRayCluster, run_dir: Path, fault: callable) -> dict:
    """Rescore on the cluster in a thread while ``fault`` strikes a running task."""
    backend = get_verify_backend("ray", address=cluster.address, batch=1)
    result: dict = {}

    def work() -> None:
        try:
            result["metrics"] = rescore_run(run_dir, backend=backend)
        except BaseException as err:  # surfaced in the test below
            result["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    try:
        fault()
    finally:
        thread.join(timeout=240)
        backend.close()
    assert "error" not in result, result.get("error")
    return result["metrics"]


def test_worker_killed_mid_task_loses_and_duplicates_nothing(
    cluster: LocalRayCluster, tmp_path: Path
) -> None:
    ray_run, local_run = twin_stores(
        tmp_path, "monkeys_codecontests", code_problems(count=4, sleep_s=0.3)
    )
    killed = []

    def kill_a_busy_worker() -> None:
        pid = cluster.wait_for("ray::check_answers")
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    on_ray = rescore_while(cluster, ray_run, kill_a_busy_worker)
    assert killed
    assert on_ray == rescore_run(local_run)
    assert per_sample(ray_run) == per_sample(local_run)
    assert verdict_rows(ray_run) == verdict_rows(local_run)
    assert len(verdict_rows(ray_run)) == 4 * 4  # every distinct program exactly once
    assert 0 < on_ray["monkeys_codecontests"].curves["coverage"][1] < 1


def test_lost_node_loses_nothing(cluster: LocalRayCluster, tmp_path: Path) -> None:
    ray_run, local_run = twin_stores(
        tmp_path, "monkeys_codecontests", code_problems(count=4, sleep_s=0.3)
    )
    lost = []

    def kill_a_node() -> None:
        worker = cluster.wait_for("ray::check_answers")
        raylet = int(Path(f"/proc/{worker}/stat").read_text().rpartition(")")[2].split()[1])
        assert "raylet" in Path(f"/proc/{raylet}/cmdline").read_text()
        for pid in (raylet, worker):  # the node's raylet and what runs under it
            os.kill(pid, signal.SIGKILL)
        lost.append(raylet)

    on_ray = rescore_while(cluster, ray_run, kill_a_node)
    assert lost
    assert on_ray == rescore_run(local_run)
    assert per_sample(ray_run) == per_sample(local_run)
    assert verdict_rows(ray_run) == verdict_rows(local_run)


def test_unreachable_cluster_and_missing_ray_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    make_store(run_dir, "monkeys_gsm8k", [({"answer": "#### 1"}, ["#### 1"])])
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SystemExit, match=f"cannot reach the Ray cluster at {address}"):
        main(["rescore", str(run_dir), "--verify_backend", "ray", "--ray_address", address])

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(MonkeysError, match="--ray_address HEAD_IP:6379 or RAY_ADDRESS"):
        get_verify_backend("ray")

    # A machine without Ray: a `ray` package that fails to import shadows the real one.
    (tmp_path / "no-ray" / "ray").mkdir(parents=True)
    (tmp_path / "no-ray" / "ray" / "__init__.py").write_text("raise ImportError('no ray')\n")
    missing = run_cli(
        "rescore", str(run_dir), "--verify_backend", "ray", "--ray_address", "127.0.0.1:1",
        env={"PYTHONPATH": str(tmp_path / "no-ray")},
    )  # fmt: skip
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "pip install 'lm-eval-monkeys[ray]'" in missing.stderr


def test_a_run_sharded_across_the_cluster_equals_the_whole_run(
    cluster: LocalRayCluster, tmp_path: Path
) -> None:
    common = ["--model", "monkeys-synthetic", "--model_args", "seed=0",
              "--tasks", "monkeys_gsm8k", "--limit", "6", "--repeats", "4"]  # fmt: skip
    main([*common, "--output_path", str(tmp_path / "whole")])
    on_ray = [*common, "--shards_on_ray", "2", "--ray_address", cluster.address,
              "--output_path", str(tmp_path / "on-ray")]  # fmt: skip
    main(on_ray)
    shards = sorted(p.name for p in (tmp_path / "on-ray" / "shards").iterdir())
    assert shards == ["0-of-2", "1-of-2"]
    assert content(tmp_path / "on-ray") == content(tmp_path / "whole")
    main(on_ray)  # a rerun: every shard is complete, the merge changes nothing
    assert content(tmp_path / "on-ray") == content(tmp_path / "whole")

    failing = [*on_ray[:-1], str(tmp_path / "failing")]
    failing[failing.index("monkeys_gsm8k")] = "monkeys_no_such_task"
    with pytest.raises(SystemExit, match=r"2 of 2 shards failed \(shard [01]/2: exit 1: .*no_such"):
        main(failing)


def test_a_sharded_run_with_relative_paths_writes_where_the_command_was_typed(
    cluster: LocalRayCluster, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative --output_path and MONKEYS_DATA_DIR mean what they mean in the user's
    working directory, not in the Ray worker's."""
    typed_in = tmp_path / "typed_in"
    typed_in.mkdir()
    data = data_dir.resolve()  # the fixture's path may itself be relative to the start
    monkeypatch.chdir(typed_in)
    monkeypatch.setenv("MONKEYS_DATA_DIR", os.path.relpath(data, typed_in))
    main(
        [
            *("--model", "monkeys-synthetic", "--model_args", "seed=0"),
            *("--tasks", "monkeys_gsm8k", "--limit", "4", "--repeats", "2"),
            *("--shards_on_ray", "2", "--ray_address", cluster.address),
            *("--output_path", "runs/relative"),
        ]
    )
    run_dir = typed_in / "runs" / "relative"
    assert sorted(p.name for p in (run_dir / "shards").iterdir()) == ["0-of-2", "1-of-2"]
    with SampleStore(run_dir, writer=False) as store:
        assert store.database.read("SELECT COUNT(*) FROM samples") == [(8,)]
