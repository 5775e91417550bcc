"""Virtualenvs for SWE-bench instances, built the way the harness builds its images.

Two layers, like the harness's environment and instance images. The dependencies layer,
shared by every instance of one setup: the spec's Python with the requirements file read
at ``environment_setup_commit`` (for a conda spec, its environment.yml's PyPI
counterparts: ``conda_specs``), the spec's packages and pinned ``pip_packages``. The
instance layer, a copy of it per ``base_commit``: ``pre_install`` and ``install`` run in
a checkout of that commit (with the network), which brings the project's own
dependencies at that commit; the project itself is then uninstalled and its build
backend put beside the environment, so that every patch reinstalls the *patched* tree
offline (``install`` again, as the harness's eval script does) in its own copy: the
tests import the patched code whatever the layout (src or flat).

pip's settings are the runner's, never the host's (its config files and ``PIP_*``
variables are ignored, so the same spec builds the same environment on any machine): the
index is PyPI, or what the pip config file named by ``MONKEYS_SWEBENCH_PIP_CONFIG`` sets
(a mirror), and every new environment first upgrades pip to the newest release its
Python supports (``LAST_PIP``), as old bundled pips cannot install today's wheels, or
to the last with the legacy paths an install command or tree still needs
(``LAST_PIP_WITH_LEGACY``).

Builds run in a temporary directory renamed into place (a killed build leaves nothing
half-made; the next ``Environments`` removes its remains) and show progress; each layer
keeps its log. A build that failed is not tried again by the same ``Environments``
(every patch of the instance would pay for it, and overwrite its log). Identical
environments (same interpreter, same installed distributions) are stored once, as
``images/<digest>``; ``envs/<layer name>`` links to its image.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import tomllib
from packaging.version import InvalidVersion, Version
from tqdm import tqdm

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.swebench.build_inputs import PIP_EDITABLE
from lm_eval_monkeys.verifiers.swebench.conda_specs import (
    ENVIRONMENT_YML,
    conda_packages,
    refusal,
)
from lm_eval_monkeys.verifiers.swebench.interpreters import Interpreter
from lm_eval_monkeys.verifiers.swebench.specs import SPECS_ENV, RepoSpec, file_at, requirements

logger = logging.getLogger(__name__)

# pip inside the sandbox: no index, no config file (the host's /etc is visible there), and
# the build backend from the environment's BUILD_BACKEND directory ("0" is how pip's
# environment variable turns isolation off).
OFFLINE_PIP = {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_CONFIG_FILE": os.devnull}
PIP_CONFIG_ENV = "MONKEYS_SWEBENCH_PIP_CONFIG"  # a pip config file: the builds' only one
PYPI = "https://pypi.org/simple"
# The last pip release for each Python that newer pips dropped (their Requires-Python);
# newer Pythons take the newest pip. Named, not left to pip: a mirror without
# Requires-Python in its links would offer a pip the Python cannot run.
LAST_PIP = {"2.7": "20.3.4", "3.5": "20.3.4", "3.6": "21.3.1", "3.7": "24.0", "3.8": "25.0.1"}
# pip 25.3 dropped the legacy paths: --no-use-pep517 (scikit-learn's install command) and,
# for an editable install of a tree whose build backend has no build_editable hook
# (pylint 2.15 pins setuptools~=62.6; the hook came with 64), ``setup.py develop``.
LEGACY_OPTION, LAST_PIP_WITH_LEGACY = "--no-use-pep517", "25.2"
# Exit 3 where the tree's build backend (pyproject.toml's, setuptools' legacy one by
# default) has no build_editable hook; run with the backend on PYTHONPATH. No f-strings
# or walrus: the environment's Python may be 3.5.
_EDITABLE_PROBE = """import importlib, sys
module, _, attributes = sys.argv[1].partition(":")
backend = importlib.import_module(module)
for attribute in filter(None, attributes.split(".")):
    backend = getattr(backend, attribute)
sys.exit(0 if hasattr(backend, "build_editable") else 3)
"""
# Bumped when the build steps change, so environments built the old way are not reused.
BUILD_RECIPE = 4
BUILD_BACKEND = "build-backend"
_NOT_ON_INDEX = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\[\]-]+)")
_SYSTEM_PACKAGES = re.compile(r"\b(apt-get|apt|yum|dnf|apk|conda)\b")
Step = tuple[str, list[str] | str, Path | None]  # (label, argv or shell command, cwd)


class EnvironmentBuildError(MonkeysError):
    """The environment of an instance could not be built (a setup problem, not the patch's);
    ``log`` is the build log, where there is one."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Plan:
    """Everything an instance's environment is built from; digests name its two layers."""

    repo: str
    version: str
    spec: RepoSpec
    interpreter: Interpreter
    setup_commit: str
    base_commit: str
    # The requirements file's text: the repository's (packages: requirements.txt), or its
    # environment.yml's PyPI counterparts with the pins (environment.yml); else "".
    requirements: str
    left_out: tuple[str, ...] = ()  # conda packages without a PyPI counterpart, left out

    def details(self) -> dict[str, list[str]]:
        """What every verdict of the instance says about its environment."""
        return {"conda_left_out": list(self.left_out)} if self.left_out else {}

    @property
    def dependencies_name(self) -> str:
        """The shared layer: interpreter, requirements and pinned packages (the harness's
        environment image, built at ``environment_setup_commit``)."""
        key = [self.spec.digest(), str(self.interpreter), self.setup_commit, self.requirements,
               BUILD_RECIPE]  # fmt: skip
        return f"{self.repo.replace('/', '__')}__{self.version}-{_digest(key)}"

    @property
    def name(self) -> str:
        """The instance's layer: the project's own dependencies at ``base_commit`` on top
        (the harness's instance image)."""
        return f"{self.dependencies_name}-{self.base_commit[:10]}"


def _digest(value: object) -> str:
    return short_digest(json.dumps(value))


def plan_for(instance: dict, spec: RepoSpec, interpreter: Interpreter, mirror: Path) -> Plan:
    setup = instance.get("environment_setup_commit") or instance["base_commit"]
    version = str(instance["version"])
    system = _system_packages(instance["repo"], version, spec)
    left_out: tuple[str, ...] = ()
    try:
        if spec.packages == ENVIRONMENT_YML:
            reqs, left_out = _conda_requirements(instance["repo"], version, spec, mirror, setup)
        elif spec.packages == "requirements.txt":
            reqs = requirements(mirror, setup, spec)
        else:
            reqs = ""
    except EnvironmentBuildError as err:  # one reason naming every problem
        raise EnvironmentBuildError("; ".join(filter(None, [str(err), system]))) from None
    if system:
        raise EnvironmentBuildError(system)
    commit = instance["base_commit"]
    return Plan(instance["repo"], version, spec, interpreter, setup, commit, reqs, left_out)


def _system_packages(repo: str, version: str, spec: RepoSpec) -> str:
    """Why the spec is refused, where its ``pre_install`` changes the system's packages
    (matplotlib's ``apt-get upgrade`` and TeX Live, as root in the harness's image: here
    it would change this machine); else ""."""
    for command in spec.pre_install:
        if _SYSTEM_PACKAGES.search(command):
            return (
                f"{repo} {version}: pre_install changes the system's packages ({command!r}), "
                "which the local runner never does on this machine; install what it needs "
                f"yourself and set pre_install without that step in {SPECS_ENV}, or use "
                "swebench:docker"
            )
    return ""


def _conda_requirements(
    repo: str, version: str, spec: RepoSpec, mirror: Path, setup: str
) -> tuple[str, tuple[str, ...]]:
    """The requirements file standing in for the first of the spec's environment.yml
    files at ``setup``, and the packages left out; refused where one has no counterpart."""
    for path in spec.requirements_paths:
        text = file_at(mirror, setup, path)
        if text is not None:
            source = f"{path} at {setup[:12]}"
            packages = conda_packages(text, source, spec.conda_without)
            refused = refusal(packages, repo, version, source)
            if refused:
                raise EnvironmentBuildError(refused)
            return packages.as_requirements_file(spec.pip_packages), packages.left_out
    raise EnvironmentBuildError(
        f"{repo} {version}: none of {list(spec.requirements_paths)} at {setup[:12]} in "
        f"{mirror}; fetch the mirror (git -C {mirror} fetch --all)"
    )


def build_env(interpreter: Interpreter) -> dict[str, str]:
    """The host environment of build steps: bytecode compiled (the sandbox cannot write it
    later, and a compile warning under ``-W error`` would fail a test), the interpreter's
    library path, pip's settings from ``pip_settings`` alone."""
    dropped = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PIP_")}
    return {**env, **interpreter.env(), **pip_settings()}


def pip_settings() -> dict[str, str]:
    """pip's settings for builds, as its environment variables: PyPI and no config file,
    or the ``[global]``, ``[install]`` and ``[download]`` settings of the file named by
    ``MONKEYS_SWEBENCH_PIP_CONFIG`` (read here: pip itself would add the host's files)."""
    settings = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": PYPI,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    path = os.environ.get(PIP_CONFIG_ENV)
    if not path:
        return settings
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as err:
        raise MonkeysError(
            f"{PIP_CONFIG_ENV}={path}: not a readable pip config file ({err}); it must be "
            "INI like '[global]\nindex-url = https://mirror.example/simple'"
        ) from None
    for section in ("global", "install", "download"):
        if parser.has_section(section):
            for key, value in parser.items(section):
                settings[f"PIP_{key.upper().replace('-', '_')}"] = " ".join(value.split())
    return settings


def _unavailable(log: Path) -> str:
    """The distributions pip found on no index, as the build log says, for the reason."""
    names = dict.fromkeys(_NOT_ON_INDEX.findall(log.read_text(errors="replace")))
    return f": the index has no distribution {', '.join(names)}" if names else ""


def pip_upgrade(python_version: str, legacy: bool = False) -> str:
    """The requirement that upgrades pip to the newest release ``python_version`` runs
    (with ``legacy``, the newest that still has pip's legacy install paths)."""
    last = LAST_PIP.get(".".join(python_version.split(".")[:2]))
    if last:
        return f"pip=={last}"
    return f"pip=={LAST_PIP_WITH_LEGACY}" if legacy else "pip"


class Environments:
    """Builds and finds environments under ``root`` (``envs/``, ``images/``, ``logs/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._failed: dict[str, EnvironmentBuildError] = {}  # layer name -> why, this run
        self._remove_dead_builds()

    def _remove_dead_builds(self) -> None:
        """Build directories whose builder died (its lock is free): a killed build."""
        envs = self.root / "envs"
        for scratch in envs.glob(".build-*") if envs.is_dir() else ():
            name = scratch.name.removeprefix(".build-").rsplit("-", 1)[0]
            with open(envs / f"{name}.lock", "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # still being built
                shutil.rmtree(scratch, ignore_errors=True)

    def get(self, plan: Plan, mirror: Path) -> Path:
        """The instance's virtualenv (an image directory), its layers built on first use."""
        dependencies = self._image(
            plan.dependencies_name,
            plan,
            lambda scratch, out: self._dependencies(plan, scratch, out),
        )
        return self._image(
            plan.name,
            plan,
            lambda scratch, out: self._project(plan, mirror, dependencies, scratch, out),
        )

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / "build" / f"{name}.log"

    def _image(self, name: str, plan: Plan, build: Callable[[Path, IO[str]], Path]) -> Path:
        link = self.root / "envs" / name
        if link.is_dir():
            return link.resolve()
        with self._lock(name), file_lock(self.root / "envs" / f"{name}.lock"):
            if name in self._failed:
                raise self._failed[name]
            if not link.is_dir():
                try:
                    self._build(name, link, plan, build)
                except EnvironmentBuildError as err:
                    self._failed[name] = err
                    raise
        return link.resolve()

    def _build(
        self, name: str, link: Path, plan: Plan, build: Callable[[Path, IO[str]], Path]
    ) -> None:
        scratch = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=link.parent))
        log = self.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log, "w") as out:
                venv = build(scratch, out)
            image = self._store(venv, plan)
            temporary = link.with_name(f".{link.name}.link")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(image)
            os.replace(temporary, link)
        except (OSError, subprocess.SubprocessError) as err:  # e.g. a full disk, pip crashed
            raise EnvironmentBuildError(
                f"building the environment {name} failed ({err}); see {log}", log
            ) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _dependencies(self, plan: Plan, scratch: Path, out: IO[str]) -> Path:
        venv = scratch / "venv"
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
        legacy = LEGACY_OPTION in plan.spec.install
        steps: list[Step] = [
            ("venv", [str(plan.interpreter.executable), "-m", "venv", str(venv)], None),
            ("pip", [*pip, "--upgrade", pip_upgrade(plan.interpreter.version, legacy)], None),
        ]
        if plan.requirements:
            (scratch / "requirements.txt").write_text(plan.requirements)
            out.write(f"requirements.txt:\n{plan.requirements}\n")
            steps.append(("requirements", [*pip, "-r", str(scratch / "requirements.txt")], None))
        if plan.spec.packages not in ("", "requirements.txt", ENVIRONMENT_YML):
            steps.append(("packages", [*pip, *shlex.split(plan.spec.packages)], None))
        if plan.spec.pip_packages:
            steps.append(("pip_packages", [*pip, *plan.spec.pip_packages], None))
        self._run(plan.dependencies_name, plan, venv, steps, out)
        return venv

    def _project(
        self, plan: Plan, mirror: Path, dependencies: Path, scratch: Path, out: IO[str]
    ) -> Path:
        venv, src = scratch / "venv", scratch / "src"
        python = str(venv / "bin" / "python")
        copy_env(dependencies, venv)
        checkout(mirror, plan.base_commit, src)
        steps: list[Step] = [("pre_install", command, src) for command in plan.spec.pre_install]
        env = self._run(plan.name, plan, venv, steps, out)
        self._install_build_backend(python, src, env, out)
        steps = []
        if PIP_EDITABLE.search(plan.spec.install) and not _has_build_editable(python, src, env):
            older = pip_upgrade(plan.interpreter.version, legacy=True)
            out.write(f"the build backend has no build_editable hook: {older}\n")
            steps.append(("pip", [python, "-m", "pip", "install", older], None))
        if plan.spec.install:
            steps.append(("install", plan.spec.install, src))
        self._run(plan.name, plan, venv, steps, out)
        self._uninstall_project(python, env, out)
        _drop_shadowing(venv / BUILD_BACKEND, venv, out)
        return venv

    def _run(
        self, name: str, plan: Plan, venv: Path, steps: list[Step], out: IO[str]
    ) -> dict[str, str]:
        """Run build steps with progress; the environment they ran in."""
        env = {
            **build_env(plan.interpreter),
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIRTUAL_ENV": str(venv),
            "SETUPTOOLS_SCM_PRETEND_VERSION": plan.version,
        }
        with tqdm(total=len(steps), desc=f"environment {name}", unit="step") as progress:
            for label, command, cwd in steps:
                progress.set_postfix_str(label)
                argv = ["bash", "-c", command] if isinstance(command, str) else command
                out.write(f"$ {command}\n")
                out.flush()
                done = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    out.flush()
                    raise EnvironmentBuildError(
                        f"building the environment {name} failed at {label} "
                        f"(exit {done.returncode}{_unavailable(self.log_path(name))}); "
                        f"see {self.log_path(name)}",
                        self.log_path(name),
                    )
                progress.update()
        return env

    def _install_build_backend(self, python: str, src: Path, env: dict, out: IO[str]) -> None:
        """Put what the project's build needs in ``BUILD_BACKEND`` (outside
        site-packages: the tests never see it), so each patch's reinstall runs without an
        index, as if build isolation had fetched it."""
        build = build_requirements(src)
        target = Path(python).parent.parent / BUILD_BACKEND
        done = subprocess.run(
            [python, "-m", "pip", "install", "--target", str(target), *build],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if done.returncode != 0:
            log = Path(out.name)
            raise EnvironmentBuildError(
                f"installing the build backend {build} failed; see {log}", log
            )

    def _uninstall_project(self, python: str, env: dict, out: IO[str]) -> None:
        """Uninstall the project: each patch installs its own tree."""
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--editable", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        names = [d["name"] for d in json.loads(listed.stdout or "[]")]
        if names:
            subprocess.run(
                [python, "-m", "pip", "uninstall", "-y", *names],
                env=env, stdout=out, stderr=subprocess.STDOUT, check=True,
            )  # fmt: skip

    def _store(self, venv: Path, plan: Plan) -> Path:
        """Move the venv to ``images/<digest of its content>`` (or drop it: identical image)."""
        frozen = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"],
            env=build_env(plan.interpreter),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        backend = sorted(p.name for p in (venv / BUILD_BACKEND).glob("*.dist-info"))
        content = json.dumps([plan.interpreter.version, str(plan.interpreter.executable),
                              sorted(frozen.splitlines()), backend])  # fmt: skip
        image = self.root / "images" / short_digest(content)
        image.parent.mkdir(parents=True, exist_ok=True)
        (venv / "monkeys-image.json").write_text(content)
        relocate(venv, venv, image)
        try:
            os.rename(venv, image)
        except OSError:
            if not image.is_dir():
                raise
        return image  # when the rename failed, the same distributions were already stored

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        with self._locks_lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            yield


def _drop_shadowing(backend: Path, venv: Path, out: IO[str]) -> None:
    """Remove from ``backend`` the distributions the environment has in a newer version:
    on the reinstall's PYTHONPATH the older copy would shadow the environment's own
    (astropy's build pins numpy 1.19.3 through oldest-supported-numpy, its runtime needs
    numpy>=1.20, which the environment has). Newer build tools (setuptools) are kept."""
    site = venv.glob("lib/python*/site-packages/*.dist-info")
    installed = {_dist_name(p): _dist_version(p) for p in site}
    for info in backend.glob("*.dist-info"):
        own = installed.get(_dist_name(info))
        if own is None or own <= _dist_version(info):
            continue
        out.write(f"build backend: {info.name} dropped, the environment has {own}\n")
        for line in (info / "RECORD").read_text().splitlines():
            path = backend / line.split(",")[0]
            if backend in path.resolve().parents and path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
    for directory, _, _ in sorted(os.walk(backend), key=lambda d: -len(d[0])):
        with contextlib.suppress(OSError):  # an empty package directory would still import
            os.rmdir(directory)


def _dist_name(info: Path) -> str:
    """The normalised project name of a ``NAME-VERSION.dist-info`` directory."""
    return re.sub(r"[-_.]+", "-", info.name.split("-")[0]).lower()


def _dist_version(info: Path) -> Version:
    try:
        return Version(info.name.removesuffix(".dist-info").split("-")[1])
    except (IndexError, InvalidVersion):
        return Version("0")


def copy_env(image: Path, destination: Path) -> None:
    """A private, writable copy of an image (the patch's reinstall writes into it): its
    directories made anew and its files hard-linked to the image's, but for those that
    pip and ``relocate`` rewrite in place (``bin/``, site-packages' ``.pth`` files),
    which are copied. A linked file stays the image's, root's and read-only to the
    sandbox, which gives no linked file to its uid: a run may replace it in its copy,
    never change it. A plain copy where links cannot be made (another filesystem)."""
    linked = subprocess.run(["cp", "-al", str(image), str(destination)], capture_output=True)
    if linked.returncode != 0:
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(image, destination, symlinks=True)
    else:
        pth_files = destination.glob("lib/*/site-packages/*.pth")
        for path in [*(destination / "bin").iterdir(), *pth_files]:
            if not path.is_symlink() and path.is_file():
                copy = path.with_name(f".{path.name}.copy")
                shutil.copy2(path, copy)
                os.replace(copy, path)
    relocate(destination, image, destination)


def relocate(venv: Path, old: Path, new: Path) -> None:
    """Point the scripts of a virtualenv moved from ``old`` to ``new`` at ``new`` (their
    shebangs name ``old``; a script would otherwise run the old environment's Python)."""
    old_shebang = f"#!{old}/bin/".encode()
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as handle:
            head = handle.read(len(old_shebang))
        if head == old_shebang:
            data = script.read_bytes()
            script.write_bytes(f"#!{new}/bin/".encode() + data[len(old_shebang) :])


def checkout(mirror: Path, commit: str, destination: Path) -> None:
    """The tree at ``commit``, without git metadata (nothing registered in the mirror)."""
    destination.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(
        ["git", "-C", str(mirror), "archive", commit], stdout=subprocess.PIPE
    )
    untar = subprocess.run(["tar", "-x", "-C", str(destination)], stdin=archive.stdout)
    if archive.wait() != 0 or untar.returncode != 0:
        raise EnvironmentBuildError(f"cannot check out {commit[:12]} from {mirror}")


def _has_build_editable(python: str, src: Path, env: dict[str, str]) -> bool:
    """Whether the tree's build backend, from ``BUILD_BACKEND``, has PEP 660's
    ``build_editable`` hook (pip's own test; a backend that does not import counts as
    having it: pip's install then reports the real error)."""
    backend = Path(python).parent.parent / BUILD_BACKEND
    probe = subprocess.run(
        [python, "-c", _EDITABLE_PROBE, build_backend(src)], cwd=src,
        env={**env, "PYTHONPATH": str(backend)}, capture_output=True,
    )  # fmt: skip
    return probe.returncode != 3


def build_backend(src: Path) -> str:
    """``[build-system] build-backend`` of the project (pip's default without one)."""
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        system = tomllib.loads((src / "pyproject.toml").read_text()).get("build-system", {})
        if system.get("build-backend"):
            return str(system["build-backend"])
    return "setuptools.build_meta:__legacy__"


def build_requirements(src: Path) -> list[str]:
    """``[build-system] requires`` of the project (setuptools and wheel without one)."""
    pyproject = src / "pyproject.toml"
    if pyproject.is_file():
        with contextlib.suppress(tomllib.TOMLDecodeError):
            requires = tomllib.loads(pyproject.read_text()).get("build-system", {}).get("requires")
            if requires:
                return list(requires)
    return ["setuptools", "wheel"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Across processes: two runs never build the same environment at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
