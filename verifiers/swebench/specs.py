"""How SWE-bench's harness sets up and tests each (repository, version), from its own data.

The per-version specs (Python version, requirements, pinned packages, ``pre_install``,
``install``, test command) are read from the installed ``swebench`` where that release
keeps them (4.x: ``swebench.harness.constants.MAP_REPO_VERSION_TO_SPECS``), else from
``specs.json`` beside this module, generated from the swebench 4.1.0 wheel by
``python -m lm_eval_monkeys.verifiers.swebench.specs WHEEL_DIR`` (provenance inside).
Log parsers and the test-file filter always come from the installed swebench. Where a
harness spec no longer builds a working environment today (a dependency without an upper
bound whose new release broke the old tree), ``spec_fixes.json`` beside this module
appends what it needs, with the reason. A user's JSON file (``MONKEYS_SWEBENCH_SPECS``)
overrides fields of any (repo, version), fixes included.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import runpy
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError

SPECS_ENV = "MONKEYS_SWEBENCH_SPECS"  # JSON file overriding fields per (repo, version)
NETWORK_ENV = "MONKEYS_SWEBENCH_NETWORK"  # comma-separated repos whose tests may use it
BUNDLED = Path(__file__).with_name("specs.json")
FIXES = Path(__file__).with_name("spec_fixes.json")
_DIFF_FILE = re.compile(r"^diff --git a/.* b/(.*)$", re.M)


@dataclass(frozen=True)
class RepoSpec:
    """The harness's setup of one (repo, version), plus what this runner adds.

    ``packages`` is the harness's field: ``requirements.txt`` (read from the repository at
    ``environment_setup_commit``, paths in ``requirements_paths``), ``environment.yml``
    (conda's, paths in ``requirements_paths`` too; built from PyPI counterparts, see
    ``conda_specs``) or a list of packages. ``conda_without`` (the user's only): conda
    packages with no PyPI counterpart that may be left out.
    """

    python: str
    test_cmd: str
    log_parser: str
    install: str = ""
    packages: str = ""
    pip_packages: tuple[str, ...] = ()
    pre_install: tuple[str, ...] = ()
    eval_commands: tuple[str, ...] = ()
    requirements_paths: tuple[str, ...] = ()
    conda_without: tuple[str, ...] = ()
    network: bool = False
    timeout_s: float = 1800.0
    source: str = field(default="", compare=False)  # where the spec came from, for messages

    def digest(self) -> str:
        """Everything in the spec that decides a verdict."""
        fields_ = {k: v for k, v in asdict(self).items() if k != "source"}
        return short_digest(json.dumps(fields_, sort_keys=True))


@cache
def harness_specs() -> tuple[dict[str, Any], str]:
    """``({"specs": {repo: {version: dict}}, "requirements_paths": {repo: [...]},
    "env_yml_paths": {repo: [...]}}, source)``."""
    try:
        from swebench.harness import constants  # type: ignore[import-untyped]

        return {
            "specs": constants.MAP_REPO_VERSION_TO_SPECS,
            "requirements_paths": constants.MAP_REPO_TO_REQS_PATHS,
            "env_yml_paths": constants.MAP_REPO_TO_ENV_YML_PATHS,
        }, f"swebench {_swebench_version()}"
    except (ImportError, AttributeError):  # swebench 5 no longer ships per-version specs
        data = json.loads(BUNDLED.read_text())
        return data, f"{BUNDLED.name} ({data['provenance']['source']})"


@cache
def spec_fixes() -> dict[str, dict[str, dict[str, Any]]]:
    """``{repo: {version: {"append": {field: [...]}, "set": {field: value},
    "why": key of "reasons"}}}``."""
    return dict(json.loads(FIXES.read_text())["fixes"])


def _swebench_version() -> str:
    from importlib.metadata import version

    return version("swebench")


def log_parser_name(repo: str) -> str:
    from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY

    parser = MAP_REPO_TO_PARSER_PY.get(repo)
    if parser is None:
        raise MonkeysError(
            f"swebench has no log parser for {repo}; name one in {SPECS_ENV} "
            '({"' + repo + '": {"default": {"log_parser": "parse_log_pytest", ...}}})'
        )
    return str(parser.__name__)


def spec_for(repo: str, version: str, user_file: str | None = None) -> RepoSpec:
    """The harness's spec of (repo, version) with the user's overrides applied."""
    data, source = harness_specs()
    user = _user_specs(user_file if user_file is not None else os.environ.get(SPECS_ENV))
    overrides = {**user.get(repo, {}).get("default", {}), **user.get(repo, {}).get(version, {})}
    harness = data["specs"].get(repo, {}).get(version)
    if harness is None and not overrides:
        raise MonkeysError(
            f"no SWE-bench spec for {repo} {version} in {source}; add one to the JSON file "
            f"named by {SPECS_ENV} "
            '({"' + repo + '": {"' + version + '": {"python": "3.9", "test_cmd": "pytest -rA"}}})'
        )
    base = dict(harness or {})
    paths = "env_yml_paths" if base.get("packages") == "environment.yml" else "requirements_paths"
    fields_ = {
        "python": str(base.get("python", "3")),
        "test_cmd": base.get("test_cmd", "pytest -rA"),
        "log_parser": overrides.get("log_parser") or log_parser_name(repo),
        "install": base.get("install", ""),
        "packages": base.get("packages", ""),
        "pip_packages": tuple(base.get("pip_packages", ())),
        "pre_install": tuple(base.get("pre_install", ())),
        "eval_commands": tuple(base.get("eval_commands", ())),
        "requirements_paths": tuple(data[paths].get(repo, ())),
        "network": repo in _network_repos(),
        "source": source + (f" + {SPECS_ENV}" if overrides else ""),
    }
    fix = spec_fixes().get(repo, {}).get(version) if harness is not None else None
    if fix:
        for name, extra in fix.get("append", {}).items():
            fields_[name] = (*fields_[name], *extra)
        fields_.update(fix.get("set", {}))
        fields_["source"] += f" + {FIXES.name}"
    spec = RepoSpec(**fields_)
    try:
        return replace(spec, **{k: _typed(spec, k, v) for k, v in overrides.items()})
    except TypeError as err:
        known = ", ".join(f.name for f in fields(RepoSpec) if f.name != "source")
        raise MonkeysError(f"{SPECS_ENV}: {err} for {repo}; fields are {known}") from None


def _typed(spec: RepoSpec, name: str, value: Any) -> Any:
    return tuple(value) if isinstance(getattr(spec, name, None), tuple) else value


def _user_specs(path: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    if not path:
        return {}
    try:
        user = json.loads(Path(path).read_text())
        if not all(isinstance(v, dict) for versions in user.values() for v in versions.values()):
            raise ValueError("every version must map to an object of fields")
    except (OSError, ValueError, AttributeError) as err:
        raise MonkeysError(
            f"{SPECS_ENV}={path}: not a readable spec file ({err}); it must be JSON like "
            '{"owner/repo": {"default": {"test_cmd": "pytest -rA"}, "3.0": {"python": "3.9"}}}'
        ) from None
    return user


def _network_repos() -> set[str]:
    return {r.strip() for r in os.environ.get(NETWORK_ENV, "").split(",") if r.strip()}


def test_files(test_patch: str) -> list[str]:
    """The test patch's files that the harness passes to the test command, filtered by
    swebench's own list of non-test extensions (data and config files are not tests)."""
    from swebench.harness.constants import NON_TEST_EXTS

    files = dict.fromkeys(_DIFF_FILE.findall(test_patch))
    return [f for f in files if not any(f.endswith(ext) for ext in NON_TEST_EXTS)]


def patched_files(patch: str) -> list[str]:
    """Every file a patch touches (the harness resets all of the test patch's files)."""
    return list(dict.fromkeys(_DIFF_FILE.findall(patch)))


def test_directives(repo: str, test_patch: str) -> list[str]:
    """The test command's arguments, as the harness derives them: test files, or for
    Django dotted module names under ``tests/`` (its runtests.py takes modules)."""
    files = test_files(test_patch)
    if repo != "django/django":
        return files
    return [f.removesuffix(".py").removeprefix("tests/").replace("/", ".") for f in files]


def requirements(mirror: Path, commit: str, spec: RepoSpec) -> str:
    """The requirements text the harness installs for ``packages: requirements.txt``: the
    first of the repo's requirements files present at ``commit``, ``-r`` includes inlined,
    editable/self references dropped."""
    for path in spec.requirements_paths:
        text = file_at(mirror, commit, path)
        if text is None:
            continue
        lines = []
        for line in text.splitlines():
            if line.strip().startswith("-r"):
                included = str(Path(path).parent / line.strip()[2:].strip())
                lines += [x for x in (file_at(mirror, commit, included) or "").splitlines()]
            else:
                lines.append(line)
        return "\n".join(x for x in lines if not x.strip().startswith(("-e .", "#", ".[test")))
    raise MonkeysError(
        f"{mirror.name} at {commit[:12]} has none of {list(spec.requirements_paths)}; fetch "
        f"the mirror (git -C {mirror} fetch --all) or set packages in {SPECS_ENV}"
    )


def file_at(mirror: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit`` in the mirror (None where it has no such file)."""
    done = subprocess.run(
        ["git", "-C", str(mirror), "show", f"{commit}:{os.path.normpath(path)}"],
        capture_output=True,
        text=True,
        errors="replace",
    )
    return done.stdout if done.returncode == 0 else None


def generate(wheel_dir: Path, wheel_name: str, sha256: str) -> dict[str, Any]:
    """The bundled file's content from an unpacked swebench 4.x wheel (Python repos)."""
    constants = wheel_dir / "swebench" / "harness" / "constants" / "python.py"
    module = runpy.run_path(str(constants))
    return {
        "provenance": {
            "source": wheel_name,
            "sha256": sha256,
            "module": "swebench/harness/constants/python.py",
            "names": [
                "MAP_REPO_VERSION_TO_SPECS_PY",
                "MAP_REPO_TO_REQS_PATHS",
                "MAP_REPO_TO_ENV_YML_PATHS",
            ],
            "regenerate": "pip download swebench==4.1.0 --no-deps && unzip it to DIR && "
            "python -m lm_eval_monkeys.verifiers.swebench.specs DIR WHEEL",
        },
        "specs": module["MAP_REPO_VERSION_TO_SPECS_PY"],
        "requirements_paths": module["MAP_REPO_TO_REQS_PATHS"],
        "env_yml_paths": module["MAP_REPO_TO_ENV_YML_PATHS"],
    }


def main(argv: list[str]) -> None:
    wheel_dir, wheel = Path(argv[0]), Path(argv[1])
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    BUNDLED.write_text(json.dumps(generate(wheel_dir, wheel.name, sha), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
