"""When the runner skips the harness's re-run of ``install``: the patch forms that must
make it run (a patch that hides a build input from the check would be graded on a stale
install), and the ordinary ones that need not (a module edited in place, a data file
added beside the tests)."""

from __future__ import annotations

import pytest

from lm_eval_monkeys.verifiers.swebench.build_inputs import editable, reinstall_reason

BASE = [
    "setup.py",
    "setup.cfg",
    "src/flask/__init__.py",
    "src/flask/app.py",
    "src/flask/config.py",
    "src/ext/_speedups.c",
    "tests/test_config.py",
    "tests/static/config.json",
]
CONFIGURATION = "[metadata]\nversion = attr: flask.__version__\n[options]\npackages = find:\n"


def edit(path: str) -> str:
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n"


def added(path: str) -> str:
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{path}\n@@ -0,0 +1 @@\n+x\n")  # fmt: skip


def reason(*patches: str) -> str | None:
    return reinstall_reason(patches, BASE, CONFIGURATION)


@pytest.mark.parametrize(
    "patches",
    [
        [edit("src/flask/config.py"), edit("tests/test_config.py")],  # flask-4992's kind
        [edit("src/flask/app.py"), added("tests/static/config.toml")],  # data beside tests
        [added("src/flask/new_module.py")],  # inside an existing package
        ["--- a/src/flask/app.py\n+++ b/src/flask/app.py\n@@ -1 +1 @@\n-a\n+b\n"],  # plain
    ],
)
def test_edits_the_install_never_reads_skip_it(patches: list[str]) -> None:
    assert reason(*patches) is None


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        (edit("setup.py"), "root"),
        (edit("setup.cfg"), "root"),
        (edit("src/flask/__init__.py"), "package discovery"),  # its __version__ is read
        (edit("src/ext/_speedups.c"), "compiled"),
        (added("src/flask/_cython.pyx"), "compiled"),
        (added("src/newpkg/core.py"), "directory the base commit does not have"),
        (added("src/top_level.py"), "outside a package"),
        (added("tests/test_new.py"), "outside a package"),  # may be a top-level module
        # a harmless edit first, the build input in a later file of the same patch
        (edit("src/flask/app.py") + edit("pyproject.toml"), "root"),
        # the same build input through the header forms the fallbacks read
        ("Index: setup.py\n*** a/setup.py\n--- b/setup.py\n", "root"),
        ('diff --git "a/setup.py" "b/setup.py"\n', "does not read"),
        ("diff --git a/src/flask/x.py b/src/flask/x.py\nGIT binary patch\n", "binary"),
        ("diff --git a/src/flask/l.py b/src/flask/l.py\nnew file mode 120000\n", "symlink"),
        # GNU patch removes a file whose new side carries the epoch date
        ("--- a/tests/test_config.py\n+++ b/tests/test_config.py\t1970-01-01 00:00:00\n",
         "outside a package"),
        (edit("src/flask/../../setup.py"), "does not read"),
        ("diff --git a/src/flask/app.py b/src/app.py\nsimilarity index 100%\n"
         "rename from src/flask/app.py\nrename to src/app.py\n", "outside a package"),
    ],
)  # fmt: skip
def test_patches_that_touch_what_the_install_reads_run_it(patch: str, why: str) -> None:
    found = reason(edit("src/flask/app.py"), patch)
    assert found is not None and why in found, found


@pytest.mark.parametrize(
    "configuration",
    [
        "[tool.setuptools_scm]\nwrite_to = 'src/flask/_version.py'\n",  # its file name
        "[metadata]\nversion = attr: flask._version.VERSION\n",  # setup.cfg's attr:
        '[tool.setuptools.dynamic]\nversion = {attr = "flask._version.VERSION"}\n',
        "from flask._version import VERSION\nsetup(version=VERSION)\n",  # setup.py's import
    ],
)
def test_a_module_the_build_configuration_reads_runs_it(configuration: str) -> None:
    found = reinstall_reason([edit("src/flask/_version.py")], BASE, configuration)
    assert found is not None and "configuration" in found, found


def test_a_module_named_only_as_an_entry_point_does_not() -> None:
    """Its console script imports it when run; the install only writes its name."""
    configuration = '[project.scripts]\nflask = "flask.cli:main"\n'
    assert reinstall_reason([edit("src/flask/_version.py")], BASE, "") is None
    assert reinstall_reason([edit("src/flask/cli.py")], BASE, configuration) is None


def test_which_installs_are_editable() -> None:
    assert editable("python -m pip install -e .[test] --verbose")
    assert editable("python -m pip install -v --no-use-pep517 --no-build-isolation -e .")
    assert editable("python setup.py develop")
    assert not editable("python -m pip install .")  # requests: a copy in site-packages
    assert not editable("python setup.py install")
