"""The sandboxed CodeContests verifier, on problems written in the CodeContests schema.

Every hostile program really runs in bubblewrap as an unprivileged uid.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.store.verdicts import VerdictFile
from lm_eval_monkeys.verifiers import Checker, get_checker
from lm_eval_monkeys.verifiers.code.codecontests import TEST_FIELDS, CodeChecker, extract_program

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
        "OLE",
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
    # Its parent is the sandbox's pid 1, which the kernel shields from it: no output.
    "kills its parent": (py("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), "WA"),
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
    uids = ",".join(map(str, checker.sandbox.uids))  # this sandbox's block, not others'
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
    first = get_checker("code", "monkeys_codecontests")
    scored = score_completions(first, ADD, completions, cache.table)
    assert scored.correct == [True, True, True, False, False]
    assert scored.summary.class_sizes == (3, 1) and scored.summary.n_invalid == 1
    assert [v.status for v in scored.verdicts if v] == ["AC", "AC", "AC", "WA"]
    # A new checker (a rescore) answers from the cache, without any sandbox.
    second = get_checker("code", "monkeys_codecontests")
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
            for i, c in enumerate([GOOD_PY, py("print(1)"), "nothing", py("while True: pass")])
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
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["correct"] for r in records] == [True, False, False, False]
    assert [r["status"] for r in records] == ["AC", "WA", "no_answer", "TLE"]
    # Why a program failed reaches the output: the failing test and the limit it hit.
    assert records[1]["details"]["detail"] == "test 0: wrong answer"
    assert records[3]["details"]["detail"] == "test 0: wall-clock limit 2 s"
    assert [t["verdict"] for t in records[0]["details"]["tests"]] == ["AC"] * 4


def test_codecontests_prompts_build_from_local_statements(
    caplog: pytest.LogCaptureFixture,
) -> None:
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
    assert "no program can be verified" in caplog.text  # said plainly, at load


def test_missing_sandbox_tool_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval_monkeys.errors import MonkeysError
    from lm_eval_monkeys.verifiers.code.sandbox import UNSANDBOXED_ENV, Sandbox

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(UNSANDBOXED_ENV, raising=False)
    with pytest.raises(MonkeysError, match=r"apt-get install -y bubblewrap.*MONKEYS_UNSANDBOXED"):
        Sandbox()


def test_time_slack_is_configurable() -> None:
    from lm_eval_monkeys.verifiers import get_checker

    checker = get_checker("code:2.5")
    key = checker.target(ADD)
    assert checker._problems[key]["limits"].time_s == 3.5


@pytest.mark.parametrize(
    ("got", "want", "same"),
    [
        ("YES 0.333333\n2", "yes 0.3333333 2", True),
        ("4000000001", "4000000000", False),  # a relative 1e-5 would accept this
        ("1000000006", "1000000007", False),
        ("-0", "0", True),
        ("007", "7", True),
        ("3.0", "3", True),  # not two integers: numbers within 1e-5
        ("0.500009", "0.5", True),
        ("0.500011", "0.5", False),
        ("100000.00001", "100000", True),
        ("100000.0001", "100000", False),  # absolute, however large the answer
        ("nan", "0.5", False),
        ("inf", "1e308", False),
        ("NaN", "nan", True),  # the same word
        ("1_000", "1000", False),  # not a number token
        ("1" * 5000, "1" * 5000, True),
        ("1" * 5000 + "2", "1" * 5000 + "3", False),
        ("1 2", "1 2 3", False),
        ("", "", True),
    ],
)
def test_comparison_rule(got: str, want: str, same: bool) -> None:
    from lm_eval_monkeys.verifiers.code.output_match import same_output

    assert same_output(got.encode(), want) is same


NO_TESTS = {field: {"input": [], "output": []} for field in TEST_FIELDS}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_limit": "abc"}, "time_limit"),
        ({"time_limit": {"seconds": "2"}}, "time_limit"),
        ({"time_limit": 1e308}, "time_limit"),
        ({"time_limit": float("nan")}, "time_limit"),
        ({"time_limit": -1}, "time_limit"),
        ({"memory_limit_bytes": "lots"}, "memory_limit_bytes"),
        ({"memory_limit_bytes": 1.5}, "memory_limit_bytes"),
        ({"memory_limit_bytes": 1 << 50}, "memory_limit_bytes"),
        ({"public_tests": 5}, "public_tests"),
        ({"public_tests": {"input": [1], "output": ["1"]}}, "public_tests test 0"),
        ({"private_tests": {"input": ["1"], "output": []}}, "private_tests"),
        ({"generated_tests": {"input": "1", "output": "1"}}, "generated_tests"),
        ({**NO_TESTS, "name": "empty"}, "'empty' has no tests"),
    ],
)
def test_a_bad_problem_record_is_refused_naming_the_field(change: dict, field: str) -> None:
    from lm_eval_monkeys.errors import MonkeysError

    checker = CodeChecker(sandbox="unused")  # type: ignore[arg-type]  (nothing may run)
    with pytest.raises(MonkeysError, match=re.escape(field)) as refused:
        checker.target({**ADD, **change})
    assert "\n" not in str(refused.value)


def test_a_problem_without_tests_names_the_fix() -> None:
    from lm_eval_monkeys.errors import MonkeysError

    checker = CodeChecker(sandbox="unused")  # type: ignore[arg-type]
    with pytest.raises(MonkeysError, match=r"deepmind/code_contests.*codecontests/test.jsonl"):
        checker.target({**ADD, **NO_TESTS})


def test_a_program_that_closes_stdout_is_judged_on_what_it_wrote(checker: CodeChecker) -> None:
    program = extract_program(
        py(
            "import os, sys, time\na, b = map(int, input().split())\nprint(a + b)\n"
            "sys.stdout.flush()\nos.close(1)\ntime.sleep(0.2)"
        )
    )
    assert details_of(checker, [program], checker.target(ADD))[program]["verdict"] == "AC"


def test_untagged_python_mentioning_include_stays_python(checker: CodeChecker) -> None:
    program = extract_program(
        "```\n# in C++ this would need #include <iostream>\n"
        "a, b = map(int, input().split())\nprint(a + b)\n```"
    )
    assert program is not None and program.startswith("python\n")
    assert details_of(checker, [program], checker.target(ADD))[program]["verdict"] == "AC"


def test_failures_name_the_limit_they_hit(checker: CodeChecker) -> None:
    cases = {
        "while True:\n    pass": ("TLE", "limit 2 s"),
        "x = bytearray(8 << 30)": ("MLE", "memory limit 256 MiB"),
        "import sys\nsys.stdout.write('x' * (100 << 20))": ("OLE", "output limit 64 MiB"),
    }
    programs = {extract_program(py(body)): want for body, want in cases.items()}
    details = details_of(checker, list(programs), checker.target(ADD))
    for program, (verdict, limit) in programs.items():
        assert details[program]["verdict"] == verdict
        assert details[program]["tests"][0]["verdict"] == verdict
        assert limit in details[program]["detail"]


def test_target_key_changes_with_tests_and_limits() -> None:
    checker = CodeChecker(sandbox="unused")  # type: ignore[arg-type]
    keys = {
        checker.target(ADD),
        checker.target({**ADD, "memory_limit_bytes": 512 << 20}),
        checker.target({**ADD, "generated_tests": {"input": ["1 1\n"], "output": ["2\n"]}}),
        CodeChecker(sandbox="unused", slack_s=2.0).target(ADD),  # type: ignore[arg-type]
    }
    assert len(keys) == 4


def test_unsandboxed_mode_judges_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval_monkeys.verifiers.code.sandbox import UNSANDBOXED_ENV

    monkeypatch.setenv(UNSANDBOXED_ENV, "1")
    checker = CodeChecker()
    programs = [extract_program(GOOD_PY), extract_program(py("print(0)"))]
    details = details_of(checker, programs, checker.target(ADD))
    assert [details[p]["verdict"] for p in programs] == ["AC", "WA"]


def test_a_local_codecontests_file_with_tests_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval.tasks import TaskManager

    from lm_eval_monkeys.task_configs import TASK_DIR

    (tmp_path / "codecontests").mkdir()
    records = [{**ADD, "name": f"add{i}"} for i in range(3)]
    (tmp_path / "codecontests" / "test.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in records)
    )
    monkeypatch.setenv("MONKEYS_DATA_DIR", str(tmp_path))
    manager = TaskManager(
        include_path=str(TASK_DIR), include_defaults=False, metadata={"repeats": 2}
    )
    task = manager.load("monkeys_codecontests")["tasks"]["monkeys_codecontests"]
    docs = list(task.test_docs())
    assert [doc["name"] for doc in docs] == ["add0", "add1", "add2"]
    checker = task.checker
    program = extract_program(GOOD_PY)
    assert details_of(checker, [program], checker.target(docs[0]))[program]["verdict"] == "AC"


def test_a_run_over_problems_without_tests_stops_before_the_model_loads(tmp_path: Path) -> None:
    result = run_cli(
        "--tasks", "monkeys_codecontests", "--limit", "1", "--output_path", str(tmp_path)
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "no program can be verified" in result.stderr
    assert "test.jsonl" in result.stderr and "--predict_only" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing written


def test_predict_only_still_generates_from_statements(tmp_path: Path) -> None:
    result = run_cli(
        "--model", "monkeys-synthetic", "--tasks", "monkeys_codecontests", "--limit", "1",
        "--repeats", "2", "--predict_only", "--log_samples", "--confirm_run_unsafe_code",
        "--output_path", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.rglob("samples_monkeys_codecontests*.jsonl"))
