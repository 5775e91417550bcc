"""SWE-bench: the completion's patch, graded by the instance's tests.

The answer key of a completion is its patch (from ``<patch>`` tags, a fenced diff block or
the first ``diff --git``), normalised so identical patches are graded once per instance.
Before an instance's first patch,
its gold patch is run ``gold_runs`` times: an instance whose gold patch does not pass
every time is flaky, and is reported as such (the paper found 34 of 300 Lite instances
flaky) rather than silently counted.

Backends: ``swebench:docker`` runs swebench's official harness (a Docker daemon must be
reachable); ``swebench:local`` runs ``LocalRunner`` (git worktrees + the bubblewrap
sandbox); plain ``swebench`` takes Docker when a daemon answers, else the local runner.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import Checker, Verdict, judge_in_parallel

logger = logging.getLogger(__name__)

GOLD_RUNS = 2
_PATCH_TAG = re.compile(r"<patch>\s*\n?(.*?)(?:</patch>|\Z)", re.S)
_DIFF_FENCE = re.compile(r"```(?:diff|patch)?[^\n]*\n(.*?)(?:```|\Z)", re.S)
_DIFF_START = re.compile(r"^(?:diff --git |--- (?:a/|/dev/null))", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)


class Runner(Protocol):
    def evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        """``{"resolved": bool, "status": str, ...}`` for one patch of one instance."""


def extract_patch(completion: str) -> str | None:
    """The unified diff in a completion, or None when there is no diff with a hunk."""
    for pattern in (_PATCH_TAG, _DIFF_FENCE):
        for match in pattern.finditer(completion):
            patch = _from_diff_start(match.group(1))
            if patch:
                return patch
    return _from_diff_start(completion)


def _from_diff_start(text: str) -> str | None:
    start = _DIFF_START.search(text)
    if start is None or not _HUNK.search(text, start.start()):
        return None
    lines = text[start.start() :].replace("\r\n", "\n").split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith(("</patch>", "```"))), None)
    lines = lines[:end]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"


class SWEbenchChecker(Checker):
    """Grades patches of SWE-bench instances with a runner (Docker harness or local)."""

    def __init__(
        self, runner: Runner | None = None, backend: str = "", gold_runs: int = GOLD_RUNS
    ) -> None:
        self._runner, self.backend, self.gold_runs = runner, backend, gold_runs
        self._runner_lock = threading.Lock()
        self._instances: dict[str, dict[str, Any]] = {}
        self._gold: dict[str, dict[str, int]] = {}  # target -> resolved of runs
        self.flaky: dict[str, str] = {}  # instance_id -> "resolved r of n gold runs"

    @property
    def runner(self) -> Runner:
        with self._runner_lock:  # one runner for every grading thread
            if self._runner is None:  # built on first use: extracting patches needs neither
                self._runner = make_runner(self.backend)
            return self._runner

    def extract(self, completion: str) -> str | None:
        return extract_patch(completion)

    def target(self, doc: dict[str, Any]) -> str:
        fields = ("instance_id", "base_commit", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")
        payload = json.dumps([doc[f] for f in fields]).encode()
        key = f"{doc['instance_id']}:{hashlib.sha256(payload).hexdigest()[:12]}"
        self._instances.setdefault(key, doc)
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        """Verdicts of distinct patches of one instance, graded in parallel."""
        instance = self._instances[target]
        self._check_gold(target, instance)
        flaky = self.flaky.get(instance["instance_id"])

        def grade(patch: str) -> Verdict:
            result = self.runner.evaluate(instance, patch)
            resolved = bool(result.pop("resolved"))
            status = str(result.pop("status", "resolved" if resolved else "unresolved"))
            return Verdict(resolved, status, {**result, "flaky": flaky} if flaky else result)

        return judge_in_parallel(answers, grade)

    def _check_gold(self, target: str, instance: dict[str, Any]) -> None:
        """Run the gold patch ``gold_runs`` times (once per instance, cached)."""
        if self.gold_runs <= 0 or not instance.get("patch"):
            return
        gold = self._gold.get(target)
        if gold is None:
            runs = [
                self.runner.evaluate(instance, instance["patch"]) for _ in range(self.gold_runs)
            ]
            gold = self._gold[target] = {
                "resolved": sum(bool(r["resolved"]) for r in runs),
                "runs": len(runs),
            }
        if gold["resolved"] < gold["runs"]:
            note = f"gold patch resolved {gold['resolved']} of {gold['runs']} runs"
            if instance["instance_id"] not in self.flaky:
                logger.warning("SWE-bench instance %s is flaky: %s", instance["instance_id"], note)
            self.flaky[instance["instance_id"]] = note


def make_runner(backend: str) -> Runner:
    """``docker``, ``local``, or "" for Docker when a daemon answers and local otherwise."""
    if backend == "docker" or (backend == "" and docker_available()):
        return DockerRunner()
    from lm_eval_monkeys.verifiers.swebench_local import LocalRunner

    return LocalRunner()


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception:  # no client library, no socket, daemon down: all mean "not here"
        return False
    return True


class DockerRunner:
    """swebench's official harness, one run id per patch so that patches of one instance
    never overwrite each other's logs and reports."""

    def __init__(self, dataset: str = "SWE-bench/SWE-bench_Lite", timeout_s: int = 1800) -> None:
        if not docker_available():
            raise MonkeysError(
                "swebench:docker needs a reachable Docker daemon (DOCKER_HOST or "
                "/var/run/docker.sock); start one, or use swebench:local with "
                "MONKEYS_SWEBENCH_REPOS"
            )
        self.dataset, self.timeout_s = dataset, timeout_s

    def evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        from swebench.harness.run_evaluation import main as run_evaluation

        run_id = (
            f"monkeys-{hashlib.sha256((instance['instance_id'] + patch).encode()).hexdigest()[:16]}"
        )
        model = "lm-eval-monkeys"
        with tempfile.TemporaryDirectory(prefix="monkeys-swebench-") as scratch:
            predictions = Path(scratch, "predictions.jsonl")
            record = {
                "instance_id": instance["instance_id"],
                "model_name_or_path": model,
                "model_patch": patch,
            }
            predictions.write_text(json.dumps(record) + "\n")
            run_evaluation(
                dataset_name=self.dataset,
                split="test",
                instance_ids=[instance["instance_id"]],
                predictions_path=str(predictions),
                max_workers=1,
                open_file_limit=4096,
                run_id=run_id,
                timeout=self.timeout_s,
                rewrite_reports=False,
                modal=False,
                report_dir=scratch,
            )
        from swebench.harness.constants import LOG_REPORT, RUN_EVALUATION_LOG_DIR

        report = RUN_EVALUATION_LOG_DIR / run_id / model / instance["instance_id"] / LOG_REPORT
        if not report.is_file():  # the harness logs why (e.g. the patch did not apply)
            return {"resolved": False, "status": "no_report", "detail": str(report)}
        result = json.loads(report.read_text())[instance["instance_id"]]
        return {"resolved": bool(result.get("resolved")), "status": "docker", "report": result}


def swebench(mode: str) -> SWEbenchChecker:
    """``swebench`` (Docker if reachable, else local), ``swebench:docker``, ``swebench:local``."""
    if mode not in ("", "docker", "local"):
        raise MonkeysError(f"swebench:{mode}: choose swebench, swebench:docker or swebench:local")
    return SWEbenchChecker(backend=mode)
