"""The SWE-bench checker and its local runner, on a real git repository built here.

The repository ``acme/calc`` (tests/swebench_toy.py) has a bug (``add`` subtracts) in a
src-layout package whose environment setup commit already holds the fix; the instance's
test patch adds the failing test ``test_add``. Patches run through real clones, the
harness's apply fallbacks, a real virtualenv (pytest from PyPI), the reinstall and pytest
inside the bubblewrap sandbox, and swebench's own log parser and grading functions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import run_cli
from lm_eval.tasks import TaskManager
from swebench_toy import (
    BREAKS_NEG,
    CHEATS,
    FLAKY_GOLD,
    FUZZY,
    GOLD,
    MALFORMED,
    SPEC,
    WRONG,
    git,
    make_toy,
)

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.store.verdicts import VerdictFile
from lm_eval_monkeys.task_configs import TASK_DIR
from lm_eval_monkeys.tasks.data import gold_files, oracle_prompt
from lm_eval_monkeys.verifiers.swebench.grading import SWEbenchChecker, extract_patch, swebench
from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (README install command)"
)


@pytest.fixture(scope="module")
def swe(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("swebench")
    # Not under /tmp: bwrap gives the sandbox an empty one.
    sandbox_dir = Path(tempfile.mkdtemp(prefix="monkeys-toy-", dir="/var/tmp"))
    sandbox_dir.chmod(0o755)
    instance, env = make_toy(root, sandbox_dir)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield {"instance": instance, "root": root, "work": sandbox_dir / "swebench", "env": env}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(sandbox_dir, ignore_errors=True)


def checker(gold: int = 0) -> SWEbenchChecker:
    return swebench(f"local,gold={gold}")


def test_patch_extraction() -> None:
    assert extract_patch(f"Here is the fix.\n<patch>\n{GOLD}</patch>\nDone.") == GOLD
    assert extract_patch(f"```diff\n{GOLD}```") == GOLD
    assert extract_patch(f"I changed calc.py:\n{GOLD}\n\n") == GOLD
    assert extract_patch("") is None
    assert extract_patch("The bug is in add(); it should use +.") is None
    assert extract_patch("```diff\n--- a/calc.py\n+++ b/calc.py\n```") is None  # no hunk


def test_local_runner_grades_the_patched_tree(swe: dict) -> None:
    check = checker()
    target = check.target(swe["instance"])
    patches = [GOLD, WRONG, BREAKS_NEG, MALFORMED, FUZZY, CHEATS]
    verdicts = dict(zip(patches, check.judge_many(patches, target), strict=True))
    assert verdicts[GOLD].correct and verdicts[GOLD].status == "resolved"
    # The setup commit holds the fix: only the patched tree's install makes WRONG fail.
    assert (verdicts[WRONG].correct, verdicts[WRONG].status) == (False, "tests_failed")
    assert verdicts[WRONG].details["failing_tests"] == ["tests/test_calc.py::test_add"]
    assert verdicts[BREAKS_NEG].details["pass_to_pass_failed"] == ["tests/test_calc.py::test_neg"]
    assert not verdicts[BREAKS_NEG].correct
    assert (verdicts[MALFORMED].correct, verdicts[MALFORMED].status) == (False, "patch_failed")
    assert "patch --batch" in Path(verdicts[MALFORMED].details["log"]).read_text()
    assert verdicts[FUZZY].correct  # applied by a fallback, like the harness
    assert verdicts[CHEATS].status == "tests_failed"  # its edit of the tests was undone
    # Each distinct patch keeps its own test log.
    logs = {v.details["log"] for v in verdicts.values()}
    assert len(logs) == len(patches)
    assert "PASSED tests/test_calc.py::test_add" in Path(verdicts[GOLD].details["log"]).read_text()
    # One environment (two layers), reused by every patch; no run directory left
    # behind, and nothing registered in the mirror.
    assert len(list((swe["work"] / "images").iterdir())) == 2  # dependencies, instance
    assert not list((swe["work"] / "runs").iterdir())
    mirror = swe["root"] / "mirrors" / "acme__calc"
    assert git(mirror, "worktree", "list").count("\n") == 0


def test_identical_patches_run_once_and_verdicts_persist(swe: dict) -> None:
    completions = [f"<patch>\n{GOLD}</patch>", f"```diff\n{GOLD}\n```", WRONG, "no diff here"]
    check = checker(gold=1)
    runner = LocalRunner()
    runs: list[str] = []
    evaluate = runner.evaluate
    check._runner = runner
    runner.evaluate = lambda instance, patch: runs.append(patch) or evaluate(instance, patch)
    cache = VerdictFile(swe["root"] / "verdicts.sqlite")
    scored = score_completions(check, swe["instance"], completions, cache.table)
    assert scored.correct == [True, True, False, False]
    assert scored.answers[3] is None
    assert runs.count(GOLD) == 2  # the gold check, then once for both completions
    # A fresh checker (a rescore) reads every verdict from the cache: no patch runs.
    fresh = checker(gold=1)
    fresh._runner = LocalRunner()
    fresh._runner.evaluate = lambda instance, patch: pytest.fail("ran a patch again")
    again = score_completions(fresh, swe["instance"], completions, cache.table)
    assert again.verdicts == scored.verdicts


def test_gold_check_flaky_and_broken_setups(swe: dict, caplog: pytest.LogCaptureFixture) -> None:
    flaky = {**swe["instance"], "instance_id": "acme__calc-2", "patch": FLAKY_GOLD}
    check = checker(gold=2)
    with caplog.at_level("WARNING"):
        [verdict] = check.judge_many([GOLD], check.target(flaky))
    assert check.flaky == {"acme__calc-2": "gold patch resolved 1 of 2 runs"}
    assert verdict.correct and verdict.details["flaky"] == "gold patch resolved 1 of 2 runs"
    assert "acme__calc-2 is flaky" in caplog.text
    # A gold patch that never resolves means the setup is broken: even the right patch
    # gets env_failed, not final (never cached), rather than a verdict.
    broken = {**swe["instance"], "instance_id": "acme__calc-3", "patch": WRONG}
    check = checker(gold=1)
    verdicts = check.judge_many([GOLD, WRONG], check.target(broken))
    assert [(v.correct, v.status, v.final) for v in verdicts] == [(False, "env_failed", False)] * 2
    assert "resolved 0 of 1 runs: the setup is broken" in verdicts[0].details["reason"]


def test_failed_build_is_env_failed_and_leaves_nothing(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = tmp_path / "specs.json"
    bad = {**SPEC, "pip_packages": ["lm-eval-monkeys-no-such-package==0.0.1"]}
    specs.write_text(json.dumps({"acme/calc": {"default": bad}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    [verdict] = check.judge_many([GOLD], check.target(swe["instance"]))
    assert (verdict.correct, verdict.status, verdict.final) == (False, "env_failed", False)
    assert "failed at pip_packages" in verdict.details["reason"]
    log = Path(verdict.details["reason"].rsplit("see ", 1)[1])
    assert "lm-eval-monkeys-no-such-package" in log.read_text()
    envs = swe["work"] / "envs"
    assert not [p for p in envs.iterdir() if p.name.startswith(".build-")]


def test_verdict_key_follows_the_spec(swe: dict, tmp_path: Path, monkeypatch) -> None:
    before = checker().target(swe["instance"])
    assert checker().target(swe["instance"]) == before  # stable across checkers
    specs = tmp_path / "specs.json"
    edited = {**SPEC, "test_cmd": "pytest -rA -p no:cacheprovider -x"}
    specs.write_text(json.dumps({"acme/calc": {"default": edited}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    assert checker().target(swe["instance"]) != before


def test_killed_build_leaves_no_environment(swe: dict, tmp_path: Path) -> None:
    """kill -9 during a build: no environment appears, the next runner cleans up."""
    specs, slow = tmp_path / "specs.json", tmp_path / "slow"
    slow.touch()
    waits = {**SPEC, "pre_install": [f"test ! -e {slow} || sleep 600"]}
    specs.write_text(json.dumps({"acme/calc": {"default": waits}}))
    env = {**os.environ, **swe["env"], "MONKEYS_SWEBENCH_SPECS": str(specs)}
    script = (
        "import json, sys\n"
        "from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner\n"
        "instance = json.loads(sys.argv[1])\n"
        "LocalRunner().evaluate(instance, instance['patch'])\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(swe["instance"])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    envs = swe["work"] / "envs"
    deadline = time.monotonic() + 240
    while not any(envs.glob(".build-*/src")):  # the instance layer reached pre_install
        assert time.monotonic() < deadline and child.poll() is None, "the build never started"
        time.sleep(0.5)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    os.environ["MONKEYS_SWEBENCH_SPECS"] = str(specs)
    try:
        name = LocalRunner().plan(swe["instance"]).name  # a new runner removes the wreck
        assert not (envs / name).exists()
        assert not list(envs.glob(".build-*"))
        slow.unlink()  # the same environment now builds, and resolves the gold patch
        assert LocalRunner().evaluate(swe["instance"], GOLD)["resolved"]
        assert (envs / name).is_dir()
    finally:
        os.environ["MONKEYS_SWEBENCH_SPECS"] = swe["env"]["MONKEYS_SWEBENCH_SPECS"]


def test_clear_errors_for_missing_setup(swe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    check = checker()
    other = {**swe["instance"], "repo": "acme/unknown", "instance_id": "acme__unknown-1"}
    with pytest.raises(MonkeysError, match=r"no SWE-bench spec for acme/unknown 1\.0"):
        check.target(other)
    old = {**swe["instance"], "instance_id": "acme__calc-9"}
    specs = Path(swe["env"]["MONKEYS_SWEBENCH_SPECS"]).with_name("old-python.json")
    specs.write_text(json.dumps({"acme/calc": {"default": {**SPEC, "python": "2.1"}}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    with pytest.raises(MonkeysError, match=r"needs Python 2\.1 .*uv python install 2\.1"):
        checker().target(old)
    monkeypatch.setenv("MONKEYS_SANDBOX_DIR", "/tmp/monkeys-under-tmp")
    with pytest.raises(MonkeysError, match="under /tmp"):
        LocalRunner()
    monkeypatch.setenv("MONKEYS_SWEBENCH_REPOS", str(swe["root"] / "nowhere"))
    with pytest.raises(MonkeysError, match="MONKEYS_SWEBENCH_REPOS"):
        LocalRunner()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(MonkeysError, match="Docker daemon"):
        swebench("docker").runner  # noqa: B018
    with pytest.raises(MonkeysError, match="choose swebench"):
        swebench("podman")
    with pytest.raises(MonkeysError, match="use gold=N"):
        swebench("local,golden=2")


def test_verify_command_reports_status(swe: dict, tmp_path: Path) -> None:
    records = [
        {"doc": swe["instance"], "completion": f"<patch>\n{GOLD}</patch>"},
        {"doc": swe["instance"], "completion": f"<patch>\n{WRONG}</patch>"},
        {"doc": swe["instance"], "completion": "Sorry, I cannot produce a patch."},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "out.jsonl"
    done = run_cli("verify", "--task", "monkeys_swebench_lite", "--input", str(source),
                   "--output", str(output), "--verifier", "swebench:local",
                   env=swe["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in output.open()]
    assert [line["correct"] for line in lines] == [True, False, False]
    assert [line["status"] for line in lines[:2]] == ["resolved", "tests_failed"]
    assert lines[1]["details"]["failing_tests"] == ["tests/test_calc.py::test_add"]
    assert Path(lines[1]["details"]["log"]).is_file()


def test_task_builds_oracle_prompts(swe: dict) -> None:
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    task = manager.load("monkeys_swebench_lite")["tasks"]["monkeys_swebench_lite"]
    docs = task.eval_docs
    assert len(docs) == 300
    # The Lite repositories have no mirror here: the files are named, contents missing.
    assert docs[0]["problem_statement"].strip()[:200] in docs[0]["text"]
    assert docs[0]["text"].endswith("<patch>\n")
    assert "contents not available]" in docs[0]["text"]
    assert task.config.generation_kwargs["until"] == ["</patch>"]
    assert task.config.metadata["verifier"] == "swebench"
    # With a mirror, the prompt shows each file the gold patch edits at base_commit.
    toy = swe["instance"]
    prompt = oracle_prompt(toy, gold_files(toy, os.environ["MONKEYS_SWEBENCH_REPOS"]))
    assert "[start of src/calc/__init__.py]\n1 def add(a, b):\n2     return a - b\n" in prompt
    assert "tests/test_calc.py" not in prompt  # test files are not shown
