"""The SWE-bench checker and its local runner, on a real git repository built here.

The repository ``acme/calc`` has a bug (``add`` subtracts); the instance's test patch adds
the failing test ``test_add``. Patches run through real git worktrees, the harness's
apply fallbacks, real pytest inside the bubblewrap sandbox, and swebench's own log
parser and grading functions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from lm_eval.tasks import TaskManager
from swebench_toy import BREAKS_NEG, FLAKY_GOLD, FUZZY, GOLD, MALFORMED, WRONG, git, make_toy

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.verdicts import VerdictFile
from lm_eval_monkeys.task_configs import TASK_DIR
from lm_eval_monkeys.tasks.data import gold_files, oracle_prompt
from lm_eval_monkeys.verification import score_completions
from lm_eval_monkeys.verifiers import Checker, get_verifier
from lm_eval_monkeys.verifiers.swebench import SWEbenchChecker, extract_patch
from lm_eval_monkeys.verifiers.swebench_local import LocalRunner, load_specs

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or subprocess.run(
        ["/usr/bin/python3", "-c", "import pytest"], capture_output=True
    ).returncode != 0,
    reason="needs bubblewrap and the system python's pytest (README install command)",
)  # fmt: skip


@pytest.fixture(scope="module")
def swe(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("swebench")
    instance, env = make_toy(root)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sandbox_dir = Path(env["MONKEYS_SANDBOX_DIR"])
    yield {"instance": instance, "root": root, "sandbox_dir": sandbox_dir, "env": env}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(sandbox_dir, ignore_errors=True)


def test_patch_extraction() -> None:
    assert extract_patch(f"Here is the fix.\n<patch>\n{GOLD}</patch>\nDone.") == GOLD
    assert extract_patch(f"```diff\n{GOLD}```") == GOLD
    assert extract_patch(f"I changed calc.py:\n{GOLD}\n\n") == GOLD
    assert extract_patch("") is None
    assert extract_patch("The bug is in add(); it should use +.") is None
    assert extract_patch("```diff\n--- a/calc.py\n+++ b/calc.py\n```") is None  # no hunk


def details_of(checker: Checker, answers: list[str], target: str) -> dict[str, dict]:
    """Each patch's verdict as the runner reported it."""
    verdicts = checker.judge_many(answers, target)
    return {
        a: {"resolved": v.correct, "status": v.status, **v.details}
        for a, v in zip(answers, verdicts, strict=True)
    }


def test_local_runner_grades_with_swebench(swe: dict) -> None:
    checker = get_verifier("swebench:local")
    assert isinstance(checker, SWEbenchChecker)
    target = checker.target(swe["instance"])
    patches = [GOLD, WRONG, BREAKS_NEG, MALFORMED, FUZZY]
    details = details_of(checker, patches, target)
    assert details[GOLD]["resolved"] and details[GOLD]["status"] == "RESOLVED_FULL"
    assert not details[WRONG]["resolved"]
    assert details[WRONG]["fail_to_pass_failed"] == ["tests/test_calc.py::test_add"]
    assert not details[BREAKS_NEG]["resolved"]
    assert details[BREAKS_NEG]["pass_to_pass_failed"] == ["tests/test_calc.py::test_neg"]
    assert details[MALFORMED] == {**details[MALFORMED], "resolved": False,
                                  "status": "patch_failed"}  # fmt: skip
    assert "patch --batch" in details[MALFORMED]["detail"]  # every fallback was tried
    assert details[FUZZY]["resolved"]  # applied by a fallback, like the harness
    # One environment was built for (repo, version) and reused by all patches.
    envs = list((swe["sandbox_dir"] / "swebench" / "envs").glob("acme__calc__1.0-*/.ready"))
    assert len(envs) == 1
    # Worktrees are gone, and the mirror has no stale worktree left registered.
    assert not list((swe["sandbox_dir"] / "swebench" / "trees").iterdir())
    mirror = swe["root"] / "mirrors" / "acme__calc"
    assert git(mirror, "worktree", "list").count("\n") == 0


def test_identical_patches_run_once_and_verdicts_persist(swe: dict) -> None:
    completions = [f"<patch>\n{GOLD}</patch>", f"```diff\n{GOLD}\n```", WRONG, "no diff here"]
    checker = get_verifier("swebench:local")
    runs: list[str] = []
    runner = LocalRunner(specs=load_specs())
    evaluate = runner.evaluate
    checker._runner = runner
    runner.evaluate = lambda instance, patch: runs.append(patch) or evaluate(instance, patch)
    cache = VerdictFile(swe["root"] / "verdicts.sqlite")
    scored = score_completions(checker, swe["instance"], completions, cache.table)
    assert scored.correct == [True, True, False, False]
    assert scored.answers[3] is None
    assert runs.count(GOLD) == 1 + checker.gold_runs  # the gold check, then once for both
    # A fresh checker (a rescore) reads every verdict from the cache: nothing runs.
    fresh = get_verifier("swebench:local")
    fresh._runner = None
    again = score_completions(fresh, swe["instance"], completions, cache.table)
    assert again.verdicts == scored.verdicts
    assert fresh._runner is None


def test_flaky_instance_is_reported(swe: dict, caplog: pytest.LogCaptureFixture) -> None:
    flaky = {**swe["instance"], "instance_id": "acme__calc-2", "patch": FLAKY_GOLD}
    checker = get_verifier("swebench:local")
    with caplog.at_level("WARNING"):
        details = details_of(checker, [GOLD], checker.target(flaky))
    assert checker.flaky == {"acme__calc-2": "gold patch resolved 1 of 2 runs"}
    assert details[GOLD]["flaky"] == "gold patch resolved 1 of 2 runs"
    assert "acme__calc-2 is flaky" in caplog.text
    assert not get_verifier("swebench:local").flaky  # a new checker learns it on first use


def test_clear_errors_for_missing_setup(swe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    checker = get_verifier("swebench:local")
    other = {**swe["instance"], "repo": "acme/unknown", "instance_id": "acme__unknown-1"}
    with pytest.raises(MonkeysError, match="no test spec for acme/unknown"):
        details_of(checker, [GOLD], checker.target(other))
    monkeypatch.setenv("MONKEYS_SWEBENCH_REPOS", str(swe["root"] / "nowhere"))
    with pytest.raises(MonkeysError, match="MONKEYS_SWEBENCH_REPOS"):
        LocalRunner()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(MonkeysError, match="Docker daemon"):
        get_verifier("swebench:docker").runner  # noqa: B018
    with pytest.raises(MonkeysError, match="choose swebench"):
        get_verifier("swebench:podman")


def test_verify_command_on_swebench(swe: dict, tmp_path: Path) -> None:
    records = [
        {"doc": swe["instance"], "completion": f"<patch>\n{GOLD}</patch>"},
        {"doc": swe["instance"], "completion": "Sorry, I cannot produce a patch."},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "out.jsonl"
    done = run_cli("verify", "--task", "monkeys_swebench_lite", "--input", str(source),
                   "--output", str(output), env=swe["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    verdicts = [json.loads(line)["correct"] for line in output.open()]
    assert verdicts == [True, False]


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
    assert "[start of calc.py]\n1 def add(a, b):\n2     return a - b\n" in prompt
    assert "tests/test_calc.py" not in prompt  # test files are not shown
