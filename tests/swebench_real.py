"""Real SWE-bench Lite instances of pallets/flask and pytest-dev/pytest, offline.

The repositories come as git bundles in ``shared/swebench_repos``, beside the data
directory (see its README; ``MONKEYS_SWEBENCH_BUNDLES`` to point elsewhere);
``mirrors`` clones them once into a directory usable as ``MONKEYS_SWEBENCH_REPOS``.
``local_runner`` is the runner the tests share (environments kept between sessions);
``patch_from_edit`` turns an edit of a checkout into a real git diff;
``unrelated_patch`` makes a patch that applies cleanly to the file the gold patch edits
but changes nothing the tests see (a comment line): it must never resolve. Used by
tests/test_swebench_real.py and benchmarks/bench_swebench.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lm_eval_monkeys.verifiers.swebench import specs as swebench_specs
from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner

REPO = Path(__file__).resolve().parents[1]
# Beside the benchmark data (shared/data and shared/swebench_repos).
_DATA = Path(os.environ.get("MONKEYS_DATA_DIR") or REPO.parent / "shared" / "data")
BUNDLES = Path(
    os.environ.get("MONKEYS_SWEBENCH_BUNDLES") or _DATA.parent / "swebench_repos"
).resolve()  # git runs in other directories
REPOS = ("pallets/flask", "pytest-dev/pytest")


def instances(data_dir: Path) -> list[dict[str, Any]]:
    """The Lite instances of the bundled repositories, in file order."""
    records = json.loads((data_dir / "swebench_lite" / "test.json").read_text())
    return [r for r in records if r["repo"] in REPOS]


def mirrors(directory: Path) -> Path:
    """Clones of the bundles named ``owner__repo`` in ``directory`` (made once; every
    branch the bundle holds is fetched, as two environment setup commits live only on
    pytest's release branches)."""
    for repo in REPOS:
        name = repo.replace("/", "__")
        mirror = directory / name
        if not (mirror / ".git").is_dir():
            bundle = BUNDLES / f"{name}.bundle"
            scratch = directory / f".{name}.clone"
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
            subprocess.run(["git", "clone", "-q", str(bundle), str(scratch)], check=True)
            subprocess.run(
                ["git", "-C", str(scratch), "fetch", "-q", str(bundle), "refs/*:refs/bundle/*"],
                check=True,
            )
            scratch.rename(mirror)
    return directory


def unrelated_patch(instance: dict[str, Any], mirror: Path) -> str:
    """A comment added at the top of the first file the gold patch edits."""
    path = next(
        line.split(" b/", 1)[1]
        for line in instance["patch"].splitlines()
        if line.startswith("diff --git ")
    )
    text = subprocess.run(
        ["git", "-C", str(mirror), "show", f"{instance['base_commit']}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    context = text.splitlines()[:3]
    body = "".join(f" {line}\n" for line in context)
    return (
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -1,{len(context)} +1,{len(context) + 1} @@\n"
        f"+# an unrelated change: resolves nothing\n{body}"
    )


def local_runner() -> LocalRunner:
    """The runner of the real-instance tests, with the harness's specs alone (a user's
    spec file is ignored); environments persist in ``MONKEYS_SWEBENCH_TEST_DIR``."""
    work = Path(os.environ.get("MONKEYS_SWEBENCH_TEST_DIR") or "/var/tmp/lm-eval-monkeys-tests")
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    (work / "mirrors").mkdir(exist_ok=True)
    os.environ.pop(swebench_specs.SPECS_ENV, None)
    return LocalRunner(mirrors=mirrors(work / "mirrors"), workdir=work / "swebench")


def patch_from_edit(mirror: Path, commit: str, edit: Callable[[Path], None]) -> str:
    """The git diff of ``edit`` applied to a checkout of ``commit`` (binary-safe)."""
    with tempfile.TemporaryDirectory(prefix="monkeys-edit-") as scratch:
        tree = Path(scratch, "tree")
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(mirror),
                        str(tree)], check=True)  # fmt: skip
        subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--detach", commit], check=True)
        edit(tree)
        subprocess.run(["git", "-C", str(tree), "add", "-A"], check=True)
        return subprocess.run(
            ["git", "-C", str(tree), "diff", "--cached", "--binary"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
