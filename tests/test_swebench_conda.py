"""conda specs (xarray's, matplotlib's ``environment.yml``) built from PyPI, without conda.

The toy repository of tests/swebench_toy.py under the name ``acme/condacalc``, with an
``environment.yml`` at its setup commit naming a package whose PyPI name is its conda
name (iniconfig), one whose PyPI name differs (conda's msgpack-python is PyPI's msgpack),
one with no PyPI counterpart (cdms2) and a ``pip:`` section (pytest). Builds are real pip
installs from PyPI into a real virtualenv; the tests run in the bubblewrap sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from swebench_toy import GOLD, SPEC, WRONG, environment, git, make_toy

from lm_eval_monkeys.verifiers.swebench.conda_specs import conda_packages, pip_requirement
from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner

ENVIRONMENT = """name: testbed
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - iniconfig>=2
  - conda-forge::msgpack-python=1.0
  - cdms2  # CDAT's: conda only
  - pip:
    - pytest
"""
CONDA_SPEC = {**SPEC, "packages": "environment.yml", "requirements_paths": ["ci/environment.yml"],
              "pip_packages": ["iniconfig==2.0.0"]}  # fmt: skip


def test_conda_dependencies_read_as_pip_requirements() -> None:
    """conda's version syntax, channels, build strings and renamed packages; the
    interpreter and pip are the environment's own; nothing else is left out unnamed."""
    cases = {
        "numpy": "numpy",
        "numpy>=1.21": "numpy>=1.21",
        "numpy=1.21": "numpy==1.21.*",
        "numpy 1.21 py39_0": "numpy==1.21.*",
        "numpy=1.21.2=py39_0": "numpy==1.21.2.*",
        "numpy==1.21": "numpy==1.21",
        "sphinx>=1.8.1,!=2.0.0": "sphinx>=1.8.1,!=2.0.0",
        "nbconvert[execute]!=6.0.0": "nbconvert[execute]!=6.0.0",
        "conda-forge::iris": "scitools-iris",  # PyPI's "iris" is another project
        "matplotlib-base >=3.1": "matplotlib>=3.1",
    }
    assert {dependency: pip_requirement(dependency)[1] for dependency in cases} == cases
    packages = conda_packages(ENVIRONMENT, "environment.yml")
    assert packages.requirements == (
        "iniconfig>=2",
        "msgpack==1.0.*  # conda: msgpack-python",
        "pytest",
    )
    assert list(packages.missing) == ["cdms2"] and packages.left_out == ()
    assert conda_packages(ENVIRONMENT, "e", without=("cdms2",)).left_out == ("cdms2",)


def test_conda_without_leaves_out_a_package_that_has_a_counterpart() -> None:
    """matplotlib's pygobject and wxpython have PyPI counterparts that build only from
    source against GTK: the user may leave such a package out too, and it is said so."""
    packages = conda_packages(ENVIRONMENT, "e", without=("cdms2", "msgpack-python"))
    assert packages.requirements == ("iniconfig>=2", "pytest")
    assert packages.left_out == ("msgpack-python", "cdms2") and not packages.missing


@pytest.fixture(scope="module")
def conda_toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """acme/condacalc: the toy, its setup commit adding ci/environment.yml."""
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap (README install command)")
    root = tmp_path_factory.mktemp("conda")
    sandbox_dir = Path(tempfile.mkdtemp(prefix="monkeys-conda-", dir="/var/tmp"))
    sandbox_dir.chmod(0o755)
    instance, env = make_toy(root, sandbox_dir)
    mirror = root / "mirrors" / "acme__calc"
    (mirror / "ci").mkdir()
    (mirror / "ci" / "environment.yml").write_text(ENVIRONMENT)
    git(mirror, "add", "ci")
    git(mirror, "commit", "-qm", "environment.yml")
    (root / "mirrors" / "acme__condacalc").symlink_to(mirror)
    instance = {**instance, "repo": "acme/condacalc", "instance_id": "acme__condacalc-1",
                "environment_setup_commit": git(mirror, "rev-parse", "HEAD")}  # fmt: skip
    with environment(env):
        yield {"instance": instance, "root": root, "env": env}
    shutil.rmtree(sandbox_dir, ignore_errors=True)


def verify(toy: dict[str, Any], spec: dict[str, Any], patches: list[str]) -> list[dict]:
    """``lm-eval-monkeys verify`` of the patches with ``spec`` for acme/condacalc."""
    specs, source = toy["root"] / "specs.json", toy["root"] / "in.jsonl"
    specs.write_text(json.dumps({"acme/condacalc": {"1.0": spec}}))
    output = toy["root"] / "out.jsonl"
    output.unlink(missing_ok=True)
    source.write_text("".join(json.dumps({"doc": toy["instance"], "completion": patch}) + "\n"
                              for patch in patches))  # fmt: skip
    done = run_cli("verify", "--task", "monkeys_swebench_lite", "--input", str(source),
                   "--output", str(output), "--verifier", "swebench:local,gold=0",
                   env={**toy["env"], "MONKEYS_SWEBENCH_SPECS": str(specs)})  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return [json.loads(line) for line in output.open()]


def test_a_package_without_pypi_counterpart_is_named_never_dropped(conda_toy: dict) -> None:
    """The default: the instance is env_failed naming cdms2 and the way to leave it out;
    nothing is built (a build that dropped it would resolve the gold patch)."""
    [verdict] = verify(conda_toy, CONDA_SPEC, [GOLD])
    assert verdict["status"] == "env_failed", verdict
    reason = verdict["details"]["reason"]
    assert "no PyPI counterpart: cdms2" in reason
    assert '"conda_without": ["cdms2"]' in reason
    assert "iniconfig" not in reason and "msgpack" not in reason
    envs = Path(conda_toy["env"]["MONKEYS_SANDBOX_DIR"]) / "swebench" / "envs"
    assert not list(envs.glob("acme__condacalc*"))


def test_the_environment_yml_is_built_from_pypi_counterparts(
    conda_toy: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With cdms2 left out by the user's spec: every other package is installed under its
    PyPI name (msgpack for msgpack-python), the pins resolved with them; the gold patch
    resolves, a wrong one does not, and each verdict says what was left out."""
    spec = {**CONDA_SPEC, "conda_without": ["cdms2"]}
    gold, wrong = verify(conda_toy, spec, [GOLD, WRONG])
    assert (gold["status"], wrong["status"]) == ("resolved", "tests_failed"), gold["details"]
    assert gold["details"]["conda_left_out"] == ["cdms2"]
    assert wrong["details"]["conda_left_out"] == ["cdms2"]
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(conda_toy["root"] / "specs.json"))
    runner = LocalRunner()
    plan = runner.plan(conda_toy["instance"])
    image = runner.environments.get(plan, runner.mirror("acme/condacalc"))
    frozen = subprocess.run([str(image / "bin" / "python"), "-m", "pip", "freeze"],
                            env={**os.environ, **plan.interpreter.env()},
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    installed = {line.split("==")[0].lower() for line in frozen.splitlines()}
    assert {"iniconfig", "msgpack", "pytest"} <= installed
    assert "iniconfig==2.0.0" in frozen  # the spec's pin, resolved together
    assert frozen.count("msgpack==1.0.") == 1


def test_a_conda_name_pypi_lacks_fails_the_build_naming_it(conda_toy: dict) -> None:
    """A conda name this runner does not know is taken as the PyPI name; where PyPI has
    none, the verdict names it (not a bare "exit 1")."""
    mirror = conda_toy["root"] / "mirrors" / "acme__calc"
    unknown = ENVIRONMENT.replace("  - cdms2", "  - acme-conda-only-package-7c1e")
    (mirror / "ci" / "environment.yml").write_text(unknown)
    git(mirror, "commit", "-qam", "an unknown conda package")
    setup = git(mirror, "rev-parse", "HEAD")
    toy = {**conda_toy, "instance": {**conda_toy["instance"], "environment_setup_commit": setup}}
    [verdict] = verify(toy, CONDA_SPEC, [GOLD])
    assert verdict["status"] == "env_failed", verdict
    assert "failed at requirements" in verdict["details"]["reason"]
    assert (
        "the index has no distribution acme-conda-only-package-7c1e"
        in (verdict["details"]["reason"])
    )


def test_a_pre_install_that_changes_system_packages_is_refused(conda_toy: dict) -> None:
    """matplotlib's pre_install runs apt-get upgrade and installs TeX Live, as root in the
    harness's image: here that would change the host. Refused before any step runs, in
    the same reason as any conda package without a counterpart."""
    marker = conda_toy["root"] / "pre_install-ran"
    upgrade = "apt-get -y update && apt-get -y upgrade"
    spec = {**CONDA_SPEC, "conda_without": ["cdms2"], "pre_install": [f"touch {marker}", upgrade]}
    [verdict] = verify(conda_toy, spec, [GOLD])
    assert verdict["status"] == "env_failed", verdict
    assert "pre_install changes the system's packages" in verdict["details"]["reason"]
    assert not marker.exists()
    both = {**spec, "conda_without": []}  # matplotlib's case: one reason names both
    [verdict] = verify(conda_toy, both, [GOLD])
    assert "no PyPI counterpart: cdms2" in verdict["details"]["reason"]
    assert "pre_install changes the system's packages" in verdict["details"]["reason"]
    assert not marker.exists()
