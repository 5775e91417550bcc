"""The Lean REPL pool, against a stand-in REPL that speaks the repl's JSON protocol.

Lean cannot be installed on these machines; the stand-in (a real process started by the
pool, below) answers like leanprover-community/repl. With `lake` on PATH and
MONKEYS_LEAN_PROJECT set, the last test checks a real proof.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.verifiers import get_checker
from lm_eval_monkeys.verifiers.lean import LeanChecker

STAND_IN = r"""
import json, os, sys, time
log = open(os.environ["STANDIN_LOG"], "a")
envs = 0
buffer = ""
for line in sys.stdin:
    if line.strip():
        buffer += line
        continue
    if not buffer:
        continue
    request, buffer = json.loads(buffer), ""
    cmd = request["cmd"]
    if "env" not in request:  # the header: the expensive import, once per process
        log.write("header\n"); log.flush()
        time.sleep(0.2)
        reply = {"env": 0}
    elif "LOOP" in cmd:
        time.sleep(3600)
    elif "CRASH" in cmd:
        os._exit(1)
    else:
        log.write("proof\n"); log.flush()
        envs += 1
        solved = "linarith" in cmd
        messages = [] if solved else [{"severity": "error", "data": "unsolved goals"}]
        sorries = [{"goal": "⊢ False"}] if "sorry" in cmd else []
        reply = {"env": envs, "messages": messages, "sorries": sorries}
    print("noise from the REPL")  # stray output must not break the protocol
    print(json.dumps(reply, indent=2)); print(); sys.stdout.flush()
"""
DOC = {
    "name": "mathd_algebra_1",
    "split": "test",
    "informal_prefix": "/-- 2 + 2 = 4 -/\n",
    "header": "import Mathlib\nimport Aesop\n\n",
    "formal_statement": "theorem mathd_algebra_1 : (2 : ℝ) + 2 = 4 := by\n",
    "goal": "",
}


@pytest.fixture()
def checker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LeanChecker:
    script = tmp_path / "standin_repl.py"
    script.write_text(STAND_IN)
    monkeypatch.setenv("STANDIN_LOG", str(tmp_path / "log"))
    made = LeanChecker(
        tmp_path, repl_command=[sys.executable, str(script)], pool_size=1, timeout_s=2, max_uses=3
    )
    yield made
    made.close()


def log(tmp_path: Path) -> list[str]:
    return (tmp_path / "log").read_text().split()


def test_header_is_elaborated_once_and_reused(checker: LeanChecker, tmp_path: Path) -> None:
    target = checker.target(DOC)
    assert checker.is_correct("  norm_num\n  linarith", target)
    assert not checker.is_correct("  simp", target)
    assert log(tmp_path) == ["header", "proof", "proof"]
    assert checker.started == 1


def test_sorry_admit_and_changed_statements_are_rejected(
    checker: LeanChecker, tmp_path: Path
) -> None:
    target = checker.target(DOC)
    for cheat in (
        "  sorry",
        "  admit",
        "  linarith\naxiom cheat : False",
        "  linarith\ntheorem mathd_algebra_1 : True := trivial",
        "  exact?\n#exit",
    ):
        assert not checker.is_correct(cheat, target), cheat
    assert checker.started == 0, "cheats are rejected before any REPL runs"


def test_timeout_and_crash_restart_the_repl(checker: LeanChecker, tmp_path: Path) -> None:
    target = checker.target(DOC)
    assert not checker.is_correct("  LOOP linarith", target)  # times out twice
    assert not checker.is_correct("  CRASH linarith", target)  # crashes twice
    assert checker.is_correct("  linarith", target)  # a fresh REPL still works
    assert checker.started == 5


def test_repl_restarts_after_max_uses(checker: LeanChecker, tmp_path: Path) -> None:
    target = checker.target(DOC)
    for _ in range(4):
        assert checker.is_correct("  linarith", target)
    assert log(tmp_path).count("header") == 2  # max_uses=3


def test_summary_verifies_each_distinct_proof_once(checker: LeanChecker, tmp_path: Path) -> None:
    completions = ["  linarith\n```", "  linarith", "  simp", "```", "  sorry"]
    scored = score_completions(checker, DOC, completions)
    assert scored.correct == [True, True, False, False, False]
    assert log(tmp_path).count("proof") == 2


def test_missing_project_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONKEYS_LEAN_PROJECT", raising=False)
    with pytest.raises(MonkeysError, match="MONKEYS_LEAN_PROJECT"):
        get_checker("lean")
    with pytest.raises(MonkeysError, match="does not exist"):
        get_checker(f"lean:{tmp_path / 'nowhere'}")


def test_minif2f_tasks_build_prompts_from_local_data() -> None:
    from lm_eval.tasks import TaskManager

    from lm_eval_monkeys.task_configs import TASK_DIR

    manager = TaskManager(
        include_path=str(TASK_DIR),
        include_defaults=False,
        metadata={"repeats": 2, "verifier": "gsm8k"},
    )  # no Lean here
    tasks = manager.load(["monkeys_minif2f", "monkeys_minif2f_mathd"])["tasks"]
    assert len(tasks["monkeys_minif2f"].eval_docs) == 244
    assert len(tasks["monkeys_minif2f_mathd"].eval_docs) == 130
    doc = tasks["monkeys_minif2f"].eval_docs[0]
    prompt = tasks["monkeys_minif2f"].doc_to_text(doc)
    assert prompt.startswith("Complete the following Lean 4 code:") and prompt.endswith(":= by\n")


@pytest.mark.skipif(
    shutil.which("lake") is None or not os.environ.get("MONKEYS_LEAN_PROJECT"),
    reason="needs Lean (lake) and a Mathlib project in MONKEYS_LEAN_PROJECT",
)
def test_real_lean_checks_a_real_proof() -> None:
    checker = get_checker("lean")
    target = checker.target(DOC)
    assert checker.is_correct("  norm_num", target)
    assert not checker.is_correct("  sorry", target)
