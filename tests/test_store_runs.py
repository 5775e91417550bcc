"""Runs with a sample store: resume after kill -9, extend, rescore, export, and faults.

Every run is a real ``lm-eval-monkeys`` subprocess on ``monkeys-synthetic`` writing a real
SQLite store; the faults are real (a killed process, a full or read-only tmpfs, a second
writer, a corrupted file).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets
import pytest

SYNTHETIC = ["--model", "monkeys-synthetic", "--tasks", "monkeys_gsm8k", "--limit", "20"]


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["lm-eval-monkeys", *args], capture_output=True, text=True, timeout=timeout
    )


def run(
    run_dir: Path, repeats: int, model_args: str = "accuracy=0.3,seed=0"
) -> subprocess.CompletedProcess[str]:
    return cli(
        *SYNTHETIC,
        "--model_args",
        model_args,
        "--repeats",
        str(repeats),
        "--output_path",
        str(run_dir),
    )


def generated(result: subprocess.CompletedProcess[str]) -> int:
    """How many samples the run generated (the total of its sampling progress bar)."""
    totals = re.findall(r"sampling \(SyntheticLM\):.*?/(\d+) ", result.stderr)
    return int(totals[-1]) if totals else 0


def rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        return db.execute(
            "SELECT task, doc_id, sample_idx, completion FROM samples "
            "ORDER BY task, doc_id, sample_idx"
        ).fetchall()


def metrics(run_dir: Path) -> dict[str, float]:
    path = max(run_dir.rglob("results_*.json"))  # the latest run's
    found = json.loads(path.read_text())["results"]["monkeys_gsm8k"]
    return {k: v for k, v in found.items() if "@" in k and "stderr" not in k}


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run: 20 problems x 16 samples."""
    run_dir = tmp_path_factory.mktemp("reference")
    result = run(run_dir, 16)
    assert result.returncode == 0, result.stderr[-2000:]
    assert generated(result) == 320
    return run_dir


def test_store_holds_every_sample_once(reference: Path) -> None:
    stored = rows(reference)
    assert len(stored) == 320
    assert len({r[:3] for r in stored}) == 320


def test_rerun_generates_nothing_and_reports_the_same(reference: Path, tmp_path: Path) -> None:
    again = run(reference, 16)
    assert again.returncode == 0, again.stderr[-2000:]
    assert generated(again) == 0
    assert len(rows(reference)) == 320
    assert "coverage@k" in again.stdout and "majority@k" in again.stdout  # the pivot table


def test_resume_after_kill_9_generates_only_the_missing(reference: Path, tmp_path: Path) -> None:
    command = [
        "lm-eval-monkeys",
        *SYNTHETIC,
        "--model_args",
        "accuracy=0.3,seed=0,sample_delay=0.02",
        "--repeats",
        "16",
        "--output_path",
        str(tmp_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "samples.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if store.exists() and _count(store) >= 40:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _count(store)
    assert 40 <= before < 320, "the kill must land mid-run"

    resumed = run(tmp_path, 16, "accuracy=0.3,seed=0,sample_delay=0.02")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert generated(resumed) == 320 - before
    assert rows(tmp_path) == rows(reference), "resumed samples equal an uninterrupted run's"
    assert metrics(tmp_path) == metrics(reference)


def test_extend_generates_only_the_new_samples(reference: Path, tmp_path: Path) -> None:
    small = run(tmp_path, 8)
    assert small.returncode == 0 and generated(small) == 160
    first = rows(tmp_path)
    extended = run(tmp_path, 16)
    assert extended.returncode == 0, extended.stderr[-2000:]
    assert generated(extended) == 160
    assert [r for r in rows(tmp_path) if r[2] < 8] == first
    assert rows(tmp_path) == rows(reference)
    assert "coverage@16,k-samples" in metrics(tmp_path)


def test_a_different_configuration_is_refused(reference: Path) -> None:
    result = run(reference, 16, "accuracy=0.6,seed=0")
    assert "different run configuration (changed: accuracy)" in error_line(result)
    assert "new --output_path" in error_line(result)
    assert len(rows(reference)) == 320


def test_rescore_reproduces_the_run_and_switches_verifier(reference: Path) -> None:
    result = cli("rescore", str(reference))
    assert result.returncode == 0, result.stderr[-2000:]
    rescored = json.loads((reference / "rescore.json").read_text())["monkeys_gsm8k"]
    for name, value in metrics(reference).items():
        assert rescored[name.split(",")[0]] == pytest.approx(value, abs=1e-12)
    assert rescored["verifier"] == "gsm8k" and rescored["problems"] == 20

    flexible = cli("rescore", str(reference), "--verifier", "gsm8k:flexible", "--ks", "1,16")
    assert flexible.returncode == 0, flexible.stderr[-2000:]
    rescored = json.loads((reference / "rescore.json").read_text())["monkeys_gsm8k"]
    assert rescored["verifier"] == "gsm8k:flexible"
    assert {k for k in rescored if "@" in k} == {
        "coverage@1",
        "coverage@16",
        "majority@1",
        "majority@16",
    }


def test_export_jsonl_and_parquet_load_with_datasets(reference: Path, tmp_path: Path) -> None:
    stdout = cli("export", str(reference))
    assert stdout.returncode == 0, stdout.stderr[-2000:]
    records = [json.loads(line) for line in stdout.stdout.splitlines()]
    assert len(records) == 320
    assert set(records[0]) == {
        "task",
        "doc_id",
        "sample_idx",
        "completion",
        "answer",
        "correct",
        "status",
        "details",
        "prompt_tokens",
        "completion_tokens",
    }
    assert (
        cli(
            "export", str(reference), "--format", "parquet", "--output", str(tmp_path / "s.parquet")
        ).returncode
        == 0
    )
    assert cli("export", str(reference), "--output", str(tmp_path / "s.jsonl")).returncode == 0
    parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "s.parquet"))["train"]
    jsonl = datasets.load_dataset("json", data_files=str(tmp_path / "s.jsonl"))["train"]
    assert parquet.num_rows == jsonl.num_rows == 320
    assert parquet["correct"] == jsonl["correct"] == [r["correct"] for r in records]
    mean_c = sum(parquet["correct"]) / 320
    assert metrics(reference)["coverage@1,k-samples"] == pytest.approx(mean_c)


def test_second_writer_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    command = [
        "lm-eval-monkeys",
        *SYNTHETIC,
        "--model_args",
        "accuracy=0.3,seed=0,sample_delay=0.05",
        "--repeats",
        "16",
        "--output_path",
        str(tmp_path),
    ]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "samples.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = run(tmp_path, 16, "accuracy=0.3,seed=0,sample_delay=0.05")
        assert f"being written by pid {first.pid}" in error_line(second)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert len({r[:3] for r in rows(tmp_path)}) == len(rows(tmp_path))


def test_corrupted_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "samples.sqlite").write_bytes(b"this is not a database" * 100)
    line = error_line(run(tmp_path, 4))
    assert "corrupted" in line and "move it aside" in line
    assert (tmp_path / "samples.sqlite").read_bytes().startswith(b"this is not")


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_output_directory_is_a_clear_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as run_dir:
        line = error_line(run(run_dir, 4))
        assert "writable --output_path" in line


def test_full_disk_keeps_committed_samples_and_resumes(reference: Path, tmp_path: Path) -> None:
    slow = "accuracy=0.3,seed=0,sample_delay=0.01"  # several commits before the disk fills
    with tmpfs(tmp_path / "small", "size=160k") as run_dir:
        line = error_line(run(run_dir, 16, slow))
        assert "disk full" in line and "rerun the same command to resume" in line
        kept = rows(run_dir)
        assert kept, "samples committed before the disk filled are kept"
        subprocess.run(["cp", "-a", f"{run_dir}/.", str(tmp_path / "big")], check=True)
    resumed = run(tmp_path / "big", 16, slow)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert generated(resumed) == 320 - len(kept)
    assert rows(tmp_path / "big") == rows(reference)


def _count(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
