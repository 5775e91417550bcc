"""CodeContests: the first fenced code block, run against every test in the sandbox.

The answer key of a completion is its language plus its source exactly as written in
the fence (the program judged is the program written, byte for byte), so identical
programs are run once per problem. Distinct
programs of a problem run in parallel, one sandbox per core. The judge (limits, the
comparison) runs here, outside the sandbox: the program only ever sees its input.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import Checker, Verdict, judge_in_parallel
from lm_eval_monkeys.verifiers.code.output_match import RULE, same_output
from lm_eval_monkeys.verifiers.code.sandbox import (
    Limits,
    Outcome,
    Program,
    Sandbox,
    SandboxLost,
    shared_dir,
    trusted_dir,
)

JUDGE_VERSION = 3  # bump when anything below changes a verdict (keys the verdict cache)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9+#]*)[^\n]*\n(.*?)```", re.S)
_LANGUAGES = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "cpp": "cpp",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
}
TIME_SLACK_S = 1.0
TEST_FIELDS = ("public_tests", "private_tests", "generated_tests")
_MAX_TIME_S = 3600.0
_MAX_MEMORY = 64 << 30
_MIB = 1 << 20


def extract_program(completion: str) -> str | None:
    """``language\\nsource`` of the first fenced block (its text unchanged), or None
    without one or with only whitespace in it."""
    match = _FENCE.search(completion)
    if not match or not match.group(2).strip():
        return None
    tag, source = match.group(1).lower(), match.group(2)
    language = _LANGUAGES.get(tag) or _untagged_language(source)
    return f"{language}\n{source}"


def _untagged_language(source: str) -> str:
    """C++ only when a line starts with ``#include`` and the block is not Python (to
    Python that line is a comment, so text like it never makes a program C++)."""
    if not re.search(r"^\s*#\s*include\b", source, re.M):
        return "python"
    try:
        compile(source, "untagged", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # deep nesting, say
        return "cpp"
    return "python"


def problem_tests(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Every test of a problem (public, private, generated); each field is checked."""
    tests = []
    for field in TEST_FIELDS:
        block = doc.get(field)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise _bad_field(doc, field, 'must be {"input": [...], "output": [...]}')
        inputs, outputs = block.get("input", []), block.get("output", [])
        if not (isinstance(inputs, list) and isinstance(outputs, list)):
            raise _bad_field(doc, field, "input and output must be lists of strings")
        if len(inputs) != len(outputs):
            raise _bad_field(doc, field, f"has {len(inputs)} inputs but {len(outputs)} outputs")
        for number, (given, wanted) in enumerate(zip(inputs, outputs, strict=True)):
            if not (isinstance(given, str) and isinstance(wanted, str)):
                raise _bad_field(doc, f"{field} test {number}", "input and output must be strings")
            tests.append({"input": given, "output": wanted})
    if not tests:
        raise MonkeysError(
            f"problem {_name(doc)} has no tests, so no program can be judged on it: load "
            "CodeContests from the hub (deepmind/code_contests, without MONKEYS_DATA_DIR) "
            "or put a codecontests/test.jsonl with tests (CodeContests schema) in "
            "MONKEYS_DATA_DIR"
        )
    return tests


def problem_limits(doc: dict[str, Any], slack_s: float = TIME_SLACK_S) -> Limits:
    """The problem's time limit (plus slack) and memory limit, both checked."""
    limit = doc.get("time_limit")
    if limit is None:
        seconds = 2.0
    elif isinstance(limit, dict):
        parts = {key: limit.get(key) or 0 for key in ("seconds", "nanos")}
        if set(limit) - {"seconds", "nanos"} or not all(_is_number(v) for v in parts.values()):
            raise _bad_field(doc, "time_limit", 'must be {"seconds": N, "nanos": N}')
        seconds = parts["seconds"] + parts["nanos"] / 1e9
    elif _is_number(limit):
        seconds = float(limit)
    else:
        raise _bad_field(doc, "time_limit", 'must be seconds or {"seconds", "nanos"}')
    if seconds == 0:
        seconds = 2.0  # CodeContests' records without a limit
    if not 0 < seconds <= _MAX_TIME_S:
        raise _bad_field(doc, "time_limit", f"must be between 0 and {_MAX_TIME_S:.0f} s")
    memory = doc.get("memory_limit_bytes") or 256 * _MIB
    if not (_is_number(memory) and float(memory).is_integer()):
        raise _bad_field(doc, "memory_limit_bytes", "must be a whole number of bytes")
    if not _MIB <= memory <= _MAX_MEMORY:
        raise _bad_field(doc, "memory_limit_bytes", "must be between 1 MiB and 64 GiB")
    return Limits(time_s=seconds + slack_s, memory_bytes=int(memory))


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _name(doc: dict[str, Any]) -> str:
    return repr(doc.get("name") or doc.get("task_id") or "(unnamed)")


def _bad_field(doc: dict[str, Any], field: str, problem: str) -> MonkeysError:
    return MonkeysError(f"problem {_name(doc)}: {field} {problem}")


def judge(sandbox: Sandbox, answer: str, problem: dict[str, Any]) -> Verdict:
    """Verdict of one program over the problem's tests, stopping at the first failure;
    details: ``detail`` (the failing test and the limit hit, or the compiler's message)
    and ``tests`` (``[{"test", "verdict", "detail", "time_s"}]``)."""
    language, _, source = answer.partition("\n")
    limits: Limits = problem["limits"]
    try:
        with sandbox.program(language, source) as program:
            if program.error is not None:
                return Verdict(False, "CE", {"detail": program.error[-2000:], "tests": []})
            results = _run_tests(program, problem["tests"], limits)
    except SandboxLost as lost:  # before any test ran: the runner died compiling
        # About the sandbox, not (surely) the program: reported, never cached.
        return Verdict(False, "RE", {"detail": str(lost), "tests": []}, final=False)
    failed = next((r for r in results if r["verdict"] != "AC"), None)
    if failed is None:
        return Verdict(True, "AC", {"detail": "", "tests": results})
    detail = f"test {failed['test']}: {failed['detail']}"
    sandbox_lost = failed.get("sandbox_lost", False)
    return Verdict(
        False, failed["verdict"], {"detail": detail, "tests": results}, final=not sandbox_lost
    )


def _run_tests(
    program: Program, tests: list[dict[str, str]], limits: Limits
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for number, test in enumerate(tests):
        try:
            outcome = program.run(test["input"], limits)
        except SandboxLost as lost:
            results.append(
                {"test": number, "verdict": "RE", "detail": str(lost), "sandbox_lost": True}
            )
            break
        verdict, detail = classify(outcome, limits)
        if verdict == "OK":
            right = same_output(outcome.stdout, test["output"])
            verdict, detail = ("AC", "") if right else ("WA", "wrong answer")
        result = {"verdict": verdict, "detail": detail, "time_s": round(outcome.time_s, 4)}
        results.append({"test": number, **result})
        if verdict != "AC":
            break
    return results


def classify(outcome: Outcome, limits: Limits) -> tuple[str, str]:
    """How a run ended: ``OK`` (exited 0, output to compare) or a failure verdict with the
    limit that was hit."""
    if outcome.output_exceeded:
        return "OLE", f"output limit {limits.output_bytes // _MIB} MiB"
    memory = f"memory limit {limits.memory_bytes // _MIB} MiB"
    if outcome.oom_killed:
        return "MLE", f"{memory} (the program and its files in /tmp and /dev/shm)"
    if outcome.timed_out:
        return "TLE", f"wall-clock limit {limits.time_s:g} s"
    if os.WIFEXITED(outcome.status):
        code = os.WEXITSTATUS(outcome.status)
        if code == 0:
            return "OK", ""
        if b"MemoryError" in outcome.stderr:
            return "MLE", memory
        return "RE", f"exit status {code}"
    sig = os.WTERMSIG(outcome.status)
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and outcome.cpu_s >= limits.time_s):
        return "TLE", f"CPU-time limit {int(limits.time_s) + 1} s"
    if sig == signal.SIGXFSZ:
        return "OLE", f"file size limit {limits.output_bytes // _MIB} MiB"
    if b"bad_alloc" in outcome.stderr or outcome.maxrss_bytes >= 0.9 * limits.memory_bytes:
        return "MLE", memory
    return "RE", f"signal {sig} ({signal.Signals(sig).name})"


class CodeChecker(Checker):
    """Sandboxed unit-test checker for CodeContests-schema problems."""

    def __init__(self, sandbox: Sandbox | None = None, slack_s: float = TIME_SLACK_S) -> None:
        self._sandbox = sandbox
        self._sandbox_lock = threading.Lock()
        self.slack_s = slack_s
        self._problems: dict[str, dict[str, Any]] = {}

    @property
    def sandbox(self) -> Sandbox:
        with self._sandbox_lock:  # one sandbox (one set of uid slots) for every thread
            if self._sandbox is None:  # started on first use: `verify` of no code needs no bwrap
                self._sandbox = Sandbox(pch=lambda: precompiled_header_dir(shared_dir("pch")))
            return self._sandbox

    def extract(self, completion: str) -> str | None:
        return extract_program(completion)

    def target(self, doc: dict[str, Any]) -> str:
        """Digests everything that decides a verdict: tests, limits, rule, judge version."""
        tests = problem_tests(doc)  # refuses a problem without tests: every program would pass
        limits = problem_limits(doc, self.slack_s)
        payload = json.dumps([tests, sorted(vars(limits).items()), RULE, JUDGE_VERSION])
        key = short_digest(payload)
        self._problems.setdefault(key, {"tests": tests, "limits": limits})
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        """Verdicts of distinct programs of one problem, run in parallel."""
        problem = self._problems[target]
        return judge_in_parallel(answers, lambda answer: judge(self.sandbox, answer, problem))


def precompiled_header_dir(root: Path) -> Path | None:
    """``root``, holding a precompiled ``bits/stdc++.h`` (built once; ~1.3 s -> 0.3 s)."""
    target = root / "bits" / "stdc++.h.gch"
    if not target.exists():
        found = subprocess.run(
            ["g++", "-std=c++17", "-O2", "-H", "-fsyntax-only", "-x", "c++", "-"],
            input="#include <bits/stdc++.h>\n",
            capture_output=True,
            text=True,
        )
        header = next(
            (
                line.split()[-1]
                for line in found.stderr.splitlines()
                if line.endswith("bits/stdc++.h")
            ),
            None,
        )
        if header is None:
            return None
        trusted_dir(target.parent)
        partial = target.with_name(f".{os.getpid()}.gch")  # renamed into place when complete
        built = subprocess.run(
            ["g++", "-std=c++17", "-O2", "-pipe", "-x", "c++-header", header, "-o", str(partial)],
            capture_output=True,
        )
        if built.returncode != 0:
            partial.unlink(missing_ok=True)
            return None
        partial.chmod(0o644)
        os.replace(partial, target)
    return target.parent.parent


def code(mode: str) -> CodeChecker:
    """``code`` or ``code:SLACK``: SLACK seconds added to each problem's time limit."""
    try:
        slack = float(mode) if mode else TIME_SLACK_S
    except ValueError:
        raise MonkeysError(f"code:{mode}: the slack must be seconds, e.g. code:2.5") from None
    return CodeChecker(slack_s=slack)
