"""The mistakes every new user makes, each through the real ``lm-eval-monkeys`` command
with the Hugging Face hub out of reach: one line naming the problem and the fix, a
non-zero exit, no traceback, and nothing loaded (the datasets cache of the run stays
empty and its output directory is not created). Then Ctrl-C and SIGTERM during a real
run, the help, and the checks that used to wait for the model."""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.store import SampleStore

SYNTHETIC = ("--model", "monkeys-synthetic", "--model_args", "accuracy=0.3,seed=0")
GSM8K = ("--tasks", "monkeys_gsm8k", "--limit", "2", "--repeats", "2")
UNREACHABLE_HUB = {
    "HF_HUB_OFFLINE": "0",
    "HF_DATASETS_OFFLINE": "0",
    "HF_ENDPOINT": "http://127.0.0.1:9",
}


def refused(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, out: Path | None = None
) -> str:
    """Run with an empty Hugging Face home and datasets cache; the one error line, after
    checking that nothing was loaded or written (a new output directory: not created)."""
    home, new = tmp_path / "hf_home", out is None
    out = tmp_path / "out" if out is None else out
    result = run_cli(
        *args,
        "--output_path",
        str(out),
        env={"HF_HOME": str(home), "HF_DATASETS_CACHE": str(home / "datasets"), **(env or {})},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("lm-eval-monkeys: error: "), result.stderr[-3000:]
    assert not (home / "datasets").exists() or not any((home / "datasets").iterdir())
    assert not (new and out.exists())
    return line


def test_a_misspelt_model_names_the_closest(tmp_path: Path) -> None:
    line = refused(tmp_path, "--model", "monkeys-hff", *GSM8K)
    assert "unknown model 'monkeys-hff'; did you mean monkeys-hf?" in line
    assert "monkeys-synthetic" in line


def test_a_model_args_key_the_model_does_not_take(tmp_path: Path) -> None:
    line = refused(tmp_path, "--model", "monkeys-synthetic", "--model_args", "acuracy=0.3", *GSM8K)
    assert "monkeys-synthetic takes no --model_args key acuracy; its keys: accuracy" in line


def test_a_hub_model_while_offline(tmp_path: Path) -> None:
    line = refused(tmp_path, "--model", "monkeys-hf", "--model_args", "pretrained=gpt2", *GSM8K)
    assert "the model gpt2 is not in the Hugging Face cache and HF_HUB_OFFLINE=1" in line
    assert "pretrained=/path/to/a/local/copy" in line


def test_a_hub_model_with_the_hub_unreachable(tmp_path: Path) -> None:
    started = time.monotonic()
    line = refused(
        tmp_path,
        *("--model", "monkeys-hf", "--model_args", "pretrained=gpt2"),
        *GSM8K,
        env=UNREACHABLE_HUB,
    )
    assert "cannot reach the Hugging Face hub at http://127.0.0.1:9 for the model gpt2" in line
    assert "HF_HUB_OFFLINE=1" in line and "pretrained=/path" in line
    assert time.monotonic() - started < 1500  # a hang guard only


def test_a_local_model_path_that_does_not_exist(tmp_path: Path) -> None:
    line = refused(
        tmp_path, "--model", "monkeys-hf", "--model_args", "pretrained=./no/such/model", *GSM8K
    )
    assert "pretrained=./no/such/model: no such file or directory" in line


@pytest.mark.parametrize("hub", ["offline", "unreachable"])
def test_no_data_directory_and_no_hub(tmp_path: Path, hub: str) -> None:
    env = {"MONKEYS_DATA_DIR": "", **(UNREACHABLE_HUB if hub == "unreachable" else {})}
    line = refused(tmp_path, *SYNTHETIC, *GSM8K, env=env)
    assert "openai/gsm8k" in line and "set MONKEYS_DATA_DIR to a directory" in line
    if hub == "offline":
        assert "not in the Hugging Face cache and HF_HUB_OFFLINE=1" in line
    else:
        assert "cannot reach the Hugging Face hub at http://127.0.0.1:9" in line


def test_a_code_task_without_the_unsafe_code_flag(tmp_path: Path) -> None:
    line = refused(
        tmp_path, *SYNTHETIC, "--tasks", "monkeys_codecontests", "--limit", "1", "--predict_only"
    )
    assert "monkeys_codecontests runs model-written programs" in line
    assert "add --confirm_run_unsafe_code" in line


def test_a_checker_that_cannot_run_names_the_run_flag(tmp_path: Path) -> None:
    minif2f = ("--tasks", "monkeys_minif2f", "--limit", "1")
    line = refused(tmp_path, *SYNTHETIC, *minif2f, env={"MONKEYS_LEAN_PROJECT": ""})
    assert "--metadata verifier=lean:/path/to/project" in line
    # A relative project path is resolved against the working directory, and named so.
    line = refused(tmp_path, *SYNTHETIC, *minif2f, "--metadata", "verifier=lean:no/lean")
    assert f"Lean project {Path.cwd() / 'no' / 'lean'} does not exist" in line


def test_a_second_writer_and_an_unwritable_output_before_the_model(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    with SampleStore(busy):  # this test's process writes the run directory
        line = refused(tmp_path, *SYNTHETIC, *GSM8K, out=busy)
    assert f"{busy} is being written by pid {os.getpid()}" in line
    a_file = tmp_path / "file"
    a_file.write_text("")
    line = refused(tmp_path, *SYNTHETIC, *GSM8K, out=a_file / "run")
    assert "cannot write the run directory" in line and "writable --output_path" in line


def stored_samples(run_dir: Path) -> int:
    path = run_dir / "samples.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_a_run_with_what_was_kept_and_how_to_resume(
    tmp_path: Path, stop: signal.Signals
) -> None:
    run_dir = tmp_path / "run"
    args = [
        *("--model", "monkeys-synthetic", "--model_args", "seed=0,sample_delay=0.2"),
        *("--tasks", "monkeys_gsm8k", "--limit", "8", "--repeats", "8"),
        *("--output_path", str(run_dir)),
    ]
    process = subprocess.Popen(
        ["lm-eval-monkeys", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a test runner started in the background ignores SIGINT, and
        # its children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 1500  # a hang guard only
    while stored_samples(run_dir) == 0 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 128 + stop, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    kept = stored_samples(run_dir)
    assert 0 < kept < 64
    assert line.startswith(f"lm-eval-monkeys: interrupted; {kept} samples of ")
    assert f"are kept in {run_dir}" in line
    command = line.split("what is missing: ", 1)[1]
    assert shlex.split(command) == ["lm-eval-monkeys", *args]
    resumed = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=1800)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert stored_samples(run_dir) == 64


def test_help_shows_our_flags_and_commands_first() -> None:
    for args in ((), ("--help",)):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr[-2000:]
        for flag in ("--repeats", "--ks", "--preset", "--shard", "--shards_on_ray"):
            assert flag in result.stdout
        for command in (
            "verify", "rescore", "export", "report", "compare", "reward", "merge", "task-dir"
        ):  # fmt: skip
            assert f"\n  {command} " in result.stdout
        assert "`lm-eval-monkeys run --help` lists them" in result.stdout
    run_help = run_cli("run", "--help")
    assert run_help.returncode == 0
    assert run_help.stdout.index("--repeats") < run_help.stdout.index("--model_args")
