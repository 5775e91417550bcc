"""The local runner on real SWE-bench Lite instances, with no spec file.

A representative subset of the 20 Lite instances of pallets/flask and pytest-dev/pytest
(both src layout; Python 3.9 and 3.11; flask 2.0 and 2.3, pytest 4.4, 5.4 and 7.0; an
environment setup commit that lives only on a release branch; a base commit that needs
a dependency its setup commit dropped; a test patch that touches a config file): the
gold patch resolves and a patch that applies but fixes nothing does not (its failing
tests named; on pytest-7168 the unfixed bug crashes pytest, so the log holds no test
results). Environments are built from PyPI on first use and kept on disk between tests
and sessions (``MONKEYS_SWEBENCH_TEST_DIR``, default /var/tmp/lm-eval-monkeys-tests).
All 20 instances run in benchmarks/bench_swebench.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from swebench_real import BUNDLES, instances, local_runner, unrelated_patch

from lm_eval_monkeys.verifiers.swebench import specs as swebench_specs
from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner

SUBSET = (
    "pallets__flask-4045",  # flask 2.0, Python 3.9, requirements/dev.txt
    "pallets__flask-4992",  # flask 2.3, Python 3.11; tests/static/config.toml in the test patch
    "pytest-dev__pytest-5227",  # pytest 4.4
    "pytest-dev__pytest-7373",  # pytest 5.4, setup commit only on the 5.4.x branch
    "pytest-dev__pytest-7168",  # 5.4 too: its base commit needs wcwidth, the setup commit not
    "pytest-dev__pytest-8906",  # pytest 7.0
)

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or not BUNDLES.is_dir(),
    reason="needs bubblewrap and the repository bundles in ../shared/swebench_repos",
)


@pytest.fixture(scope="module")
def runner() -> Iterator[LocalRunner]:
    user_specs = os.environ.get(swebench_specs.SPECS_ENV)  # the harness's specs alone
    yield local_runner()
    if user_specs is not None:
        os.environ[swebench_specs.SPECS_ENV] = user_specs


@pytest.fixture(scope="module")
def lite(data_dir: Path) -> dict[str, dict]:
    return {r["instance_id"]: r for r in instances(data_dir)}


def test_all_lite_instances_of_the_bundles_are_known(lite: dict[str, dict]) -> None:
    assert len(lite) == 20
    assert sum(i.startswith("pallets") for i in lite) == 3


def test_config_files_are_not_test_directives(lite: dict[str, dict]) -> None:
    instance = lite["pallets__flask-4992"]
    assert "tests/static/config.toml" in instance["test_patch"]
    assert swebench_specs.test_directives(instance["repo"], instance["test_patch"]) == [
        "tests/test_config.py"
    ]


@pytest.mark.parametrize("instance_id", SUBSET)
def test_gold_resolves_and_unrelated_patch_does_not(
    runner: LocalRunner, lite: dict[str, dict], instance_id: str
) -> None:
    instance = lite[instance_id]
    gold = runner.evaluate(instance, instance["patch"])
    assert (gold["resolved"], gold["status"]) == (True, "resolved"), gold
    assert gold["install_exit"] == 0
    unrelated = unrelated_patch(instance, runner.mirror(instance["repo"]))
    result = runner.evaluate(instance, unrelated)
    assert not result["resolved"], result
    if instance_id == "pytest-dev__pytest-7168":  # the unfixed bug crashes pytest itself
        assert result["status"] == "no_test_results", result
    else:  # the bug is still there
        assert (result["status"], bool(result["fail_to_pass_failed"])) == ("tests_failed", True)
    assert Path(result["log"]).is_file()
    # The environment runs the harness's Python version for this (repo, version).
    plan = runner.plan(instance)
    assert plan.interpreter.version.startswith(plan.spec.python + ".")
    image = runner.environments.get(plan, runner.mirror(instance["repo"]))
    assert f"version = {plan.interpreter.version}" in (image / "pyvenv.cfg").read_text()
