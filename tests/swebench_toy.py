"""A toy SWE-bench instance: a real git repository, src layout, whose ``add`` subtracts.

The package lives in ``src/calc`` and is only importable once installed, so a verdict is
right only if the runner installs the *patched* tree. Its ``environment_setup_commit``
already contains the fix (as happens on real instances): a runner that tested the code
at the setup commit would resolve every patch. The instance's test patch adds the
failing test ``test_add``; the patches below are a gold fix, wrong fixes, a malformed
diff and one that only GNU patch's fuzz applies. Used by tests/test_swebench.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _diff(text: str) -> str:
    """Diffs below write a blank context line as ``~`` (a lone space would be invisible)."""
    return re.sub(r"(?m)^~$", " ", text)


CALC = "def add(a, b):\n    return a - b\n\n\ndef neg(a):\n    return -a\n"
TESTS = "from calc import neg\n\n\ndef test_neg():\n    assert neg(2) == -2\n"
PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "calc"
version = "1.0"
"""
TEST_PATCH = _diff("""diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,5 +1,9 @@
-from calc import neg
+from calc import add, neg
~
~
 def test_neg():
     assert neg(2) == -2
+
+
+def test_add():
+    assert add(2, 3) == 5
""")
GOLD = _diff("""diff --git a/src/calc/__init__.py b/src/calc/__init__.py
--- a/src/calc/__init__.py
+++ b/src/calc/__init__.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
~
~
 def neg(a):
""")
WRONG = GOLD.replace("+    return a + b", "+    return a * b")
# Fixes add but breaks neg: FAIL_TO_PASS passes, PASS_TO_PASS fails.
BREAKS_NEG = GOLD.replace(" def neg(a):\n", "-def neg(a):\n+def neg(a, unused):\n")
MALFORMED = """diff --git a/src/calc/__init__.py b/src/calc/__init__.py
--- a/src/calc/__init__.py
+++ b/src/calc/__init__.py
@@ -7,3 +7,3 @@
 def nothing_like_this():
-    return 0
+    return 1
"""
# Context lines off by a few: plain `git apply` refuses, GNU patch's fuzz applies it.
FUZZY = GOLD.replace("@@ -1,5 +1,5 @@\n def add(a, b):", "@@ -1,5 +1,5 @@\n def add(a,b):")
# Fixes add and rewrites the test file so its own test passes: the runner must reset the
# test files before the test patch, or this would resolve with add still wrong.
CHEATS = WRONG + _diff("""diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,5 +1,9 @@
-from calc import neg
+from calc import neg
~
~
 def test_neg():
     assert neg(2) == -2
+
+
+def test_add():
+    pass
""")
# The gold patch of the flaky instance: add() is right only for every other pair of
# sandbox uids. The sandbox rotates uids and each patch takes two sandboxes (applying the
# patch, then the tests), so consecutive runs test under uids two apart and alternate
# (deterministic "flakiness").
FLAKY_GOLD = GOLD.replace(
    "+    return a + b", "+    import os\n+    return a + b if os.getuid() // 2 % 2 == 0 else 0"
).replace("@@ -1,5 +1,5 @@", "@@ -1,5 +1,6 @@")

# The toy's spec: no harness spec exists for acme/calc, the user's file gives it all.
SPEC = {
    "python": "3.11",
    "test_cmd": "pytest -rA -p no:cacheprovider",
    "log_parser": "parse_log_pytest",
    "pip_packages": ["pytest"],
    "install": "python -m pip install -e .",
}


def git(cwd: Path, *args: str) -> str:
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **identity}, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def make_toy(root: Path, sandbox_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The instance and the environment variables that point the runner at it."""
    mirror = root / "mirrors" / "acme__calc"
    (mirror / "tests").mkdir(parents=True)
    (mirror / "src" / "calc").mkdir(parents=True)
    (mirror / "src" / "calc" / "__init__.py").write_text(CALC)
    (mirror / "tests" / "test_calc.py").write_text(TESTS)
    (mirror / "pyproject.toml").write_text(PYPROJECT)
    git(mirror, "init", "-q")
    git(mirror, "add", ".")
    git(mirror, "commit", "-qm", "base")
    base = git(mirror, "rev-parse", "HEAD")
    (mirror / "src" / "calc" / "__init__.py").write_text(CALC.replace("a - b", "a + b"))
    git(mirror, "commit", "-qam", "fix add (the environment setup commit)")
    setup = git(mirror, "rev-parse", "HEAD")
    specs = root / "specs.json"
    specs.write_text(json.dumps({"acme/calc": {"default": SPEC}}))
    env = {
        "MONKEYS_SWEBENCH_REPOS": str(root / "mirrors"),
        "MONKEYS_SWEBENCH_SPECS": str(specs),
        "MONKEYS_SANDBOX_DIR": str(sandbox_dir),
        "MONKEYS_CACHE_DIR": str(root / "cache"),
    }
    instance = {
        "repo": "acme/calc",
        "instance_id": "acme__calc-1",
        "base_commit": base,
        "patch": GOLD,
        "test_patch": TEST_PATCH,
        "problem_statement": "add() subtracts",
        "version": "1.0",
        "environment_setup_commit": setup,
        "FAIL_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
        "PASS_TO_PASS": json.dumps(["tests/test_calc.py::test_neg"]),
    }
    return instance, env


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in os.environ for the block (module-scoped fixtures have no
    monkeypatch), the previous values restored after it."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
