"""SWE-bench without Docker: the harness's steps on a local mirror, tests in the sandbox.

For one instance and one candidate patch, as the harness's eval script does it: a clone
of the mirror at ``base_commit`` (``git clone --shared``: nothing is registered in the
mirror, a killed run leaves only a directory that the next run removes), ``pre_install``,
the patch with the harness's fallbacks, the test files reset and the test patch applied;
then in the bubblewrap sandbox (no network unless the repo is opted in, host read-only,
an unprivileged uid) the project's ``install`` again into a private copy of the
instance's environment (see ``environments``) and the test command with the harness's
directives. The log is graded by swebench's own parser and ``grading`` functions and
kept per distinct patch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.code.sandbox import Sandbox, shared_dir
from lm_eval_monkeys.verifiers.swebench.environments import (
    BUILD_BACKEND,
    OFFLINE_PIP,
    Environments,
    Plan,
    copy_env,
    pip_settings,
    plan_for,
)
from lm_eval_monkeys.verifiers.swebench.interpreters import find_python
from lm_eval_monkeys.verifiers.swebench.network import network_failures
from lm_eval_monkeys.verifiers.swebench.specs import (
    RepoSpec,
    patched_files,
    spec_for,
    test_directives,
)

logger = logging.getLogger(__name__)

REPOS_ENV = "MONKEYS_SWEBENCH_REPOS"  # directory of mirrors named owner__repo

# The harness's own order: plain, three-way merge, partial with rejects, then GNU patch.
APPLY_COMMANDS = (
    ["git", "apply", "--verbose"],
    ["git", "apply", "--verbose", "--3way"],
    ["git", "apply", "--verbose", "--reject"],
    ["patch", "--batch", "--forward", "--fuzz=5", "-p1", "-i"],
)
_INSTALL_EXIT = ">>>>> Install Exit Code"
_TOX_CURRENT_ENV = re.compile(r"\btox\b.*--current-env.*?\s-e\s*([\w.-]+)")


class LocalRunner:
    """Evaluates candidate patches of SWE-bench instances against local repository mirrors."""

    def __init__(
        self,
        mirrors: Path | None = None,
        sandbox: Sandbox | None = None,
        workdir: Path | None = None,
    ) -> None:
        try:
            import swebench.harness.grading  # noqa: F401  (grades every log)
        except ImportError:
            raise MonkeysError(
                "the SWE-bench runner grades with the swebench package: "
                'pip install -e ".[swebench]"'
            ) from None
        root = mirrors or os.environ.get(REPOS_ENV)
        if not root or not Path(root).is_dir():
            raise MonkeysError(
                f"the local SWE-bench runner needs repository mirrors: set {REPOS_ENV} to a "
                "directory of clones named owner__repo (git clone https://github.com/"
                "django/django $DIR/django__django), or use swebench:docker with a Docker daemon"
            )
        self.mirrors = Path(root)
        self.workdir = workdir or shared_dir("swebench")
        _refuse_tmp(self.workdir)
        pip_settings()  # a bad MONKEYS_SWEBENCH_PIP_CONFIG stops the run before any work
        self.environments = Environments(self.workdir)
        self._sandbox = sandbox
        self._plans: dict[tuple[str, str, str, str], Plan] = {}
        self._plans_lock = threading.Lock()
        _remove_dead_runs(self.workdir / "runs")

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:  # built on first use: planning needs none
            self._sandbox = Sandbox()
        return self._sandbox

    def plan(self, instance: dict[str, Any]) -> Plan:
        """What the instance's environment is built from (worked out once per setup)."""
        setup = instance.get("environment_setup_commit") or instance["base_commit"]
        key = (instance["repo"], str(instance["version"]), setup, instance["base_commit"])
        with self._plans_lock:
            if key not in self._plans:
                spec = spec_for(instance["repo"], str(instance["version"]))
                interpreter = find_python(spec.python, self.workdir)
                mirror = self.mirror(instance["repo"])
                self._plans[key] = plan_for(instance, spec, interpreter, mirror)
            return self._plans[key]

    def verdict_key(self, instance: dict[str, Any]) -> str:
        """The environment's name: a digest of the spec, interpreter, setup commit,
        requirements and base commit, everything besides the instance's tests that decides
        its verdicts."""
        return self.plan(instance).name

    def mirror(self, repo: str) -> Path:
        mirror = self.mirrors / repo.replace("/", "__")
        if not (mirror / ".git").exists() and not (mirror / "HEAD").is_file():
            raise MonkeysError(
                f"no local mirror of {repo}: expected a git clone at {mirror} "
                f"(git clone https://github.com/{repo} {mirror})"
            )
        return mirror

    def evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        """Grade one patch: ``{"resolved": bool, "status": ..., "log": path, ...}``.
        Never raises for a bad patch; a setup that cannot be built raises (a
        ``MonkeysError``, ``EnvironmentBuildError`` with its log), which the checker
        makes the instance's ``env_failed`` verdict."""
        plan = self.plan(instance)
        image = self.environments.get(plan, self.mirror(instance["repo"]))
        log = self.log_path(instance, patch)
        with self._run_dir() as run:
            tree = run / "tree"
            clone(self.mirror(instance["repo"]), instance["base_commit"], tree)
            if plan.spec.pre_install:
                self._sandboxed(plan, run, " && ".join(plan.spec.pre_install), timeout_s=600)
            applied, how = apply_patch(tree, patch)
            if not applied:
                log.write_text(how)
                return {"resolved": False, "status": "patch_failed",
                        "reason": "no fallback applies the patch", "log": str(log)}  # fmt: skip
            reset_files(tree, instance["base_commit"], patched_files(instance["test_patch"]))
            test_ok, test_how = apply_patch(tree, instance["test_patch"])
            if not test_ok:
                log.write_text(test_how)
                return {"resolved": False, "status": "patch_failed", "log": str(log),
                        "reason": "the test patch does not apply after this patch"}  # fmt: skip
            copy_env(image, run / "venv")
            code, output = self._sandboxed(
                plan, run, eval_script(plan.spec, instance), timeout_s=plan.spec.timeout_s
            )
        log.write_text(output)
        return {**grade(instance, plan.spec, output, code), "log": str(log)}

    def log_path(self, instance: dict[str, Any], patch: str) -> Path:
        digest = hashlib.sha256(patch.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        path = self.workdir / "logs" / instance["instance_id"] / f"{digest}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _sandboxed(
        self, plan: Plan, run: Path, script: str, timeout_s: float
    ) -> tuple[int | None, str]:
        venv = run / "venv"
        env = {
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(venv),
            "LANG": "C.UTF-8",
            # setuptools_scm cannot read the tree's git metadata in the sandbox.
            "SETUPTOOLS_SCM_PRETEND_VERSION": plan.version,
            **OFFLINE_PIP,
            **plan.interpreter.env(),
        }
        return self.sandbox.run_command(
            ["bash", "-c", f"cd tree && {script}"],
            run,
            env=env,
            timeout_s=timeout_s,
            network=plan.spec.network,
        )

    @contextlib.contextmanager
    def _run_dir(self) -> Iterator[Path]:
        runs = self.workdir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        run = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=runs))
        run.chmod(0o755)
        try:
            yield run
        finally:
            shutil.rmtree(run, ignore_errors=True)


def eval_script(spec: RepoSpec, instance: dict[str, Any]) -> str:
    """The harness's eval steps after the patches: ``eval_commands``, ``install`` again
    (its status recorded, not fatal, as in the harness), the tests between markers."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE

    directives = test_directives(instance["repo"], instance["test_patch"])
    tests = " ".join([spec.test_cmd, *map(shlex.quote, directives)])
    lines = sandbox_commands(spec.eval_commands)
    if spec.install:
        lines += [f'export PYTHONPATH="$VIRTUAL_ENV/{BUILD_BACKEND}"', spec.install,
                  f'echo "{_INSTALL_EXIT}: $?"', "unset PYTHONPATH"]  # fmt: skip
    lines += tox_launchers(spec)
    lines += [f"echo '{START_TEST_OUTPUT}'", tests, "code=$?", f"echo '{END_TEST_OUTPUT}'",
              f'echo "{TEST_EXIT_CODE}: $code"']  # fmt: skip
    return "\n".join(lines)


def tox_launchers(spec: RepoSpec) -> list[str]:
    """Commands that make ``tox --current-env -eENV`` (sphinx) run in the environment.
    tox-current-env links ``.tox/ENV/bin/python*`` to the interpreter running tox, the
    environment's ``bin/python``; started through a link from outside the environment,
    Python finds no ``pyvenv.cfg`` beside it and runs without the environment's packages.
    Launchers put there first (tox-current-env keeps files it finds) start the
    environment's python by its own path."""
    match = _TOX_CURRENT_ENV.search(spec.test_cmd)
    if match is None:
        return []
    bin_dir = f".tox/{match.group(1)}/bin"
    launcher = 'printf \'#!/bin/sh\\nexec "%s/bin/python" "$@"\\n\' "$VIRTUAL_ENV"'
    names = ("python", "python3", f"python{spec.python}")
    return [f"mkdir -p {bin_dir}"] + [
        f"{launcher} > {bin_dir}/{name} && chmod +x {bin_dir}/{name}" for name in names
    ]


def sandbox_commands(commands: tuple[str, ...]) -> list[str]:
    """The harness's ``eval_commands`` as the sandbox runs them. Django's generate the
    en_US.UTF-8 locale, writing to /etc (read-only here, and shared with the host): the
    locale is only there for UTF-8, so where the host lacks en_US.UTF-8 the commands use
    glibc's built-in C.UTF-8 instead, and locale-gen is not run."""
    kept = [c for c in commands if "locale-gen" not in c]
    return kept if _host_has_en_us() else [c.replace("en_US.UTF-8", "C.UTF-8") for c in kept]


@cache
def _host_has_en_us() -> bool:
    locales = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    return "en_US.utf8" in locales or "en_US.UTF-8" in locales


def clone(mirror: Path, commit: str, tree: Path) -> None:
    """A repository at ``commit`` sharing the mirror's objects (fast, nothing registered)."""
    done = subprocess.run(
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(tree)],
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        done = _git(tree, "checkout", "--quiet", "--detach", commit, check=False)
    if done.returncode != 0:
        raise MonkeysError(
            f"cannot check out {commit} from {mirror}: {done.stderr.strip()}; "
            f"fetch the mirror (git -C {mirror} fetch --all)"
        )


def reset_files(tree: Path, commit: str, files: list[str]) -> None:
    """The test patch's files as at ``commit``: the candidate's edits undone, files it
    created there removed (the test patch creates them itself)."""
    for file in files:
        if _git(tree, "cat-file", "-e", f"{commit}:{file}", check=False).returncode == 0:
            _git(tree, "checkout", commit, "--", file)
        else:
            (tree / file).unlink(missing_ok=True)


def apply_patch(tree: Path, patch: str) -> tuple[bool, str]:
    """Apply ``patch`` in ``tree`` with each of the harness's commands in turn."""
    with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False) as file:
        file.write(patch if patch.endswith("\n") else patch + "\n")
    attempts = []
    try:
        for command in APPLY_COMMANDS:
            done = subprocess.run(
                [*command, file.name], cwd=tree, capture_output=True, text=True, errors="replace"
            )
            attempts.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
            if done.returncode == 0:
                return True, attempts[-1]
            # A failed --reject or patch run leaves partial changes: start clean again.
            _git(tree, "reset", "--hard", "--quiet", check=False)
            _git(tree, "clean", "-fdq", check=False)
    finally:
        os.unlink(file.name)
    return False, "\n".join(attempts)


def grade(instance: dict[str, Any], spec: RepoSpec, output: str, code: int | None) -> dict:
    """Verdict from the test log, by swebench's log parser and grading functions."""
    from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS, ResolvedStatus
    from swebench.harness.grading import (
        get_eval_tests_report,
        get_logs_eval,
        get_resolution_status,
    )
    from swebench.types import TestSpec

    if code is None:
        return {"resolved": False, "status": "timeout",
                "reason": f"the tests ran over {spec.timeout_s:.0f} s"}  # fmt: skip
    f2p, p2p = (_tests(instance[key]) for key in (FAIL_TO_PASS, PASS_TO_PASS))
    test_spec = TestSpec(
        instance_id=instance["instance_id"],
        image="",
        eval_script_list=[],
        repo=instance["repo"],
        version=str(instance["version"]),
        FAIL_TO_PASS=f2p,
        PASS_TO_PASS=p2p,
        log_parser=spec.log_parser,
        eval_type="pass_and_fail",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as file:
        file.write(output)
    try:
        status_map, found = get_logs_eval(test_spec, file.name)
    finally:
        os.unlink(file.name)
    install = _install_exit(output)
    if not found:
        return {"resolved": False, "status": "no_test_results", "install_exit": install,
                "reason": "the log holds no test results"}  # fmt: skip
    report = get_eval_tests_report(status_map, {FAIL_TO_PASS: f2p, PASS_TO_PASS: p2p})
    resolved = get_resolution_status(report) == ResolvedStatus.FULL.value
    failing = report[FAIL_TO_PASS]["failure"] + report[PASS_TO_PASS]["failure"]
    verdict = {
        "resolved": resolved,
        "status": "resolved" if resolved else "tests_failed",
        "failing_tests": failing,
        "fail_to_pass_failed": report[FAIL_TO_PASS]["failure"],
        "pass_to_pass_failed": report[PASS_TO_PASS]["failure"],
        "install_exit": install,
    }
    offline = network_failures(output, failing) if not spec.network else {"tests": []}
    return {**verdict, "needs_network": offline} if offline["tests"] else verdict


def _install_exit(output: str) -> int | None:
    for line in output.splitlines():
        if line.startswith(_INSTALL_EXIT):
            return int(line.rsplit(":", 1)[1])
    return None


def _tests(value: str | list[str]) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise MonkeysError(f"git {' '.join(args[:3])} failed in {cwd}: {done.stderr.strip()}")
    return done


def _refuse_tmp(workdir: Path) -> None:
    """bwrap mounts an empty /tmp: environments under it would vanish in the sandbox and
    the tests would run the host's tools instead."""
    if Path(workdir).resolve().is_relative_to("/tmp"):
        raise MonkeysError(
            f"the SWE-bench work directory {workdir} is under /tmp, which the sandbox "
            "replaces with an empty one; set MONKEYS_SANDBOX_DIR elsewhere (e.g. /var/tmp)"
        )


def _remove_dead_runs(runs: Path) -> None:
    """Run directories of processes that died (killed mid-patch), named ``<pid>-*``."""
    if not runs.is_dir():
        return
    for run in runs.iterdir():
        pid = run.name.split("-", 1)[0]
        if pid.isdigit() and not Path("/proc", pid).exists():
            shutil.rmtree(run, ignore_errors=True)
