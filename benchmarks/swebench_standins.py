"""Stand-in repositories for SWE-bench instances whose git history is too large to fetch.

    python benchmarks/swebench_standins.py --repos DIR --instances ID,ID,... --output FILE
        [--downloads DIR]

For each instance (django, scikit-learn, matplotlib, or any Lite repository published on
PyPI): the sdists of the releases of the instance's version (``3.0``: 3.0a1, 3.0b1,
3.0rc1, 3.0, 3.0.1, ...; the next version's after them), downloaded from PyPI and
checked against the index's sha256, until one holds both the gold patch and the test
patch, i.e. both reverse cleanly onto its tree (``git apply -R --check``). That tree is
committed as the release (the stand-in's ``environment_setup_commit``) in the git
repository ``DIR/owner__repo``, and the tree with both patches reversed as its child
(``base_commit``), with fixed authors and dates so the same sdist gives the same commits
on every machine. ``FILE`` gets the instances (a JSON list, the Lite fields) with those
two commits and a ``standin`` field naming the release and the original commits; give it
to ``bench_swebench.py --conformance --instances-file FILE --repos DIR``.

A stand-in is the release's tree, not ``base_commit``'s: files the sdist leaves out are
missing, and changes made between ``base_commit`` and the release outside the patches'
hunks are kept. An instance none of whose releases takes both patches back is reported
and left out of ``FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from tqdm import tqdm

PYPI = "https://pypi.org/pypi"
PYPI_NAMES = {"django/django": "Django", "scikit-learn/scikit-learn": "scikit-learn",
              "matplotlib/matplotlib": "matplotlib", "astropy/astropy": "astropy",
              "mwaskom/seaborn": "seaborn", "pydata/xarray": "xarray",
              "sympy/sympy": "sympy", "pylint-dev/pylint": "pylint",
              "sphinx-doc/sphinx": "Sphinx", "psf/requests": "requests",
              "pallets/flask": "Flask", "pytest-dev/pytest": "pytest"}  # fmt: skip
IDENTITY = {"GIT_AUTHOR_NAME": "swebench-standin", "GIT_AUTHOR_EMAIL": "standin@invalid",
            "GIT_COMMITTER_NAME": "swebench-standin", "GIT_COMMITTER_EMAIL": "standin@invalid",
            "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}  # fmt: skip


class StandinError(Exception):
    """A stand-in that cannot be built, with its reason."""


def git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """git on the stand-in ``repo`` (a bare directory), its work tree ``repo/tree``."""
    tree = repo / "tree"
    tree.mkdir(exist_ok=True)
    command = ["git", "--git-dir", str(repo), "--work-tree", str(tree), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=tree,
                          env={**os.environ, **IDENTITY})  # fmt: skip


def candidates(index: dict[str, Any], version: str) -> list[str]:
    """The releases of ``version`` with an sdist, oldest first, then the next version's."""
    series = Version(version).release[:2]
    following = (series[0], series[1] + 1)
    chosen: list[tuple[int, Version, str]] = []
    for name, files in index["releases"].items():
        try:
            release = Version(name)
        except InvalidVersion:
            continue
        if release.release[:2] in (series, following) and any(
            f["packagetype"] == "sdist" for f in files
        ):
            chosen.append((release.release[:2] != series, release, name))
    return [name for _, _, name in sorted(chosen)]


def sdist(index_url: str, files: list[dict[str, Any]], downloads: Path) -> Path:
    """The release's sdist, downloaded once and checked against the index's sha256."""
    entry = next(f for f in files if f["packagetype"] == "sdist")
    path = downloads / entry["filename"]
    if not path.is_file():
        url = urllib.parse.urljoin(index_url, entry["url"])
        with urllib.request.urlopen(url, timeout=300) as response:
            data = response.read()
        if hashlib.sha256(data).hexdigest() != entry["digests"]["sha256"]:
            raise StandinError(f"{entry['filename']}: sha256 differs from the index's")
        scratch = path.with_suffix(".part")
        scratch.write_bytes(data)
        scratch.rename(path)
    return path


def unpack(archive: Path, into: Path) -> None:
    """The sdist's files, without its top directory, its PKG-INFO or egg-info."""
    with tempfile.TemporaryDirectory(dir=into.parent) as scratch:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        (top,) = Path(scratch).iterdir()
        for generated in [top / "PKG-INFO", *top.glob("*.egg-info"), *top.glob("*/*.egg-info")]:
            if generated.is_dir():
                shutil.rmtree(generated)
            else:
                generated.unlink(missing_ok=True)
        top.rename(into)


def release_commit(repo: Path, archive: Path, release: str) -> str:
    """The commit of the release's tree (branch ``release/NAME``), made once."""
    branch = f"refs/heads/release/{release}"
    found = git(repo, "rev-parse", "--verify", "--quiet", branch)
    if found.returncode == 0:
        return found.stdout.strip()
    tree = repo / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    unpack(archive, tree)
    git(repo, "read-tree", "--empty")
    git(repo, "add", "--all", "--force", ".")
    tree_id = git(repo, "write-tree").stdout.strip()
    commit = git(repo, "commit-tree", tree_id, "-m", f"{archive.name}, as published on PyPI")
    if commit.returncode != 0:
        raise StandinError(f"committing {archive.name} failed: {commit.stderr.strip()}")
    git(repo, "update-ref", branch, commit.stdout.strip())
    return commit.stdout.strip()


def reversed_commit(repo: Path, instance: dict[str, Any], release: str) -> str | None:
    """The release's tree with the test and gold patches reversed, committed as the
    instance's base (branch ``instance/ID``); None if either does not reverse."""
    shutil.rmtree(repo / "tree", ignore_errors=True)
    git(repo, "read-tree", "--reset", "-u", f"release/{release}")
    for patch in (instance["test_patch"], instance["patch"]):
        if git(repo, "apply", "--reverse", "--index", "-", stdin=patch).returncode:
            return None
    tree_id = git(repo, "write-tree").stdout.strip()
    commit = git(repo, "commit-tree", tree_id, "-p", f"release/{release}", "-m",
                 f"{instance['instance_id']}: {release} without its gold and test patches\n\n"
                 f"Stands in for {instance['base_commit']}.").stdout.strip()  # fmt: skip
    git(repo, "update-ref", f"refs/heads/instance/{instance['instance_id']}", commit)
    return commit


def standin(
    instance: dict[str, Any], repos: Path, downloads: Path, indexes: dict[str, Any]
) -> dict[str, Any]:
    """The instance with its stand-in's commits (building the stand-in as needed)."""
    name = PYPI_NAMES.get(instance["repo"])
    if name is None:
        raise StandinError(f"no PyPI name known for {instance['repo']}")
    if name not in indexes:
        with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=60) as response:
            indexes[name] = (response.geturl(), json.load(response))
    index_url, index = indexes[name]
    repo = repos / instance["repo"].replace("/", "__")
    if not repo.is_dir():
        subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
    tried = []
    for release in candidates(index, instance["version"]):
        archive = sdist(index_url, index["releases"][release], downloads)
        setup = release_commit(repo, archive, release)
        base = reversed_commit(repo, instance, release)
        shutil.rmtree(repo / "tree", ignore_errors=True)
        if base is not None:
            original = {k: instance[k] for k in ("base_commit", "environment_setup_commit")}
            return {**instance, "base_commit": base, "environment_setup_commit": setup,
                    "standin": {"release": release, **original}}  # fmt: skip
        tried.append(release)
    raise StandinError(
        f"no release of {name} {instance['version']} takes its gold and test patches back "
        f"(tried {', '.join(tried) or 'none: no sdist'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=Path, required=True, help="stand-ins, owner__repo")
    parser.add_argument("--instances", required=True, help="comma-separated instance ids")
    parser.add_argument("--output", type=Path, required=True, help="the instances file")
    parser.add_argument("--downloads", type=Path, help="sdists (default: DIR/.sdists)")
    args = parser.parse_args()
    data = Path(os.environ.get("MONKEYS_DATA_DIR") or Path(__file__).parents[2] / "shared/data")
    lite_path = data / "swebench_lite" / "test.json"
    if not lite_path.is_file():
        sys.exit(f"error: no {lite_path}; set MONKEYS_DATA_DIR to the benchmark data")
    wanted = [i for i in args.instances.split(",") if i]
    lite = {r["instance_id"]: r for r in json.loads(lite_path.read_text())}
    unknown = [i for i in wanted if i not in lite]
    if unknown:
        sys.exit(f"error: not SWE-bench Lite instances: {', '.join(unknown)}; check --instances")
    if any(not re.fullmatch(r"\d+\.\d+", lite[i]["version"]) for i in wanted):
        sys.exit("error: an instance's version is not MAJOR.MINOR; check the data file")
    downloads = args.downloads or args.repos / ".sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    made, indexes = [], {}
    for instance_id in tqdm(wanted, desc="stand-ins", unit="instance"):
        try:
            made.append(standin(lite[instance_id], args.repos, downloads, indexes))
            tqdm.write(f"{instance_id}: {made[-1]['standin']['release']}, "
                       f"base {made[-1]['base_commit'][:12]}")  # fmt: skip
        except (StandinError, OSError) as error:
            tqdm.write(f"{instance_id}: left out: {error}")
    args.output.write_text(json.dumps(made, indent=1))
    print(f"{len(made)} of {len(wanted)} instances written to {args.output}")
    sys.exit(0 if len(made) == len(wanted) else 1)


if __name__ == "__main__":
    main()
