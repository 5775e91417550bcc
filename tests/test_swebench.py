"""The SWE-bench checker and its local runner, on a real git repository built here.

The repository ``acme/calc`` has a bug (``add`` subtracts); the instance's test patch adds
the failing test ``test_add``. Patches run through real git worktrees, the harness's
apply fallbacks, real pytest inside the bubblewrap sandbox, and swebench's own log
parser and grading functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli
from lm_eval.tasks import TaskManager
from lm_eval_monkeys.task_configs import TASK_DIR
from lm_eval_monkeys.verifiers import get_verifier
from lm_eval_monkeys.verifiers.swebench import SWEbenchChecker, extract_patch
from lm_eval_monkeys.verifiers.swebench_local import LocalRunner, load_specs

from lm_eval_monkeys.data import gold_files, oracle_prompt
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.selection import Grader, score_samples

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or subprocess.run(
        ["/usr/bin/python3", "-c", "import pytest"], capture_output=True
    ).returncode != 0,
    reason="needs bubblewrap and the system python's pytest (README install command)",
)  # fmt: skip

CALC = "def add(a, b):\n    return a - b\n\n\ndef neg(a):\n    return -a\n"
TESTS = "from calc import neg\n\n\ndef test_neg():\n    assert neg(2) == -2\n"


def _diff(text: str) -> str:
    """Diffs below write a blank context line as ``~`` (a lone space would be invisible)."""
    return re.sub(r"(?m)^~$", " ", text)


TEST_PATCH = _diff("""diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,5 +1,9 @@
-from calc import neg
+from calc import add, neg
~
~
 def test_neg():
     assert neg(2) == -2
+
+
+def test_add():
+    assert add(2, 3) == 5
""")
GOLD = _diff("""diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
~
~
 def neg(a):
""")
WRONG = GOLD.replace("+    return a + b", "+    return a * b")
# Fixes add but breaks neg: FAIL_TO_PASS passes, PASS_TO_PASS fails.
BREAKS_NEG = GOLD.replace(" def neg(a):\n", "-def neg(a):\n+def neg(a, unused):\n")
MALFORMED = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -7,3 +7,3 @@
 def nothing_like_this():
-    return 0
+    return 1
"""
# Context lines off by a few: plain `git apply` refuses, GNU patch's fuzz applies it.
FUZZY = GOLD.replace("@@ -1,5 +1,5 @@\n def add(a, b):", "@@ -1,5 +1,5 @@\n def add(a,b):")
# The gold patch of the flaky instance: add() is right only for even sandbox uids. The
# sandbox rotates uids, so consecutive runs alternate (deterministic "flakiness").
FLAKY_GOLD = GOLD.replace(
    "+    return a + b", "+    import os\n+    return a + b if os.getuid() % 2 == 0 else 0"
).replace("@@ -1,5 +1,5 @@", "@@ -1,5 +1,6 @@")


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def swe(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("swebench")
    mirror = root / "mirrors" / "acme__calc"
    (mirror / "tests").mkdir(parents=True)
    (mirror / "calc.py").write_text(CALC)
    (mirror / "tests" / "test_calc.py").write_text(TESTS)
    _git(mirror, "init", "-q")
    _git(mirror, "add", ".")
    _git(mirror, "commit", "-qm", "base")
    base = _git(mirror, "rev-parse", "HEAD")
    specs = root / "specs.json"
    # The system python with Debian's pytest: an environment that needs no network.
    spec = {"test_cmd": "python -m pytest -rA -p no:cacheprovider", "python": "/usr/bin/python3",
            "system_site_packages": True}  # fmt: skip
    specs.write_text(json.dumps({"acme/calc": {"default": spec}}))
    # bwrap runs as an unprivileged uid: its work directory must be traversable by it.
    sandbox_dir = Path(tempfile.mkdtemp(prefix="monkeys-test-", dir="/var/tmp"))
    sandbox_dir.chmod(0o755)
    env = {
        "MONKEYS_SWEBENCH_REPOS": str(root / "mirrors"),
        "MONKEYS_SWEBENCH_SPECS": str(specs),
        "MONKEYS_SANDBOX_DIR": str(sandbox_dir),
        "MONKEYS_CACHE_DIR": str(root / "cache"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    instance = {
        "repo": "acme/calc",
        "instance_id": "acme__calc-1",
        "base_commit": base,
        "patch": GOLD,
        "test_patch": TEST_PATCH,
        "problem_statement": "add() subtracts",
        "version": "1.0",
        "environment_setup_commit": base,
        "FAIL_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
        "PASS_TO_PASS": json.dumps(["tests/test_calc.py::test_neg"]),
    }
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


def test_local_runner_grades_with_swebench(swe: dict) -> None:
    checker = get_verifier("swebench:local")
    assert isinstance(checker, SWEbenchChecker)
    target = checker.target(swe["instance"])
    patches = [GOLD, WRONG, BREAKS_NEG, MALFORMED, FUZZY]
    details = checker.details_many(patches, target)
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
    assert _git(mirror, "worktree", "list").count("\n") == 0


def test_identical_patches_run_once_and_verdicts_persist(swe: dict) -> None:
    completions = [f"<patch>\n{GOLD}</patch>", f"```diff\n{GOLD}\n```", WRONG, "no diff here"]
    checker = get_verifier("swebench:local")
    runs: list[str] = []
    runner = LocalRunner(specs=load_specs())
    evaluate = runner.evaluate
    checker._runner = runner
    runner.evaluate = lambda instance, patch: runs.append(patch) or evaluate(instance, patch)
    scored = score_samples(completions, checker.target(swe["instance"]), Grader(checker))
    assert scored.correct == [True, True, False, False]
    assert scored.answers[3] is None
    assert runs.count(GOLD) <= 1  # cached by the previous test, or graded exactly once
    # A fresh checker (a rescore) reads every verdict from the disk cache: nothing runs.
    fresh = get_verifier("swebench:local")
    fresh._runner = None
    fresh.gold_runs = 0
    assert fresh.is_correct_many([GOLD, WRONG], fresh.target(swe["instance"])) == [True, False]
    assert fresh._runner is None


def test_flaky_instance_is_reported(swe: dict, caplog: pytest.LogCaptureFixture) -> None:
    flaky = {**swe["instance"], "instance_id": "acme__calc-2", "patch": FLAKY_GOLD}
    checker = get_verifier("swebench:local")
    with caplog.at_level("WARNING"):
        details = checker.details_many([GOLD], checker.target(flaky))
    assert checker.flaky == {"acme__calc-2": "gold patch resolved 1 of 2 runs"}
    assert details[GOLD]["flaky"] == "gold patch resolved 1 of 2 runs"
    assert "acme__calc-2 is flaky" in caplog.text
    assert not get_verifier("swebench:local").flaky  # a new checker learns it on first use


def test_clear_errors_for_missing_setup(swe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    checker = get_verifier("swebench:local")
    other = {**swe["instance"], "repo": "acme/unknown", "instance_id": "acme__unknown-1"}
    with pytest.raises(MonkeysError, match="no test spec for acme/unknown"):
        checker.details_many([GOLD], checker.target(other))
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
