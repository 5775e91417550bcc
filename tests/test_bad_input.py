"""Bad input at the store and the CLI: one line naming the problem and the fix, a non-zero
exit, no traceback, nothing half-written, and ``--output`` never replacing what is not a
regular file. Every case runs the real ``lm-eval-monkeys`` command on a real store."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import run_cli

GSM8K_DOC = {"question": "What is 2 + 2?", "answer": "So 4.\n#### 4"}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("bad_input") / "run"
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.3,seed=0"),
        *("--tasks", "monkeys_gsm8k", "--limit", "3", "--repeats", "2"),
        *("--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("lm-eval-monkeys: error: "), result.stderr[-2000:]
    for word in words:
        assert word in line, line
    return line


def test_a_store_damaged_mid_file(good_run: Path, tmp_path: Path) -> None:
    run_dir = copy_run(good_run, tmp_path / "run")
    path = run_dir / "samples.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    # Every page after the first (the header and table list stay): which page holds which
    # table depends on the layout, so no single page is sure to be read.
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xff" * (len(data) - page)
    path.write_bytes(bytes(data))
    one_line_error(run_cli("rescore", str(run_dir)), "corrupted", "restore")


def test_a_zero_byte_store(tmp_path: Path) -> None:
    (tmp_path / "samples.sqlite").write_bytes(b"")
    one_line_error(run_cli("rescore", str(tmp_path)), "empty")
    one_line_error(run_cli("export", str(tmp_path)), "empty")


def test_a_store_without_tables(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "samples.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    one_line_error(run_cli("rescore", str(tmp_path)), "not a run store", "samples")


def test_a_store_of_an_earlier_schema_is_one_line(good_run: Path, tmp_path: Path) -> None:
    """A schema-1 store (tables created lazily, verdicts without status) is refused by
    every reader and writer with one line, and left as it was."""
    run_dir = copy_run(good_run, tmp_path / "run")
    path = run_dir / "samples.sqlite"
    db = sqlite3.connect(path)
    db.execute("DROP TABLE rewards")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()  # the last connection: the change is checkpointed into the file
    before = path.read_bytes()
    for command in (["rescore", str(run_dir)], ["export", str(run_dir)]):
        one_line_error(run_cli(*command), "not a run store of this version", "schema 1")
    resumed = run_cli(
        *("--model", "monkeys-synthetic", "--tasks", "monkeys_gsm8k", "--limit", "2"),
        *("--repeats", "4", "--output_path", str(run_dir)),
    )
    one_line_error(resumed, "schema 1", "reads 2")
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["verdicts.sqlite", "verdicts-schema2.sqlite"])
def test_a_verdict_cache_of_an_earlier_schema(tmp_path: Path, name: str) -> None:
    """Schema 1's cache file (its own name) is left alone, a new one started; an old file
    under the current name is one line."""
    cache = tmp_path / "cache"
    cache.mkdir()
    db = sqlite3.connect(cache / name)  # schema 1: no status, no details
    db.execute(
        "CREATE TABLE verdicts (task TEXT, verifier TEXT, target TEXT, answer TEXT, "
        "correct INTEGER, PRIMARY KEY (task, verifier, target, answer))"
    )
    db.commit()
    db.close()
    before = (cache / name).read_bytes()
    lines = tmp_path / "in.jsonl"
    lines.write_text(json.dumps({"doc": {"answer": "#### 4"}, "completion": "#### 4"}) + "\n")
    result = run_cli(
        *("verify", "--task", "monkeys_gsm8k", "--input", str(lines)),
        *("--output", str(tmp_path / "out")),
        env={"MONKEYS_CACHE_DIR": str(cache)},
    )
    assert (cache / name).read_bytes() == before
    if name == "verdicts.sqlite":
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads((tmp_path / "out").read_text())["correct"] is True
        with sqlite3.connect(cache / "verdicts-schema2.sqlite") as new:
            assert new.execute("PRAGMA user_version").fetchone() == (2,)
    else:
        one_line_error(result, "not a verdict cache of this version", "delete it")


@pytest.mark.parametrize(
    ("table", "update"),
    [
        ("docs", "UPDATE docs SET doc = '{not json'"),
        ("config", "UPDATE meta SET value = '{not json' WHERE key = 'config'"),
        ("record", "UPDATE records SET record = 'nope'"),
    ],
)
def test_rows_that_are_not_json(good_run: Path, tmp_path: Path, table: str, update: str) -> None:
    run_dir = copy_run(good_run, tmp_path / "run")
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        db.execute(update)
    command = "report" if table == "config" else "rescore"
    extra = ["--output", str(tmp_path / "report")] if command == "report" else []
    one_line_error(run_cli(command, str(run_dir), *extra), "damaged")


@pytest.mark.parametrize(
    "damage",
    [
        "details = '{not json'",
        "details = '[1, 2]'",
        "correct = 'yes'",
    ],
)
def test_damaged_verdict_rows(good_run: Path, tmp_path: Path, damage: str) -> None:
    """A cached verdict that is not one is a one-line error naming the fix, never a
    traceback (export's was ``JSONDecodeError``) nor a verdict read off garbage."""
    run_dir = copy_run(good_run, tmp_path / "run")
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] > 0
        db.execute(f"UPDATE verdicts SET {damage}")
    out = tmp_path / "out.jsonl"
    line = one_line_error(run_cli("export", str(run_dir), "--output", str(out)), "damaged")
    assert "DELETE FROM verdicts" in line and not out.exists()
    one_line_error(run_cli("rescore", str(run_dir)), "damaged")


def test_a_checker_that_does_not_fit_the_task(good_run: Path, tmp_path: Path) -> None:
    run_dir = copy_run(good_run, tmp_path / "run")
    one_line_error(run_cli("rescore", str(run_dir), "--verifier", "code"), "drop --verifier")


def test_model_args_that_are_not_numbers() -> None:
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=abc"),
        *("--tasks", "monkeys_gsm8k", "--limit", "1", "--repeats", "2"),
    )
    one_line_error(result, "accuracy", "accuracy=0.3")


def test_output_naming_a_directory_or_an_unwritable_place(good_run: Path, tmp_path: Path) -> None:
    one_line_error(run_cli("export", str(good_run), "--output", str(tmp_path)), "directory")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"doc": GSM8K_DOC, "completion": "#### 4"}) + "\n")
    verify = ["verify", "--task", "monkeys_gsm8k", "--input", str(inputs)]
    one_line_error(run_cli(*verify, "--output", str(tmp_path)), "directory")
    one_line_error(run_cli(*verify, "--output", "/proc/version/out.jsonl"), "cannot write")


def test_completions_that_are_not_text_are_no_answer(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    lines = [{"doc": GSM8K_DOC, "completion": c} for c in (42, None, "#### 4")]
    inputs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "verify", "--task", "monkeys_gsm8k", "--input", str(inputs), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["answer"], r["correct"], r["status"]) for r in records] == [
        (None, False, "no_answer"),
        (None, False, "no_answer"),
        ("4", True, "correct"),
    ]


def test_output_writes_through_devices_fifos_and_links(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"doc": GSM8K_DOC, "completion": "#### 4"}) + "\n")
    verify = ["verify", "--task", "monkeys_gsm8k", "--input", str(inputs), "--output"]
    assert run_cli(*verify, "/dev/null").returncode == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert run_cli(*verify, str(fifo)).returncode == 0
    reader.join(timeout=120)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(received[0])["correct"] is True
    target = tmp_path / "elsewhere.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert run_cli(*verify, str(link)).returncode == 0
    assert link.is_symlink() and json.loads(target.read_text())["correct"] is True


def test_a_read_only_run_directory(good_run: Path, tmp_path: Path) -> None:
    """rescore and export read a run on a read-only mount, writing only their own output."""
    run_dir = copy_run(good_run, tmp_path / "run")
    before = sorted(p.name for p in run_dir.iterdir())
    out = tmp_path / "out"
    out.mkdir()
    script = (
        f"mount --bind {run_dir} {run_dir} && mount -o remount,bind,ro {run_dir} && "
        f"lm-eval-monkeys rescore {run_dir} && "
        f"lm-eval-monkeys export {run_dir} --output {out / 'all.jsonl'}"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "coverage@k" in result.stdout
    assert "read-only" in result.stderr
    assert len((out / "all.jsonl").read_text().splitlines()) == 6
    assert sorted(p.name for p in run_dir.iterdir()) == before
