"""The sandboxed CodeContests verifier, on problems written in the CodeContests schema.

Every hostile program really runs in bubblewrap as an unprivileged uid.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.store.verdicts import VerdictFile
from lm_eval_monkeys.verification import score_completions
from lm_eval_monkeys.verifiers import Checker, get_verifier
from lm_eval_monkeys.verifiers.code import CodeChecker, extract_program

ADD = {
    "name": "add",
    "description": "Print the sum of two integers.",
    "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
    "private_tests": {"input": ["5 7\n", "100 -1\n"], "output": ["12\n", "99\n"]},
    "generated_tests": {"input": ["0 0\n"], "output": ["0\n"]},
    "time_limit": {"seconds": 1, "nanos": 0},
    "memory_limit_bytes": 256 << 20,
}
SECRET = "monkeys-secret-7f3a"


def py(body: str) -> str:
    return f"Here is my solution.\n```python\n{body}\n```\nDone."


GOOD_PY = py("a, b = map(int, input().split())\nprint(a + b)")
GOOD_CPP = (
    "```cpp\n#include <bits/stdc++.h>\nint main(){long long a,b;std::cin>>a>>b;"
    'std::cout<<a+b<<"\\n";}\n```'
)
HOSTILE = {
    "wrong answer": (py("print(42)"), "WA"),
    "infinite loop": (py("while True:\n    pass"), "TLE"),
    "sleeps": (py("import time\ntime.sleep(60)"), "TLE"),
    "allocates 8 GB": (py("x = bytearray(8 << 30)\nprint(len(x))"), "MLE"),
    "allocates 8 GB in C++": (
        "```cpp\n#include <vector>\n#include <cstdio>\nint main(){std::vector<char>"
        ' v(8ULL<<30,1);printf("%d",v[7]);}\n```',
        "MLE",
    ),
    "prints 300 MB": (
        py("import sys\nfor _ in range(300):\n    sys.stdout.write('x' * (1 << 20))"),
        "WA",
    ),
    "fork bomb": (
        py(
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        ),
        "TLE",
    ),
    "uses the network": (
        py(
            "import socket\nsocket.create_connection(('1.1.1.1', 80), 2)\n"
            "a, b = map(int, input().split())\nprint(a + b)"
        ),
        "RE",
    ),
    "writes outside scratch": (
        py(
            "open('/etc/monkeys-escape', 'w').write('x')\n"
            "a, b = map(int, input().split())\nprint(a + b)"
        ),
        "RE",
    ),
    "reads the environment": (
        py("import os\nprint(os.environ.get('MONKEYS_SECRET', 'none'))"),
        "WA",
    ),
    "kills its parent": (py("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), "RE"),
    "does not compile": ("```cpp\nint main( { return 0 }\n```", "CE"),
    "python syntax error": (py("def f(:\n    pass"), "CE"),
}


def details_of(checker: Checker, answers: list[str], target: str) -> dict[str, dict]:
    """Each program's status (as ``verdict``) and details."""
    verdicts = checker.judge_many(answers, target)
    return {a: {"verdict": v.status, **v.details} for a, v in zip(answers, verdicts, strict=True)}


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> CodeChecker:
    return CodeChecker()


def test_correct_python_and_cpp_pass_every_test(checker: CodeChecker) -> None:
    target = checker.target(ADD)
    good = [extract_program(GOOD_PY), extract_program(GOOD_CPP)]
    details = details_of(checker, good, target)
    for program in good:
        assert details[program]["verdict"] == "AC"
        assert len(details[program]["tests"]) == 4


def test_hostile_programs_get_the_right_verdict_and_nothing_escapes(
    checker: CodeChecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONKEYS_SECRET", SECRET)
    target = checker.target(ADD)
    programs = {name: extract_program(text) for name, (text, _) in HOSTILE.items()}
    details = details_of(checker, [*programs.values(), extract_program(GOOD_PY)], target)
    got = {name: details[program]["verdict"] for name, program in programs.items()}
    assert got == {name: verdict for name, (_, verdict) in HOSTILE.items()}
    # The well-behaved program checked in the same batch is unaffected.
    assert details[extract_program(GOOD_PY)]["verdict"] == "AC"
    assert not Path("/etc/monkeys-escape").exists()
    # Everything was SIGKILLed; give the kernel a moment to finish tearing namespaces down.
    uids = ",".join(str(61000 + i) for i in range(64))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = subprocess.run(
            ["pgrep", "-r", "R,S,D,T", "-u", uids], capture_output=True, text=True
        )
        if not left.stdout.strip():
            break
        time.sleep(0.2)
    assert left.stdout.strip() == "", "no sandboxed process outlives its check"


def test_failing_stops_at_the_first_failing_test(checker: CodeChecker) -> None:
    program = extract_program(py("a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)"))
    result = details_of(checker, [program], checker.target(ADD))[program]
    assert result["verdict"] == "WA"
    assert [t["verdict"] for t in result["tests"]] == ["AC", "WA"]


def test_output_comparison_is_tokenwise_case_insensitive_with_float_tolerance(
    checker: CodeChecker,
) -> None:
    doc = {
        **ADD,
        "public_tests": {"input": [""], "output": ["YES 0.333333\n 2"]},
        "private_tests": {"input": [], "output": []},
        "generated_tests": {"input": [], "output": []},
    }
    target = checker.target(doc)
    ok = extract_program(py("print('yes', 1/3)\nprint(2)"))
    bad = extract_program(py("print('yes', 0.3334, 2)"))
    details = details_of(checker, [ok, bad], target)
    assert (details[ok]["verdict"], details[bad]["verdict"]) == ("AC", "WA")


def test_distinct_programs_run_once_and_verdicts_are_cached_on_disk(tmp_path: Path) -> None:
    completions = [
        GOOD_PY,
        GOOD_PY + "\n\n",
        GOOD_PY.replace("print(a + b)", "print(a + b)   "),
        py("print(0)"),
        "no code here",
    ]
    cache = VerdictFile(tmp_path / "verdicts.sqlite")
    first = get_verifier("code", "monkeys_codecontests")
    scored = score_completions(first, ADD, completions, cache.table)
    assert scored.correct == [True, True, True, False, False]
    assert scored.summary.class_sizes == (3, 1) and scored.summary.n_invalid == 1
    assert [v.status for v in scored.verdicts if v] == ["AC", "AC", "AC", "WA"]
    # A new checker (a rescore) answers from the cache, without any sandbox.
    second = get_verifier("code", "monkeys_codecontests")
    second._sandbox = "unused"  # type: ignore[attr-defined]  (any sandbox use would fail)
    again = score_completions(second, ADD, completions, cache.table)
    assert again.correct == scored.correct
    assert again.verdicts == scored.verdicts


def test_extraction() -> None:
    assert extract_program("no code") is None
    assert extract_program("```\n#include <cstdio>\nint main(){}\n```").startswith("cpp\n")
    assert (
        extract_program("```py\nprint(1)\n```\n```cpp\nint main(){}\n```") == "python\nprint(1)\n"
    )


def test_verify_command_on_codecontests_schema(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"doc": ADD, "completion": c, "id": i}) + "\n"
            for i, c in enumerate([GOOD_PY, py("print(1)"), "nothing"])
        )
    )
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "verify",
        "--task",
        "monkeys_codecontests",
        "--input",
        str(source),
        "--output",
        str(out),
        env={"MONKEYS_CACHE_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == [True, False, False]


def test_codecontests_prompts_build_from_local_statements() -> None:
    from lm_eval.tasks import TaskManager

    from lm_eval_monkeys.task_configs import TASK_DIR

    manager = TaskManager(
        include_path=str(TASK_DIR), include_defaults=False, metadata={"repeats": 2}
    )
    task = manager.load("monkeys_codecontests")["tasks"]["monkeys_codecontests"]
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=2, rank=0, world_size=1)
    assert len(task.eval_docs) == 155  # 165 statements minus those that need an image
    assert all("<image>" not in doc["description"] for doc in task.eval_docs)
    context, gen = task.instances[0].args
    assert "```python" in context and context.endswith("\nSolution:")
    assert task.eval_docs[0]["description"][:40] in context
    assert gen["until"] == ["\nProblem:"] and gen["temperature"] == 0.6
    assert task.UNSAFE_CODE


def test_missing_sandbox_tool_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval_monkeys.errors import MonkeysError
    from lm_eval_monkeys.verifiers.sandbox import UNSANDBOXED_ENV, Sandbox

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(UNSANDBOXED_ENV, raising=False)
    with pytest.raises(MonkeysError, match=r"apt-get install -y bubblewrap.*MONKEYS_UNSANDBOXED"):
        Sandbox()


def test_time_slack_is_configurable() -> None:
    from lm_eval_monkeys.verifiers import get_verifier

    checker = get_verifier("code:2.5")
    key = checker.target(ADD)
    assert checker._problems[key]["limits"].time_s == 3.5
