"""SWE-bench: the completion's patch, graded by the instance's tests.

The answer key of a completion is its patch (from ``<patch>`` tags, a fenced diff block or
the first ``diff --git``), normalised so identical patches are graded once per instance.
Every verdict carries a status: ``resolved``, ``patch_failed``, ``tests_failed`` (with the
failing tests), ``env_failed`` (not final), ``timeout`` or ``no_test_results``, with the
reason and the kept test log in its details. Whatever fails for one instance (a spec the
runner cannot build, a missing interpreter or mirror, a failed build) is that instance's
``env_failed`` verdict, with its reason and build log: every other instance is judged.

Backends: ``swebench:docker`` runs swebench's official harness (a Docker daemon must be
reachable); ``swebench:local`` runs ``LocalRunner`` (the harness's steps on local mirrors,
tests in the bubblewrap sandbox); plain ``swebench`` takes Docker when a daemon answers,
else the local runner. ``,gold=N`` sets how often each instance's gold patch runs first
(default 1, 0 to skip): ``swebench:local,gold=3``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import Checker, Verdict, judge_in_parallel
from lm_eval_monkeys.verifiers.swebench.specs import NETWORK_ENV

logger = logging.getLogger(__name__)

GOLD_RUNS = 1
# What fails for one instance without judging its patches: a MonkeysError naming the
# problem (no spec, no interpreter, no mirror, a failed build), or git, pip or the disk
# failing under it. Anything else is a bug, and stops the run with its traceback.
INSTANCE_FAILURES = (MonkeysError, OSError, subprocess.SubprocessError)
# Bumped when the runner's way of judging changes, so cached verdicts are not reused.
RUNNER_VERSION = "local-4"
_PATCH_TAG = re.compile(r"<patch>\s*\n?(.*?)(?:</patch>|\Z)", re.S)
_DIFF_FENCE = re.compile(r"```(?:diff|patch)?[^\n]*\n(.*?)(?:```|\Z)", re.S)
_DIFF_START = re.compile(r"^(?:diff --git |--- (?:a/|/dev/null))", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)


class Runner(Protocol):
    def evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        """``{"resolved": bool, "status": str, ...}`` for one patch of one instance; an
        instance that cannot be set up raises one of ``INSTANCE_FAILURES``."""

    def verdict_key(self, instance: dict[str, Any]) -> str:
        """What, besides the instance, decides its verdicts (spec, interpreter, image)."""


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
    while lines and not lines[-1]:  # " " is a blank context line, part of the last hunk
        lines.pop()
    return "\n".join(lines) + "\n"


class SWEbenchChecker(Checker):
    """Grades patches of SWE-bench instances with a runner (Docker harness or local).

    Before an instance's first patch its gold patch runs ``gold_runs`` times (default
    once; 0 skips it): resolved 0 times means the setup is broken (every verdict of the
    instance is ``env_failed`` and not final, so nothing is cached); resolved some of
    the times means the instance is flaky (noted in each verdict's details).
    """

    def __init__(
        self, runner: Runner | None = None, backend: str = "", gold_runs: int = GOLD_RUNS
    ) -> None:
        self._runner, self.backend, self.gold_runs = runner, backend, gold_runs
        self._runner_lock = threading.Lock()
        self._gold_lock = threading.Lock()
        self._instances: dict[str, dict[str, Any]] = {}
        self._gold: dict[str, Verdict | None] = {}  # target -> env_failed verdict, or None
        self._unjudged: dict[str, Verdict] = {}  # target -> why its instance cannot be judged
        self.flaky: dict[str, str] = {}  # instance_id -> "gold patch resolved r of n runs"

    @property
    def runner(self) -> Runner:
        with self._runner_lock:  # one runner for every grading thread
            if self._runner is None:  # built on first use: extracting patches needs none
                self._runner = make_runner(self.backend)
            return self._runner

    def extract(self, completion: str) -> str | None:
        return extract_patch(completion)

    def target(self, doc: dict[str, Any]) -> str:
        """The instance's key; an instance whose setup cannot even be planned gets a key
        of its own, whose verdicts say why (a runner that cannot start stops the run)."""
        runner = self.runner
        fields = ("instance_id", "base_commit", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")
        unjudged = None
        try:
            verdict_key = runner.verdict_key(doc)
        except INSTANCE_FAILURES as err:
            unjudged = to_verdict(setup_failure(doc, err))
            verdict_key = f"unjudged: {err}"
        decided_by = [[doc[f] for f in fields], verdict_key, RUNNER_VERSION]
        key = f"{doc['instance_id']}:{short_digest(json.dumps(decided_by))}"
        self._instances.setdefault(key, doc)
        if unjudged is not None:
            self._unjudged[key] = unjudged
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        """Verdicts of distinct patches of one instance, graded in parallel."""
        instance = self._instances[target]
        broken = self._unjudged.get(target) or self._check_gold(target, instance)
        if broken is not None:
            return [broken for _ in answers]
        flaky = self.flaky.get(instance["instance_id"])
        return judge_in_parallel(
            answers, lambda patch: to_verdict(self._evaluate(instance, patch), flaky)
        )

    def _evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        """The runner's result, or the instance's setup failure as an ``env_failed`` one."""
        try:
            return self.runner.evaluate(instance, patch)
        except INSTANCE_FAILURES as err:
            return setup_failure(instance, err)

    def _check_gold(self, target: str, instance: dict[str, Any]) -> Verdict | None:
        """Run the gold patch ``gold_runs`` times, once per instance and checker; an
        ``env_failed`` verdict when it never resolves."""
        if self.gold_runs <= 0 or not instance.get("patch"):
            return None
        with self._gold_lock:
            if target not in self._gold:
                self._gold[target] = self._run_gold(instance)
            return self._gold[target]

    def _run_gold(self, instance: dict[str, Any]) -> Verdict | None:
        runs = [self._evaluate(instance, instance["patch"]) for _ in range(self.gold_runs)]
        resolved = sum(bool(r["resolved"]) for r in runs)
        note = f"gold patch resolved {resolved} of {len(runs)} runs"
        if resolved == 0:
            last = runs[-1]
            offline = last.get("needs_network") or {}
            if offline.get("tests"):
                tests = (
                    f"{len(offline['tests'])} of its tests need the network "
                    f"({', '.join(offline['tests'][:3])}; hosts: "
                    f"{', '.join(offline['hosts']) or 'not named'})"
                )
                reason = f"{note}: {tests}, " + (
                    "which this machine cannot reach, though the sandbox allows the network: "
                    "judge where those hosts are reachable, or serve them locally"
                    if offline.get("allowed")
                    else f"which the sandbox denies: allow it with {NETWORK_ENV}={instance['repo']}"
                )
            else:
                why = last.get("reason") or last["status"]
                if last.get("skipped"):
                    why += f"; listed tests were skipped: {'; '.join(last['skipped'][:3])}"
                reason = f"{note}: the setup is broken, not the patch ({why})"
            logger.warning("SWE-bench instance %s: %s", instance["instance_id"], reason)
            details = {"reason": reason, "gold": {k: v for k, v in last.items() if k != "resolved"}}
            return Verdict(False, "env_failed", details, final=False)
        if resolved < len(runs):
            logger.warning("SWE-bench instance %s is flaky: %s", instance["instance_id"], note)
            self.flaky[instance["instance_id"]] = note
        return None


def setup_failure(instance: dict[str, Any], err: Exception) -> dict[str, Any]:
    """A runner's result for an instance that could not be set up: ``env_failed`` with the
    reason and, for a failed build, its log."""
    logger.warning("SWE-bench instance %s not judged: %s", instance.get("instance_id"), err)
    result = {"resolved": False, "status": "env_failed", "reason": str(err)}
    log = getattr(err, "log", None)
    return {**result, "log": str(log)} if log else result


def to_verdict(result: dict[str, Any], flaky: str | None = None) -> Verdict:
    """A runner's result as a verdict; a broken environment is not a judgement of the
    patch (not final: reported, never cached)."""
    details = {k: v for k, v in result.items() if k not in ("resolved", "status")}
    if flaky:
        details["flaky"] = flaky
    status = str(result["status"])
    return Verdict(bool(result["resolved"]), status, details, final=status != "env_failed")


def make_runner(backend: str) -> Runner:
    """``docker``, ``local``, or "" for Docker when a daemon answers and local otherwise."""
    if backend == "docker" or (backend == "" and docker_available()):
        return DockerRunner()
    from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner

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

    def verdict_key(self, instance: dict[str, Any]) -> str:
        from importlib.metadata import version

        return f"docker:{self.dataset}:swebench {version('swebench')}"

    def evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        from swebench.harness.run_evaluation import main as run_evaluation

        run_id = f"monkeys-{short_digest(instance['instance_id'] + patch)}"
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
            return {"resolved": False, "status": "no_test_results", "log": str(report.parent),
                    "reason": "the harness wrote no report"}  # fmt: skip
        result = json.loads(report.read_text())[instance["instance_id"]]
        resolved = bool(result.get("resolved"))
        status = "resolved" if resolved else "tests_failed"
        return {"resolved": resolved, "status": status, "report": result}


def swebench(options: str) -> SWEbenchChecker:
    """``swebench`` (Docker if reachable, else local), ``swebench:docker``,
    ``swebench:local``, each with an optional ``,gold=N`` (gold runs per instance)."""
    backend, *settings = options.split(",")
    gold_runs = GOLD_RUNS
    for setting in settings:
        name, _, value = setting.partition("=")
        if name.strip() != "gold" or not value.strip().isdigit():
            raise MonkeysError(f"swebench:{options}: unknown setting {setting!r}; use gold=N")
        gold_runs = int(value)
    if backend not in ("", "docker", "local"):
        raise MonkeysError(
            f"swebench:{options}: choose swebench, swebench:docker or swebench:local "
            "(optionally with ,gold=N)"
        )
    return SWEbenchChecker(backend=backend, gold_runs=gold_runs)
