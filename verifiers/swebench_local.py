"""SWE-bench without Docker: a git worktree per patch, tests in the sandbox, swebench grading.

For one instance and one candidate patch: check the repository out at ``base_commit`` as
a worktree of a local mirror, apply the patch with the harness's fallbacks, restore the
test files and apply the instance's test patch, run its test command in the bubblewrap
sandbox (no network, host read-only, the worktree the only writable directory), and grade
the log with ``swebench``'s own parser and ``grading`` functions. Dependencies live in one
virtualenv per (repo, version, spec), built once and reused by every patch.
"""

from __future__ import annotations

import contextlib
import fcntl
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.sandbox import Sandbox, shared_dir

logger = logging.getLogger(__name__)

REPOS_ENV = "MONKEYS_SWEBENCH_REPOS"  # directory of mirrors named owner__repo
SPECS_ENV = "MONKEYS_SWEBENCH_SPECS"  # JSON file overriding or adding RepoSpecs

# The harness's own order: plain, three-way merge, partial with rejects, then GNU patch.
APPLY_COMMANDS = (
    ["git", "apply", "--verbose"],
    ["git", "apply", "--verbose", "--3way"],
    ["git", "apply", "--verbose", "--reject"],
    ["patch", "--batch", "--forward", "--fuzz=5", "-p1", "-i"],
)
_NON_TEST_SUFFIXES = (".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml")


@dataclass(frozen=True)
class RepoSpec:
    """How to build a repository's environment and run its tests.

    ``install`` runs once per environment in a checkout at ``environment_setup_commit``
    (trusted: it is the benchmark's own setup). ``directives`` turns the test patch's files
    into test-command arguments: ``paths`` (the file paths), ``django`` (dotted module
    names under tests/, as Django's runtests.py wants) or ``none``.
    """

    test_cmd: str = "pytest -rA"
    log_parser: str = "parse_log_pytest"
    directives: str = "paths"
    python: str = "python3"
    system_site_packages: bool = False
    pip_packages: tuple[str, ...] = ()
    install: str = ""
    timeout_s: float = 1800.0


# Test commands and log parsers of the SWE-bench Lite repositories (as the harness runs
# them). Python versions and packages differ per version: give them in MONKEYS_SWEBENCH_SPECS.
DEFAULT_SPECS: dict[str, RepoSpec] = {
    "astropy/astropy": RepoSpec(log_parser="parse_log_astropy"),
    "django/django": RepoSpec(
        test_cmd="./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1",
        log_parser="parse_log_django",
        directives="django",
    ),
    "matplotlib/matplotlib": RepoSpec(log_parser="parse_log_matplotlib"),
    "mwaskom/seaborn": RepoSpec(test_cmd="pytest --no-header -rA", log_parser="parse_log_seaborn"),
    "pallets/flask": RepoSpec(log_parser="parse_log_flask"),
    "psf/requests": RepoSpec(log_parser="parse_log_requests"),
    "pydata/xarray": RepoSpec(log_parser="parse_log_xarray"),
    "pylint-dev/pylint": RepoSpec(log_parser="parse_log_pylint"),
    "pytest-dev/pytest": RepoSpec(),
    "scikit-learn/scikit-learn": RepoSpec(log_parser="parse_log_scikit"),
    "sphinx-doc/sphinx": RepoSpec(
        test_cmd="tox --current-env -epy39 -v --", log_parser="parse_log_sphinx"
    ),
    "sympy/sympy": RepoSpec(
        test_cmd="bin/test -C --verbose", log_parser="parse_log_sympy", directives="paths"
    ),
}


def load_specs(path: str | None = None) -> dict[str, dict[str, RepoSpec]]:
    """``{repo: {version or "default": RepoSpec}}``: the defaults plus the user's JSON file
    (``{"owner/repo": {"default": {...}, "3.0": {...}}}``, fields as in ``RepoSpec``)."""
    specs = {repo: {"default": spec} for repo, spec in DEFAULT_SPECS.items()}
    path = path or os.environ.get(SPECS_ENV)
    if not path:
        return specs
    try:
        user = json.loads(Path(path).read_text())
        for repo, versions in user.items():
            base = specs.get(repo, {}).get("default", RepoSpec())
            for version, fields in versions.items():
                if "pip_packages" in fields:
                    fields = {**fields, "pip_packages": tuple(fields["pip_packages"])}
                specs.setdefault(repo, {})[version] = replace(base, **fields)
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise MonkeysError(
            f"{SPECS_ENV}={path}: not a readable spec file ({err}); it must be JSON like "
            '{"owner/repo": {"default": {"test_cmd": "pytest -rA", "python": "python3.9"}}}'
        ) from None
    return specs


def spec_for(specs: dict[str, dict[str, RepoSpec]], repo: str, version: str) -> RepoSpec:
    versions = specs.get(repo)
    if versions is None:
        raise MonkeysError(
            f"no test spec for {repo}; add it to the JSON file named by {SPECS_ENV} "
            '(e.g. {"' + repo + '": {"default": {"test_cmd": "pytest -rA"}}})'
        )
    return versions.get(str(version)) or versions.get("default") or RepoSpec()


def test_files(test_patch: str) -> list[str]:
    """Files the test patch touches, as the harness selects them (code, not data files)."""
    files = re.findall(r"^diff --git a/.* b/(.*)$", test_patch, re.M)
    return [f for f in dict.fromkeys(files) if not f.endswith(_NON_TEST_SUFFIXES)]


def directives(spec: RepoSpec, files: list[str]) -> list[str]:
    if spec.directives == "none":
        return []
    if spec.directives == "django":
        modules = []
        for file in files:
            name = file.removeprefix("tests/").removesuffix(".py")
            modules.append(name.replace("/", "."))
        return modules
    return files


class LocalRunner:
    """Evaluates candidate patches of SWE-bench instances against local repository mirrors."""

    def __init__(
        self,
        mirrors: Path | None = None,
        specs: dict[str, dict[str, RepoSpec]] | None = None,
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
        self.specs = specs if specs is not None else load_specs()
        self.sandbox = sandbox or Sandbox()
        self.workdir = workdir or shared_dir("swebench")
        self._git_locks: dict[Path, threading.Lock] = {}
        self._env_locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def evaluate(self, instance: dict[str, Any], patch: str) -> dict[str, Any]:
        """Grade one patch: ``{"resolved": bool, "status": ..., ...}`` (never raises for a
        bad patch; raises MonkeysError for a broken setup)."""
        spec = spec_for(self.specs, instance["repo"], instance["version"])
        env = self.environment(instance, spec)
        with self._worktree(instance["repo"], instance["base_commit"]) as tree:
            applied, how = apply_patch(tree, patch)
            if not applied:
                return {"resolved": False, "status": "patch_failed", "detail": how[-2000:]}
            files = test_files(instance["test_patch"])
            for file in files:  # undo the candidate's edits to tests (new files stay)
                _git(tree, "checkout", instance["base_commit"], "--", file, check=False)
            test_ok, test_how = apply_patch(tree, instance["test_patch"])
            if not test_ok:
                return {"resolved": False, "status": "test_patch_failed", "detail": test_how}
            command = " ".join([spec.test_cmd, *map(shlex.quote, directives(spec, files))])
            code, output = self.sandbox.run_command(
                ["bash", "-c", command],
                tree,
                env={
                    "PATH": f"{env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                    "VIRTUAL_ENV": str(env),
                    "PYTHONPATH": str(tree),  # the patched checkout, not the env's copy
                    "PYTHONDONTWRITEBYTECODE": "1",
                },
                timeout_s=spec.timeout_s,
            )
        return grade(instance, spec, output, code)

    # -- environments --------------------------------------------------------------------

    def environment(self, instance: dict[str, Any], spec: RepoSpec) -> Path:
        """The virtualenv of (repo, version, spec), built on first use and reused."""
        digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()
        name = f"{instance['repo'].replace('/', '__')}__{instance['version']}-{digest[:10]}"
        env = self.workdir / "envs" / name
        with self._lock_for(self._env_locks, env), _file_lock(env.with_suffix(".lock")):
            if (env / ".ready").is_file():
                return env
            shutil.rmtree(env, ignore_errors=True)
            self._build_environment(env, instance, spec)
            (env / ".ready").write_text(json.dumps(asdict(spec)))
        return env

    def _build_environment(self, env: Path, instance: dict[str, Any], spec: RepoSpec) -> None:
        python = shutil.which(spec.python) or shutil.which(f"python{spec.python}")
        if python is None:
            raise MonkeysError(
                f"{instance['repo']} {instance['version']} needs the interpreter "
                f"{spec.python!r}, which is not on PATH; install it or set its path in "
                f"{SPECS_ENV}"
            )
        log = env.with_suffix(".build.log")
        venv = [python, "-m", "venv", *(["--system-site-packages"] * spec.system_site_packages)]
        steps = [[*venv, str(env)]]
        if spec.pip_packages:
            steps.append([str(env / "bin" / "python"), "-m", "pip", "install", *spec.pip_packages])
        logger.info("building the test environment %s", env.name)
        with open(log, "w") as out:
            for step in steps:
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                    raise MonkeysError(f"building {env.name} failed at {step[:4]}; see {log}")
            if spec.install:
                commit = instance.get("environment_setup_commit") or instance["base_commit"]
                path = f"{env / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
                with self._worktree(instance["repo"], commit, keep=env / "src") as src:
                    done = subprocess.run(
                        ["bash", "-c", spec.install],
                        cwd=src,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, "PATH": path, "VIRTUAL_ENV": str(env)},
                    )
                if done.returncode != 0:
                    raise MonkeysError(f"`{spec.install}` failed for {env.name}; see {log}")

    # -- checkouts -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _worktree(self, repo: str, commit: str, keep: Path | None = None) -> Iterator[Path]:
        """A worktree of the mirror at ``commit`` (removed afterwards unless ``keep``)."""
        mirror = self.mirrors / repo.replace("/", "__")
        if not (mirror / ".git").exists() and not (mirror / "HEAD").is_file():
            raise MonkeysError(
                f"no local mirror of {repo}: expected a git clone at {mirror} "
                f"(git clone https://github.com/{repo} {mirror})"
            )
        scratch = self.workdir / "trees"
        scratch.mkdir(parents=True, exist_ok=True)
        tree = keep or Path(tempfile.mkdtemp(prefix="tree-", dir=scratch))
        with self._lock_for(self._git_locks, mirror):
            added = _git(
                mirror, "worktree", "add", "--detach", "--force", str(tree), commit, check=False
            )
        if added.returncode != 0:
            raise MonkeysError(
                f"cannot check out {repo} at {commit} from {mirror}: {added.stderr.strip()}; "
                "fetch the mirror (git -C MIRROR fetch --all)"
            )
        try:
            yield tree
        finally:
            if keep is None:
                with self._lock_for(self._git_locks, mirror):
                    _git(mirror, "worktree", "remove", "--force", str(tree), check=False)
                shutil.rmtree(tree, ignore_errors=True)

    def _lock_for(self, locks: dict[Path, threading.Lock], key: Path) -> threading.Lock:
        with self._locks_lock:
            return locks.setdefault(key, threading.Lock())


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
    """Verdict from the test output, by swebench's log parser and grading functions."""
    from swebench.harness.constants import (
        END_TEST_OUTPUT,
        FAIL_TO_PASS,
        PASS_TO_PASS,
        START_TEST_OUTPUT,
        TEST_EXIT_CODE,
        TESTS_TIMEOUT,
        ResolvedStatus,
    )
    from swebench.harness.grading import (
        get_eval_tests_report,
        get_logs_eval,
        get_resolution_status,
    )
    from swebench.types import TestSpec

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
    tail = f"{TEST_EXIT_CODE}: {code}\n" if code is not None else f"{TESTS_TIMEOUT}\n"
    log = f"{START_TEST_OUTPUT}\n{output}\n{END_TEST_OUTPUT}\n{tail}"
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as file:
        file.write(log)
    try:
        status_map, found = get_logs_eval(test_spec, file.name)
    finally:
        os.unlink(file.name)
    if code is None:
        return {"resolved": False, "status": "timeout", "detail": output[-2000:]}
    if not found:
        return {"resolved": False, "status": "no_test_results", "detail": output[-2000:]}
    report = get_eval_tests_report(status_map, {FAIL_TO_PASS: f2p, PASS_TO_PASS: p2p})
    status = get_resolution_status(report)
    return {
        "resolved": status == ResolvedStatus.FULL.value,
        "status": status,
        "fail_to_pass_failed": report[FAIL_TO_PASS]["failure"],
        "pass_to_pass_failed": report[PASS_TO_PASS]["failure"],
    }


def _tests(value: str | list[str]) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise MonkeysError(f"git {' '.join(args[:3])} failed in {cwd}: {done.stderr.strip()}")
    return done


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Across processes: two runs never build the same environment at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
