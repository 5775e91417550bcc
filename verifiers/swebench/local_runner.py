"""SWE-bench without Docker: the harness's steps on a local mirror, tests in the sandbox.

For one instance and one candidate patch, as the harness's eval script does it: a clone
at ``base_commit`` of a git directory holding that commit alone (``bases/``, fetched
once from the mirror with depth 1: no later commit, so no fix, is reachable from the
tree), ``pre_install``, the patch with the harness's fallbacks, the test files reset
and the test patch applied, then the project's ``install`` again into a private copy of
the instance's environment (see ``environments``) and the test command with the
harness's directives. The log is graded by swebench's own parser and ``grading``
functions and kept per distinct patch.

Nothing the patch wrote is run or followed outside the sandbox (bubblewrap, an
unprivileged uid, no network unless the repo is opted in): a patch naming a ``.git``
path, or over ``MAX_PATCH_BYTES``, is refused before anything runs; the apply fallbacks
(and the harness's clean-up between them) run in the sandbox under a time limit; the
test files and the test-infrastructure files the patch touched are reset from outside
it by ``resets`` (no git on the patched tree, no link followed); the test patch and the
tests run in the sandbox again, which sees the system directories, the run's own
directory, the interpreter and the base commit, and nothing else of the host: not the
dataset, the mirror, other runs, logs or verdicts. See docs/security.md.
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.code.sandbox import UNSANDBOXED_ENV, Mount, Sandbox, shared_dir
from lm_eval_monkeys.verifiers.swebench.build_inputs import (
    BUILD_CONFIGURATION,
    editable,
    reinstall_reason,
)
from lm_eval_monkeys.verifiers.swebench.environments import (
    BUILD_BACKEND,
    OFFLINE_PIP,
    EnvironmentBuildError,
    Environments,
    Plan,
    copy_env,
    file_lock,
    pip_settings,
    plan_for,
    relocate,
)
from lm_eval_monkeys.verifiers.swebench.interpreters import find_python
from lm_eval_monkeys.verifiers.swebench.network import network_failures
from lm_eval_monkeys.verifiers.swebench.resets import base_files, changed_infrastructure, restore
from lm_eval_monkeys.verifiers.swebench.specs import (
    RepoSpec,
    patched_files,
    spec_for,
    test_directives,
)

logger = logging.getLogger(__name__)

REPOS_ENV = "MONKEYS_SWEBENCH_REPOS"  # directory of mirrors named owner__repo
# Where every sandbox shows the tree and the environment: the same paths for the
# installed tree and every patch's copy of it, so the editable install made once points
# at each patch's tree (the harness's images keep the tree at /testbed too).
TESTBED, VENV = Path("/testbed"), Path("/venv")
INSTALLED_RECIPE = 1  # bumped when the installed tree is made another way

# The harness's own order: plain, three-way merge, partial with rejects, then GNU patch.
APPLY_COMMANDS = (
    ["git", "apply", "--verbose"],
    ["git", "apply", "--verbose", "--3way"],
    ["git", "apply", "--verbose", "--reject"],
    ["patch", "--batch", "--forward", "--fuzz=5", "-p1", "-i"],
)
_INSTALL_EXIT = ">>>>> Install Exit Code"
_TOX_CURRENT_ENV = re.compile(r"\btox\b.*--current-env.*?\s-e\s*([\w.-]+)")
MAX_PATCH_BYTES = 1 << 20  # Lite's largest gold patch is 5 KB
_SKIPPED = re.compile(r"^SKIPPED \[\d+\] \S+?:\d+: (.+)$", re.M)
APPLY_TIMEOUT_S = 60.0  # all fallbacks together; a patch applies in well under a second
_TEST_PATCH_FAILED = 86  # the test stage's exit status when the test patch did not apply
# Header lines that name a path, for git apply or GNU patch (any of which it may use).
_PATH_HEADER = re.compile(
    r"^(?:diff --git |--- |\+\+\+ |\*\*\* |Index: |(?:rename|copy) (?:from|to) )(.*)$", re.M
)
_GIT_COMPONENT = re.compile(r"(?:^|/)\.git(?:/|$)", re.I)
_C_ESCAPE = re.compile(r"\\([0-7]{1,3}|.)")
# git with nothing from the host's or the user's configuration.
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            # the pre_install commit: the same tree gives the same commit
            "GIT_AUTHOR_NAME": "SWE-bench", "GIT_AUTHOR_EMAIL": "setup@swebench.config",
            "GIT_COMMITTER_NAME": "SWE-bench", "GIT_COMMITTER_EMAIL": "setup@swebench.config",
            "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}  # fmt: skip


@dataclass(frozen=True)
class Installed:
    """An instance's tree after ``pre_install`` (committed) and ``install`` at TESTBED,
    and the environment it was installed into (for VENV). Made once per instance and
    image; each patch starts from a copy of the tree, its tests see the environment
    read-only, unless the install has to run again."""

    root: Path
    commit: str  # the tree after pre_install
    install_exit: int | None  # None: the spec has no install

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    def configuration(self) -> str:
        """The build configuration's text (the tree no patch has touched)."""
        files = [self.tree / name for name in BUILD_CONFIGURATION]
        return "\n".join(f.read_text(errors="replace") for f in files if f.is_file())


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
        self.apply_timeout_s = APPLY_TIMEOUT_S
        self._plans: dict[tuple[str, str, str, str], Plan] = {}
        self._plans_lock = threading.Lock()
        _remove_dead_runs(self.workdir / "runs")

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:  # built on first use: planning needs none
            self._sandbox = Sandbox()
        if self._sandbox.unsandboxed:
            raise MonkeysError(
                "the local SWE-bench runner shows each tree at /testbed, which needs the "
                f"sandbox: unset {UNSANDBOXED_ENV}, or use swebench:docker"
            )
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
        base = self.base(instance)
        log = self.log_path(instance, patch)
        refused = refusal(patch)
        if refused:
            log.write_text(refused)
            return {"resolved": False, "status": "patch_failed", "reason": refused,
                    "log": str(log)}  # fmt: skip
        installed = self.installed(instance, plan, image, base)
        with self._run_dir() as run:
            tree = run / "tree"
            copy_tree(installed.tree, tree)
            (run / "candidate.diff").write_text(_ending_in_newline(patch))
            code, how = self._sandboxed(
                plan, run, apply_script(run / "candidate.diff"), self.apply_timeout_s, [base],
                memory_bytes=4 << 30,
            )  # fmt: skip
            (run / "candidate.diff").unlink()
            if code != 0:
                log.write_text(how)
                reason = "no fallback applies the patch"
                if code is None:
                    limit = f"{self.apply_timeout_s:.0f} s"
                    reason = f"applying the patch ran over its time limit ({limit})"
                return {"resolved": False, "status": "patch_failed", "reason": reason,
                        "log": str(log)}  # fmt: skip
            files = base_files(base, installed.commit)
            infrastructure = changed_infrastructure(tree, base, files)
            test_files = patched_files(instance["test_patch"])
            restore(tree, base, files, list(dict.fromkeys([*test_files, *infrastructure])))
            (run / "test.diff").write_text(_ending_in_newline(instance["test_patch"]))
            reinstall = self._reinstall_reason(plan, installed, files, how, patch, instance)
            venv = installed.venv
            if reinstall:
                venv = run / "venv"
                copy_env(installed.venv, venv)  # its scripts already name VENV
            script = "\n".join([apply_test_patch(run / "test.diff"),
                                 *eval_script(plan.spec, instance, reinstall)])  # fmt: skip
            visible = [base, *_interpreter_root(plan)]
            mount = Mount(venv, VENV, writable=bool(reinstall))
            code, output = self._sandboxed(plan, run, script, plan.spec.timeout_s, visible, mount)
        from swebench.harness.constants import START_TEST_OUTPUT

        log.write_text(output)
        if code == _TEST_PATCH_FAILED and START_TEST_OUTPUT not in output:
            return {"resolved": False, "status": "patch_failed", "log": str(log),
                    "reason": "the test patch does not apply after this patch"}  # fmt: skip
        reset = {"reset": [p for p in infrastructure if p not in test_files]}
        verdict = grade(instance, plan.spec, output, code)
        if not reinstall and "install_exit" in verdict:
            verdict["install_exit"] = installed.install_exit  # its install is this one
        return {**verdict, "log": str(log), **reset, "reinstalled": reinstall or False,
                **plan.details()}  # fmt: skip

    def installed(self, instance: dict[str, Any], plan: Plan, image: Path, base: Path) -> Installed:
        """The instance's tree after ``pre_install`` and ``install`` (made once per image)."""
        root = self.workdir / "installed" / f"{plan.name}-{image.name}-{INSTALLED_RECIPE}"
        if not (root / "installed.json").is_file():
            root.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(root.with_name(f"{root.name}.lock")):
                if not (root / "installed.json").is_file():
                    self._install(instance, plan, image, base, root)
        record = json.loads((root / "installed.json").read_text())
        return Installed(root, record["commit"], record["install_exit"])

    def _install(
        self, instance: dict[str, Any], plan: Plan, image: Path, base: Path, root: Path
    ) -> None:
        """Clone, ``pre_install`` (committed), ``eval_commands`` and ``install`` in the
        sandbox, with the tree at TESTBED and a copy of the image for VENV, as before any
        patch; test-infrastructure files the install wrote are put back. Made in a run
        directory renamed into place: a killed run leaves nothing half-made."""
        commit = instance["base_commit"]
        log = self.environments.log_path(root.name)
        with self._run_dir() as run:
            clone(base, commit, run / "tree")
            copy_env(image, run / "venv")
            relocate(run / "venv", run / "venv", VENV)
            visible = [base, *_interpreter_root(plan)]
            venv = Mount(run / "venv", VENV, writable=True)
            outputs = []
            if plan.spec.pre_install:
                pre_install = " && ".join(plan.spec.pre_install)
                outputs.append(self._sandboxed(plan, run, pre_install, 600, visible, venv)[1])
                commit = commit_pre_install(run / "tree", base)
            script = "\n".join([*sandbox_commands(plan.spec.eval_commands),
                                 *install_commands(plan.spec)])  # fmt: skip
            code, output = self._sandboxed(plan, run, script, plan.spec.timeout_s, visible, venv)
            outputs.append(output)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n".join(outputs))
            if code is None:
                raise EnvironmentBuildError(
                    f"installing {instance['instance_id']}'s tree ran over "
                    f"{plan.spec.timeout_s:.0f} s; see {log}", log
                )  # fmt: skip
            files = base_files(base, commit)
            restore(run / "tree", base, files, changed_infrastructure(run / "tree", base, files))
            record = {"commit": commit, "install_exit": _install_exit(output)}
            (run / "installed.json").write_text(json.dumps(record))
            os.rename(run, root)

    def _reinstall_reason(
        self,
        plan: Plan,
        installed: Installed,
        files: dict[str, Any],
        applied: str,
        patch: str,
        instance: dict[str, Any],
    ) -> str | None:
        """Why this patch's tree is installed again (as the harness always does), or
        None where that provably changes nothing (see ``build_inputs``)."""
        if not plan.spec.install:
            return None
        if not editable(plan.spec.install):
            return "the install is not editable"
        if installed.install_exit != 0:
            return f"the install failed before any patch (exit {installed.install_exit})"
        if any(f"$ {' '.join(command)}" in applied for command in APPLY_COMMANDS[1:]):
            return "a fallback applied the patch (its clean-up may remove build output)"
        patches = [patch, instance["test_patch"]]
        return reinstall_reason(patches, files, installed.configuration())

    def base(self, instance: dict[str, Any]) -> Path:
        """A git directory holding ``base_commit`` and nothing later (made once)."""
        repo, commit = instance["repo"], instance["base_commit"]
        bases = self.workdir / "bases" / repo.replace("/", "__")
        path = bases / f"{commit}.git"
        if path.is_dir():
            return path
        bases.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{commit}-", dir=bases))
        try:
            mirror = self.mirror(repo).resolve()
            _git(scratch, "init", "--quiet", "--bare", ".")
            fetched = _git(scratch, "fetch", "--quiet", "--depth=1", f"file://{mirror}", commit,
                           check=False)  # fmt: skip
            if fetched.returncode != 0:
                raise EnvironmentBuildError(
                    f"cannot fetch {commit} from {mirror}: {fetched.stderr.strip()}; "
                    f"fetch the mirror (git -C {mirror} fetch --all)"
                )
            _git(scratch, "update-ref", "refs/heads/base", commit)
            for directory, _, _ in os.walk(scratch):
                os.chmod(directory, 0o755)  # the sandbox's uids read it
            os.rename(scratch, path)
        except OSError:
            if not path.is_dir():  # else another run made it first
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return path

    def log_path(self, instance: dict[str, Any], patch: str) -> Path:
        path = self.workdir / "logs" / instance["instance_id"] / f"{short_digest(patch)}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _sandboxed(
        self,
        plan: Plan,
        run: Path,
        script: str,
        timeout_s: float,
        visible: list[Path],
        venv: Mount | None = None,
        memory_bytes: int = 8 << 30,
    ) -> tuple[int | None, str]:
        """``script`` in the sandbox, in the run's tree shown at TESTBED (and ``venv``)."""
        env = {
            "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(VENV),
            "LANG": "C.UTF-8",
            # setuptools_scm cannot read the tree's git metadata in the sandbox.
            "SETUPTOOLS_SCM_PRETEND_VERSION": plan.version,
            **_GIT_ENV,
            **OFFLINE_PIP,
            **plan.interpreter.env(),
        }
        tree = Mount(run / "tree", TESTBED, writable=True)
        return self.sandbox.run_command(
            ["bash", "-c", f"cd {TESTBED} && {script}"],
            run,
            env=env,
            timeout_s=timeout_s,
            memory_bytes=memory_bytes,
            network=plan.spec.network,
            visible=visible,
            mounts=[tree, *([venv] if venv else [])],
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
            _remove_run(run)


def eval_script(spec: RepoSpec, instance: dict[str, Any], reinstall: str | None) -> list[str]:
    """The harness's eval steps after the patches: ``eval_commands``, ``install`` again
    (its status recorded, not fatal, as in the harness) where ``reinstall`` says why,
    the tests between markers."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE

    directives = test_directives(instance["repo"], instance["test_patch"])
    tests = " ".join([spec.test_cmd, *map(shlex.quote, directives)])
    lines = sandbox_commands(spec.eval_commands)
    if reinstall:
        lines += [f"echo {shlex.quote(f'install again: {reinstall}')}", *install_commands(spec)]
    elif spec.install:
        lines.append("echo 'install not run again: the patches change nothing it reads'")
    lines += tox_launchers(spec)
    lines += [f"echo '{START_TEST_OUTPUT}'", tests, "code=$?", f"echo '{END_TEST_OUTPUT}'",
              f'echo "{TEST_EXIT_CODE}: $code"']  # fmt: skip
    return lines


def install_commands(spec: RepoSpec) -> list[str]:
    """The project's ``install``, offline, with its build backend; its exit status shown."""
    if not spec.install:
        return []
    return [f'export PYTHONPATH="$VIRTUAL_ENV/{BUILD_BACKEND}"', spec.install,
            f'echo "{_INSTALL_EXIT}: $?"', "unset PYTHONPATH"]  # fmt: skip


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


def copy_tree(source: Path, destination: Path) -> None:
    """A private copy of an installed tree, its build output and times kept."""
    done = subprocess.run(["cp", "-a", str(source), str(destination)], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        raise MonkeysError(f"cannot copy {source} to {destination}: {done.stderr.strip()}")


def clone(base: Path, commit: str, tree: Path) -> None:
    """A repository at ``commit`` sharing the objects of ``base`` (fast, nothing
    registered there)."""
    done = subprocess.run(
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(base), str(tree)],
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_ENV},
    )
    if done.returncode == 0:
        done = _git(tree, "checkout", "--quiet", "--detach", commit, check=False)
    if done.returncode != 0:
        raise MonkeysError(f"cannot check out {commit} from {base}: {done.stderr.strip()}")


def commit_pre_install(tree: Path, base: Path) -> str:
    """The tree after ``pre_install`` committed, as the harness commits its instance
    image's tree: the state the apply fallbacks' clean-up and the resets return to (not
    ``base_commit``, which would undo ``pre_install``'s edits, e.g. sphinx's ``-rA`` in
    tox.ini). Made before any patch, on a tree only the benchmark's commands shaped; the
    objects go into ``base``, which the sandbox only reads, so a patch cannot change what
    the resets restore."""
    objects = {"GIT_OBJECT_DIRECTORY": str(base / "objects"),
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(tree / ".git" / "objects")}  # fmt: skip
    _git(tree, "add", "--all", env=objects)
    _git(tree, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "pre_install",
         env=objects)  # fmt: skip
    return _git(tree, "rev-parse", "HEAD").stdout.strip()


def refusal(patch: str) -> str | None:
    """Why the patch is refused before anything runs (too big, or a path inside a
    ``.git`` directory, which only the ``patch`` fallback would write), else None."""
    size = len(patch.encode("utf-8", "surrogatepass"))
    if size > MAX_PATCH_BYTES:
        return (f"the patch is {size / (1 << 20):.1f} MiB, over the "
                f"{MAX_PATCH_BYTES >> 20} MiB limit")  # fmt: skip
    for header in _PATH_HEADER.finditer(patch):
        for word in header.group(1).split():
            path = _C_ESCAPE.sub(_unescape, word.strip('"')) if word.startswith('"') else word
            if _GIT_COMPONENT.search(path):
                return f"the patch names a path inside .git ({word}): refused"
    return None


def _unescape(match: re.Match[str]) -> str:
    """A C-style escape of a quoted git path (``\\056git`` is ``.git``)."""
    code = match.group(1)
    if code.isdigit():
        return chr(int(code, 8))
    return {"t": "\t", "n": "\n"}.get(code, code)


def apply_script(patch_file: Path) -> str:
    """The harness's fallbacks in turn, the tree cleaned between them; exit 0 once one
    applies the patch. Run in the sandbox: nothing of the patch reaches the host."""
    clean = "git reset --hard --quiet; git clean -fdq"
    lines = []
    for command in APPLY_COMMANDS:
        shown = " ".join(command)
        lines.append(
            f"echo {shlex.quote('$ ' + shown)}; {shown} {patch_file} 2>&1 && exit 0; {clean}"
        )
    return "\n".join([*lines, "exit 1"])


def apply_test_patch(patch_file: Path) -> str:
    """The harness's ``git apply -v`` of the test patch, first in the test stage."""
    return f"git apply --verbose {patch_file} || exit {_TEST_PATCH_FAILED}"


def _ending_in_newline(patch: str) -> str:
    return patch if patch.endswith("\n") else patch + "\n"


def _interpreter_root(plan: Plan) -> list[Path]:
    """The interpreter's installation, unless the system directories hold it."""
    root = plan.interpreter.executable.resolve().parent.parent
    system = [Path(p) for p in ("/usr", "/bin", "/lib", "/lib64", "/sbin")]
    return [] if any(root.is_relative_to(d) for d in system) or root == Path("/") else [root]


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
    skipped = skip_reasons(output) if any(t not in status_map for t in failing) else []
    if skipped:  # a listed test that never ran: pytest's reasons name what the host lacks
        verdict["skipped"] = skipped
    offline = network_failures(output, failing)
    if not offline["tests"]:
        return verdict
    return {**verdict, "needs_network": {**offline, "allowed": spec.network}}


def skip_reasons(output: str) -> list[str]:
    """The distinct reasons of pytest's ``SKIPPED [n] file:line: reason`` summary lines
    (``-rA``), in order."""
    return list(dict.fromkeys(_SKIPPED.findall(output)))


def _install_exit(output: str) -> int | None:
    for line in output.splitlines():
        if line.startswith(_INSTALL_EXIT):
            return int(line.rsplit(":", 1)[1])
    return None


def _tests(value: str | list[str]) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _git(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """git in a repository of ours that no patch has touched."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **_GIT_ENV, **(env or {})})  # fmt: skip
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
            _remove_run(run)


def _remove_run(run: Path) -> None:
    """rm, not shutil.rmtree, which recurses: the tests may leave a tree thousands of
    directories deep."""
    subprocess.run(["rm", "-rf", "--one-file-system", str(run)], check=False)
