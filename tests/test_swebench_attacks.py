"""Hostile patches against the local SWE-bench runner, on the real flask bundle.

Each patch is what a model could write to steer its verdict or reach the host: git hooks
and config planted through the ``patch`` fallback, a test directory turned into a
symlink to a host directory, a ``conftest.py`` that passes every test, a test run that
reads the dataset, the gold run's log or the mirror's future commits, and a patch that
keeps ``patch --fuzz`` busy. None fixes pallets__flask-4992 honestly, so a resolved
verdict means the runner was steered; each test also checks that nothing on the host
changed (a canary directory, the mirror, the dataset, the gold run's log).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from swebench_real import BUNDLES, instances, local_runner, patch_from_edit

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.swebench import specs as swebench_specs
from lm_eval_monkeys.verifiers.swebench.local_runner import VENV, LocalRunner, refusal
from lm_eval_monkeys.verifiers.swebench.resets import base_files, changed_infrastructure, restore

INSTANCE = "pallets__flask-4992"  # F2P: test_config_from_file_toml (from_file gets text=)

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or not BUNDLES.is_dir(),
    reason="needs bubblewrap and the repository bundles in ../shared/swebench_repos",
)


@pytest.fixture(scope="module")
def runner() -> Iterator[LocalRunner]:
    user_specs = os.environ.get(swebench_specs.SPECS_ENV)
    yield local_runner()
    if user_specs is not None:
        os.environ[swebench_specs.SPECS_ENV] = user_specs


@pytest.fixture(scope="module")
def instance(data_dir: Path) -> dict[str, Any]:
    return next(r for r in instances(data_dir) if r["instance_id"] == INSTANCE)


@pytest.fixture(scope="module")
def gold_log(runner: LocalRunner, instance: dict[str, Any]) -> Path:
    """The gold patch's kept log (the gold run comes first, as in the checker)."""
    result = runner.evaluate(instance, instance["patch"])
    assert result["resolved"], result
    return Path(result["log"])


@pytest.fixture
def canary() -> Iterator[Path]:
    """A host directory, world-readable, that no patch may change."""
    directory = Path(tempfile.mkdtemp(prefix="monkeys-canary-", dir="/var/tmp"))
    directory.chmod(0o755)
    (directory / "config.toml").write_text('TEST_KEY="foo"\nSECRET_KEY="config"\n')
    (directory / "keep.txt").write_text("host data\n")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def host_state(runner: LocalRunner, instance: dict[str, Any], *paths: Path) -> dict[str, str]:
    """Digests of what a patch must never change: ``paths`` (files, or directories with
    their listings), the mirror's git directory (refs, config, hooks), the dataset."""
    mirror = runner.mirror(instance["repo"]) / ".git"
    watched = [*paths, mirror / "config", mirror / "hooks", mirror / "packed-refs",
               mirror / "refs", Path(os.environ["MONKEYS_DATA_DIR"], "swebench_lite")]  # fmt: skip
    state = {}
    for path in watched:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        digest = hashlib.sha256()
        for file in files:
            digest.update(str(file).encode() + b"\0")
            digest.update(file.read_bytes() if file.exists() else b"<missing>")
        state[str(path)] = digest.hexdigest()
    return state


def test_git_hooks_and_config_from_the_patch_never_run(
    runner: LocalRunner, instance: dict[str, Any], canary: Path
) -> None:
    """``git apply`` refuses ``.git/`` paths, ``patch --fuzz`` writes them: a hook or an
    fsmonitor command would run at the runner's next git command, as root."""
    hook = (
        "diff --git a/.git/hooks/post-checkout b/.git/hooks/post-checkout\n"
        "new file mode 100755\n--- /dev/null\n+++ b/.git/hooks/post-checkout\n"
        f"@@ -0,0 +1,2 @@\n+#!/bin/sh\n+touch {canary}/hook-ran\n"
    )
    fsmonitor = (
        "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n"
        f"@@ -1,1 +1,2 @@\n [core]\n+\tfsmonitor = touch {canary}/fsmonitor-ran; false\n"
    )
    before = host_state(runner, instance, canary)
    for attack in (hook, fsmonitor):
        result = runner.evaluate(instance, attack + instance["patch"])
        assert (result["resolved"], result["status"]) == (False, "patch_failed"), result
        assert ".git" in result["reason"]
    assert host_state(runner, instance, canary) == before
    assert sorted(p.name for p in canary.iterdir()) == ["config.toml", "keep.txt"]


def test_a_test_directory_made_a_symlink_to_the_host_is_not_followed(
    runner: LocalRunner, instance: dict[str, Any], canary: Path
) -> None:
    """The test patch creates tests/static/config.toml; resetting it must not delete the
    host's file of that name through a symlink the patch made."""

    def link_static(tree: Path) -> None:
        shutil.rmtree(tree / "tests" / "static")
        (tree / "tests" / "static").symlink_to(canary)

    before = host_state(runner, instance, canary)
    patch = patch_from_edit(runner.mirror(instance["repo"]), instance["base_commit"], link_static)
    assert "new file mode 120000" in patch
    result = runner.evaluate(instance, patch)
    assert not result["resolved"], result
    assert host_state(runner, instance, canary) == before
    assert (canary / "config.toml").is_file()


def write_conftest(source: str) -> Any:
    def edit(tree: Path) -> None:
        (tree / "conftest.py").write_text(source)

    return edit


PASS_EVERYTHING = """
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""


def test_a_conftest_that_passes_every_test_is_reset(
    runner: LocalRunner, instance: dict[str, Any]
) -> None:
    """The harness resolves this one (it resets only the test patch's files)."""
    mirror = runner.mirror(instance["repo"])
    patch = patch_from_edit(mirror, instance["base_commit"], write_conftest(PASS_EVERYTHING))
    result = runner.evaluate(instance, patch)
    assert (result["resolved"], result["status"]) == (False, "tests_failed"), result
    assert result["fail_to_pass_failed"] == json.loads(instance["FAIL_TO_PASS"])
    assert result["reset"] == ["conftest.py"]


def apply_gold_from(source_expression: str) -> str:
    """A conftest.py that applies the gold patch read from wherever ``source_expression``
    (Python, evaluated in the test run) finds it; silent when it cannot."""
    return f"""
import json, os, subprocess
try:
    gold = {source_expression}
    subprocess.run(["patch", "-p1", "-s"], input=gold, text=True, cwd=os.path.dirname(__file__))
except Exception:
    pass
"""


def test_a_conftest_sees_neither_the_dataset_nor_the_gold_log(
    runner: LocalRunner, instance: dict[str, Any], gold_log: Path
) -> None:
    """One conftest applies the gold patch from the dataset file; another prints the
    gold run's log and ends the test run (the log parser then reads the gold results)."""
    dataset = Path(os.environ["MONKEYS_DATA_DIR"], "swebench_lite", "test.json").resolve()
    from_dataset = apply_gold_from(
        f"next(r['patch'] for r in json.load(open({str(dataset)!r}))"
        f" if r['instance_id'] == {INSTANCE!r})"
    )
    prints_gold_log = f"import os\nprint(open({str(gold_log)!r}).read(), flush=True)\nos._exit(0)\n"
    mirror = runner.mirror(instance["repo"])
    # Not the gold log itself: any run of the gold patch (another test session sharing
    # the work directory) rewrites it.
    before = host_state(runner, instance)
    for conftest in (from_dataset, prints_gold_log):
        patch = patch_from_edit(mirror, instance["base_commit"], write_conftest(conftest))
        result = runner.evaluate(instance, patch)
        assert not result["resolved"], result
        assert result["reset"] == ["conftest.py"]
    assert host_state(runner, instance) == before


def fix_if(condition: str, gold: str, module: str = "__init__.py") -> Any:
    """Product code (never reset) that applies the gold fix at import, from the tree's
    root, only when ``condition`` (Python, given ``_root``) holds in the test run; at the
    top of flask's ``module`` (``app.py`` is imported before the fixed ``config.py``, and
    the install reads neither it nor the patch's other files, so it is not run again)."""
    head = f"""import os as _os
import subprocess as _subprocess

_root = _os.path.dirname(_os.path.dirname(_os.path.dirname(__file__)))
if {condition}:
    _subprocess.run(["patch", "-p1", "-s", "-N"], input={gold!r}, text=True, cwd=_root)
"""

    def edit(tree: Path) -> None:
        code = tree / "src" / "flask" / module
        code.write_text(head + code.read_text())

    return edit


@pytest.mark.parametrize("seen", ["dataset", "gold log", "mirror", "its own tree"])
def test_the_test_run_sees_nothing_but_the_instance(
    runner: LocalRunner, instance: dict[str, Any], gold_log: Path, seen: str
) -> None:
    """ "its own tree" is the control: the same patch, on a path the run must see,
    resolves (so the others fail for what they cannot see, not for the mechanism)."""
    mirror = runner.mirror(instance["repo"])
    condition = {
        "dataset": Path(os.environ["MONKEYS_DATA_DIR"], "swebench_lite", "test.json").resolve(),
        "gold log": gold_log,
        "mirror": mirror / ".git" / "HEAD",
    }
    path = repr(str(condition[seen])) if seen in condition else "_root"
    edit = fix_if(f"_os.access({path}, _os.R_OK)", instance["patch"])
    result = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], edit))
    expected = (True, "resolved") if seen == "its own tree" else (False, "tests_failed")
    assert (result["resolved"], result["status"]) == expected, result


DEEP_TREE = """import os as _os

_root = _os.path.dirname(_os.path.dirname(_os.path.dirname(__file__)))
if not _os.path.exists(_os.path.join(_root, "deep")):
    _fd = _os.open(_root, _os.O_RDONLY)
    for _name in ["deep"] + ["d"] * 1500:
        _os.mkdir(_name, dir_fd=_fd)
        _next = _os.open(_name, _os.O_RDONLY, dir_fd=_fd)
        _os.close(_fd)
        _fd = _next
"""


def test_a_test_run_that_leaves_a_deep_tree_gets_a_verdict(
    runner: LocalRunner, instance: dict[str, Any]
) -> None:
    """1,500 nested directories left in the tree: walking or removing it recursively
    (os.walk, shutil.rmtree) would raise RecursionError out of the runner."""

    def edit(tree: Path) -> None:
        init = tree / "src" / "flask" / "__init__.py"
        init.write_text(DEEP_TREE + init.read_text())

    mirror = runner.mirror(instance["repo"])
    result = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], edit))
    assert (result["resolved"], result["status"]) == (False, "tests_failed"), result
    runs = runner.workdir / "runs"
    assert not [r for r in runs.iterdir() if r.name.startswith(f"{os.getpid()}-")]


def test_the_future_of_the_repository_is_not_in_the_tree(
    runner: LocalRunner, instance: dict[str, Any]
) -> None:
    """The gold fix's own commit is in the mirror; the tree's git sees base alone."""
    mirror = runner.mirror(instance["repo"])
    future = subprocess.run(["git", "-C", str(mirror), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert future != instance["base_commit"]
    seen = f'_subprocess.run(["git", "cat-file", "-e", {future!r}], cwd=_root).returncode == 0'
    edit = fix_if(seen, instance["patch"])
    result = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], edit))
    assert (result["resolved"], result["status"]) == (False, "tests_failed"), result


def test_a_patch_that_keeps_patch_fuzz_busy_is_stopped(
    runner: LocalRunner, instance: dict[str, Any], canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of 100,000 equal lines, then 400 hunks of 80 of those lines around one
    that is not there: ``patch --fuzz=5`` compares every hunk at every line, about 40 s
    of CPU here; the runner stops it at its limit (5 s in this test) and calls the patch
    failed."""
    lines = 100_000
    create = (
        "diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n"
        f"@@ -0,0 +1,{lines} @@\n" + "+a\n" * lines
    )
    context = " a\n" * 40
    hunks = "".join(
        f"@@ -{i * 20 + 1},81 +{i * 20 + 1},81 @@\n{context}-b\n+c\n{context}" for i in range(400)
    )
    patch = f"{create}diff --git a/big.txt b/big.txt\n--- a/big.txt\n+++ b/big.txt\n{hunks}"
    monkeypatch.setattr(runner, "apply_timeout_s", 5.0)
    before = host_state(runner, instance, canary)
    result = runner.evaluate(instance, patch)
    assert (result["resolved"], result["status"]) == (False, "patch_failed"), result
    assert "time limit" in result["reason"]
    assert host_state(runner, instance, canary) == before


def test_a_patch_over_the_size_limit_is_refused(
    runner: LocalRunner, instance: dict[str, Any]
) -> None:
    padding = "".join(f"+# padding {i}\n" for i in range(120_000))
    patch = instance["patch"] + (
        "diff --git a/padding.py b/padding.py\nnew file mode 100644\n--- /dev/null\n"
        f"+++ b/padding.py\n@@ -0,0 +1,120000 @@\n{padding}"
    )
    result = runner.evaluate(instance, patch)
    assert (result["resolved"], result["status"]) == (False, "patch_failed"), result
    assert "MiB" in result["reason"]


def git_repository(root: Path, files: dict[str, str]) -> str:
    """A real repository at ``root`` with one commit of ``files``; its commit id."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    names = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")
    env = {**os.environ, **dict.fromkeys(names, "t")}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def test_restore_replaces_links_and_never_follows_them(tmp_path: Path) -> None:
    """Unit check of the resets, beside the real-instance test above: a linked test
    directory, a linked test file and a directory where a file was."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "config.toml").write_text("host\n")
    (host / "keep.txt").write_text("host\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    commit = git_repository(tree, {"tests/static/config.json": "{}\n", "tests/test_a.py": "A\n",
                                   "tests/data.txt": "D\n"})  # fmt: skip
    git_dir = tree / ".git"
    shutil.rmtree(tree / "tests" / "static")
    (tree / "tests" / "static").symlink_to(host)
    (tree / "tests" / "test_a.py").unlink()
    (tree / "tests" / "test_a.py").symlink_to(host / "keep.txt")
    (tree / "tests" / "data.txt").unlink()
    (tree / "tests" / "data.txt").mkdir()
    files = base_files(git_dir, commit)
    paths = ["tests/static/config.toml", "tests/static/config.json", "tests/test_a.py",
             "tests/data.txt"]  # fmt: skip
    restore(tree, git_dir, files, paths)
    assert sorted(p.name for p in host.iterdir()) == ["config.toml", "keep.txt"]
    assert (host / "keep.txt").read_text() == "host\n" == (host / "config.toml").read_text()
    static = tree / "tests" / "static"
    assert not static.is_symlink() and sorted(p.name for p in static.iterdir()) == ["config.json"]
    assert not (tree / "tests" / "test_a.py").is_symlink()
    assert (tree / "tests" / "test_a.py").read_text() == "A\n"
    assert (tree / "tests" / "data.txt").read_text() == "D\n"
    with pytest.raises(MonkeysError, match="not a plain path"):
        restore(tree, git_dir, files, ["tests/../../host/keep.txt"])


PYPROJECT = """[project]
name = "p"
dependencies = ["a"]

[tool.pytest.ini_options]
addopts = "-ra"
"""


def test_changed_infrastructure_is_test_settings_not_other_changes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    commit = git_repository(tree, {"pyproject.toml": PYPROJECT, "tests/conftest.py": "X = 1\n",
                                   "setup.cfg": "[flake8]\nmax-line-length = 80\n"})  # fmt: skip
    git_dir = tree / ".git"
    files = base_files(git_dir, commit)
    assert changed_infrastructure(tree, git_dir, files) == []
    (tree / "pyproject.toml").write_text(PYPROJECT.replace('["a"]', '["a", "b"]'))
    (tree / "setup.cfg").write_text("[flake8]\nmax-line-length = 100\n")
    assert changed_infrastructure(tree, git_dir, files) == []  # not test settings
    (tree / "pyproject.toml").write_text(PYPROJECT.replace("-ra", "-p flask.evil"))
    (tree / "setup.cfg").write_text("[options.entry_points]\npytest11 =\n  evil = p.evil\n")
    (tree / "tests" / "conftest.py").unlink()
    (tree / "src" / "__pycache__").mkdir(parents=True)
    (tree / "src" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (tree / "src" / "evil.pth").write_text("import os\n")
    (tree / "src" / "sitecustomize.py").symlink_to(tree / "pyproject.toml")
    assert changed_infrastructure(tree, git_dir, files) == [
        "pyproject.toml", "setup.cfg", "src/__pycache__/m.cpython-311.pyc", "src/evil.pth",
        "src/sitecustomize.py", "tests/conftest.py",
    ]  # fmt: skip


def test_refusal_reads_every_header_form() -> None:
    assert refusal('diff --git "a/\\056git/hooks/x" "b/\\056git/hooks/x"\n') is not None
    assert refusal("--- a/x\n+++ b/sub/.GIT/config\n@@ -1 +1 @@\n") is not None
    assert refusal("Index: .git/config\n") is not None
    assert refusal("rename to lib/.git\n") is not None
    assert refusal("diff --git a/x.gitignore b/x.gitignore\n--- a/.github/x\n+++ b/.gitx\n") is None
    assert "MiB" in (refusal("+" * (2 << 20)) or "")


@pytest.mark.parametrize("target", ["the environment image's werkzeug", "its own tree"])
def test_a_test_run_cannot_change_the_environment_image(
    runner: LocalRunner, instance: dict[str, Any], target: str
) -> None:
    """The run's environment copy links the image's files: appending to one (werkzeug's
    ``__init__.py``, imported by every test) must be refused, and the image unchanged.
    The same write to a file of its own tree is the control: it succeeds and resolves."""
    image = runner.environments.get(runner.plan(instance), runner.mirror(instance["repo"]))
    [werkzeug] = image.glob("lib/python*/site-packages/werkzeug/__init__.py")
    before = host_state(runner, instance, image / "lib")
    path = "__file__" if target == "its own tree" else '__import__("werkzeug").__file__'
    condition = f'_os.access({path}, _os.W_OK) and open({path}, "a").write("#\\n") > 0'
    mirror = runner.mirror(instance["repo"])
    edit = fix_if(condition, instance["patch"])
    result = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], edit))
    expected = (True, "resolved") if target == "its own tree" else (False, "tests_failed")
    assert (result["resolved"], result["status"]) == expected, result
    assert host_state(runner, instance, image / "lib") == before
    assert werkzeug.stat().st_uid == 0


@pytest.mark.parametrize(
    "target", ["the environment's werkzeug", "a new .pth file in the environment", "its own tree"]
)
def test_a_test_run_without_the_reinstall_cannot_change_the_shared_environment(
    runner: LocalRunner, instance: dict[str, Any], target: str
) -> None:
    """A patch the install need not see again (it edits ``app.py`` alone) runs its tests
    on the environment every patch of the instance shares, read-only: appending to one of
    its modules or planting a ``.pth`` file there (imported at every start) must fail and
    leave the shared environment as it was. The same write to its own tree is the
    control: it succeeds and resolves."""
    plan = runner.plan(instance)
    image = runner.environments.get(plan, runner.mirror(instance["repo"]))
    installed = runner.installed(instance, plan, image, runner.base(instance))
    [site] = installed.venv.glob("lib/python*/site-packages")
    before = host_state(runner, instance, installed.venv / "lib", installed.tree)
    path = {
        "the environment's werkzeug": '__import__("werkzeug").__file__',
        "a new .pth file in the environment": f'"{VENV}/{site.relative_to(installed.venv)}/a.pth"',
        "its own tree": "__file__",
    }[target]
    writable = f"_os.path.dirname({path})" if target.startswith("a new") else path
    condition = f'_os.access({writable}, _os.W_OK) and open({path}, "a").write("#\\n") > 0'
    mirror = runner.mirror(instance["repo"])
    edit = fix_if(condition, instance["patch"], module="app.py")
    result = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], edit))
    assert result["reinstalled"] is False, result
    expected = (True, "resolved") if target == "its own tree" else (False, "tests_failed")
    assert (result["resolved"], result["status"]) == expected, result
    assert host_state(runner, instance, installed.venv / "lib", installed.tree) == before


def test_a_test_run_leaves_nothing_for_the_next_patch(
    runner: LocalRunner, instance: dict[str, Any]
) -> None:
    """Every patch starts from its own copy of the installed tree: a file the first
    patch's tests leave in the tree (they may, it is theirs; the first applies the gold
    fix once it wrote it, so its resolving shows the write worked) is not there for the
    next, which would apply the gold fix if it found it."""
    mirror = runner.mirror(instance["repo"])
    leftover = '_os.path.join(_root, "left-by-an-earlier-patch")'
    writes = f'open({leftover}, "w").write("x") and _os.path.exists({leftover})'
    leaves = fix_if(writes, instance["patch"], module="app.py")
    first = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], leaves))
    assert (first["status"], first["reinstalled"]) == ("resolved", False), first
    finds = fix_if(f"_os.path.exists({leftover})", instance["patch"], module="app.py")
    second = runner.evaluate(instance, patch_from_edit(mirror, instance["base_commit"], finds))
    assert (second["resolved"], second["status"]) == (False, "tests_failed"), second
