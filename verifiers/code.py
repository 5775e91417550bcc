"""CodeContests: the first fenced code block, run against every test in the sandbox.

The answer key of a completion is its language plus normalised source, so identical
programs (up to trailing whitespace and blank lines) are run once per problem. Verdicts
are also kept on disk by (problem, program) hash, so rescoring is instant. Distinct
programs of a problem run in parallel, one sandbox per core.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import Checker, Verdict, judge_in_parallel
from lm_eval_monkeys.verifiers.sandbox import Limits, Sandbox, shared_dir

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


def extract_program(completion: str) -> str | None:
    """``language\\nsource`` of the first fenced block, or None without one."""
    match = _FENCE.search(completion)
    if not match:
        return None
    tag, body = match.group(1).lower(), match.group(2)
    language = _LANGUAGES.get(tag) or ("cpp" if "#include" in body else "python")
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").split("\n")]
    source = "\n".join(line for line in lines if line)
    return f"{language}\n{source}\n" if source else None


def problem_tests(doc: dict[str, Any]) -> list[dict[str, str]]:
    tests = []
    for field in ("public_tests", "private_tests", "generated_tests"):
        block = doc.get(field) or {}
        tests += [
            {"input": i, "output": o}
            for i, o in zip(block.get("input", []), block.get("output", []), strict=False)
        ]
    return tests


def problem_limits(doc: dict[str, Any], slack_s: float = TIME_SLACK_S) -> Limits:
    limit = doc.get("time_limit") or {}
    seconds = (
        limit.get("seconds", 0) + limit.get("nanos", 0) / 1e9
        if isinstance(limit, dict)
        else float(limit or 0)
    ) or 2.0
    memory = int(doc.get("memory_limit_bytes") or 256 << 20)
    return Limits(time_s=seconds + slack_s, memory_bytes=memory)


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
        tests = problem_tests(doc)
        if not tests:  # every program would pass
            raise MonkeysError(
                f"problem {doc.get('name', '?')!r} has no tests, so no program can be judged; "
                "load CodeContests from the hub, or a local file with tests in its schema"
            )
        limits = problem_limits(doc, self.slack_s)
        payload = json.dumps([tests, limits.time_s, limits.memory_bytes])
        key = hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        self._problems.setdefault(key, {"tests": tests, "limits": limits})
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        """Verdicts of distinct programs of one problem, run in parallel."""
        problem = self._problems[target]

        def run(answer: str) -> Verdict:
            language, _, source = answer.partition("\n")
            result = self.sandbox.run(language, source, problem["tests"], problem["limits"])
            status = result.pop("verdict")
            return Verdict(status == "AC", status, result)

        return judge_in_parallel(answers, run)


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
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{os.getpid()}.gch")  # renamed into place when complete
        built = subprocess.run(
            ["g++", "-std=c++17", "-O2", "-pipe", "-x", "c++-header", header, "-o", str(partial)],
            capture_output=True,
        )
        if built.returncode != 0:
            partial.unlink(missing_ok=True)
            return None
        for directory in (target.parent.parent, target.parent):
            directory.chmod(0o755)  # readable by the sandbox's uid
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
