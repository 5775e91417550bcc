"""Files of a patched tree put back as they were at the base commit, following nothing.

The candidate patch has shaped the tree: any directory on a path may now be a symlink to
the host, any file a link or a directory. ``restore`` walks each path from the tree's
root one directory descriptor at a time (``O_NOFOLLOW``), replaces whatever is not a
real directory by one, removes what the patch left at the path and writes the base
commit's blob there, read from a git directory the patched tree never touched. It runs
as root outside the sandbox and never resolves a link the patch made.

``changed_infrastructure`` names the files that steer a test run without being tests and
that a patch added, changed or removed: ``conftest.py``, ``pytest.ini``,
``sitecustomize.py``/``usercustomize.py``, ``.pth`` and ``.pyc`` files anywhere, and the
pytest settings and ``pytest11`` plugin entry points of ``setup.cfg``, ``tox.ini`` and
``pyproject.toml``. The runner resets them like the test patch's files.
"""

from __future__ import annotations

import configparser
import errno
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tomllib

from lm_eval_monkeys.errors import MonkeysError

INFRASTRUCTURE_NAMES = frozenset(
    {"conftest.py", "pytest.ini", ".pytest.ini", "sitecustomize.py", "usercustomize.py"}
)
INFRASTRUCTURE_SUFFIXES = (".pth", ".pyc")
CONFIG_FILES = frozenset({"setup.cfg", "tox.ini", "pyproject.toml"})
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SYMLINK, _SUBMODULE = "120000", "160000"


@dataclass(frozen=True)
class BaseFile:
    mode: str  # git's: 100644, 100755, 120000 (symlink), 160000 (submodule)
    blob: str


def base_files(git_dir: Path, commit: str) -> dict[str, BaseFile]:
    """Every file of ``commit``: its path, mode and blob."""
    listed = _git(git_dir, "ls-tree", "-r", "-z", "--full-tree", commit).stdout
    files = {}
    for entry in listed.split(b"\0"):
        if entry:
            meta, path = entry.split(b"\t", 1)
            mode, _, blob = meta.decode().split(" ")
            files[os.fsdecode(path)] = BaseFile(mode, blob)
    return files


def restore(tree: Path, git_dir: Path, base: dict[str, BaseFile], paths: list[str]) -> None:
    """Each of ``paths`` (relative to ``tree``) as in ``base``: removed when ``base`` has
    no such file."""
    root = os.open(tree, _DIRECTORY)
    try:
        for path in paths:
            parts = _parts(path)
            parent = _real_directories(root, parts[:-1])
            try:
                _remove(parent, parts[-1])
                if path in base and base[path].mode != _SUBMODULE:
                    _write(parent, parts[-1], base[path], git_dir)
            finally:
                os.close(parent)
    finally:
        os.close(root)


def changed_infrastructure(tree: Path, git_dir: Path, base: dict[str, BaseFile]) -> list[str]:
    """The test-infrastructure files the patch added, changed or removed (sorted)."""
    changed, present = [], set()
    for path in _tree_files(tree):
        if _is_infrastructure(os.path.basename(path)):
            present.add(path)
            if not _unchanged(tree / path, base.get(path), git_dir):
                changed.append(path)
    removed = [p for p in base if _is_infrastructure(os.path.basename(p)) and p not in present]
    return sorted({*changed, *removed})


def _tree_files(tree: Path) -> Iterator[str]:
    """Every entry of the tree but directories (links to directories included) and
    ``.git``, as relative paths; never into a link, never recursing (the patch may have
    made the tree thousands of directories deep)."""
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(tree / relative if relative else tree) as entries:
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if not entry.is_dir(follow_symlinks=False):
                    yield path
                elif path != ".git":
                    pending.append(path)


def _is_infrastructure(name: str) -> bool:
    return (
        name in INFRASTRUCTURE_NAMES
        or name.endswith(INFRASTRUCTURE_SUFFIXES)
        or name in CONFIG_FILES
    )


def _unchanged(path: Path, file: BaseFile | None, git_dir: Path) -> bool:
    """The file is a regular file with the base blob's content (for a shared config
    file: the same test settings)."""
    data = _regular_file(path)
    if data is None or file is None or file.mode not in ("100644", "100755"):
        return False
    if _blob_id(data, len(file.blob)) == file.blob:
        return True
    if path.name not in CONFIG_FILES:
        return False
    base = _git(git_dir, "cat-file", "blob", file.blob).stdout
    return _test_settings(path.name, data) == _test_settings(path.name, base)


def _regular_file(path: Path) -> bytes | None:
    """A regular file's bytes; None for anything else (a link, a directory, a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as handle:
        return handle.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None


def _blob_id(data: bytes, length: int) -> str:
    """git's object id of a blob holding ``data`` (SHA-1, or SHA-256 repositories)."""
    digest = hashlib.sha1 if length == 40 else hashlib.sha256
    return digest(b"blob %d\0" % len(data) + data).hexdigest()


def _test_settings(name: str, data: bytes) -> object:
    """What of a shared config file steers pytest (its settings, plugins registered by
    entry point), as comparable bytes; the whole file when it does not parse."""
    text = data.decode("utf-8", "replace")
    try:
        if name == "pyproject.toml":
            parsed = tomllib.loads(text)
            points = parsed.get("project", {}).get("entry-points", {})
            kept: object = [parsed.get("tool", {}).get("pytest"), points.get("pytest11")]
        else:
            config = configparser.ConfigParser(interpolation=None, strict=False)
            config.read_string(text)
            sections = [s for s in config.sections() if s in ("pytest", "tool:pytest")]
            entry_points = config.get("options.entry_points", "pytest11", fallback=None)
            kept = [[(s, sorted(config.items(s))) for s in sections], entry_points]
    except (tomllib.TOMLDecodeError, configparser.Error):
        return data
    return kept


def _parts(path: str) -> list[str]:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise MonkeysError(f"refusing to reset {path!r}: not a plain path inside the tree")
    return parts


def _real_directories(root: int, names: list[str]) -> int:
    """A descriptor of ``root``/``names``, each one made a real directory (a link or a
    file in its place is removed)."""
    fd = os.dup(root)
    for name in names:
        try:
            child = os.open(name, _DIRECTORY, dir_fd=fd)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                os.close(fd)
                raise
            if err.errno != errno.ENOENT:
                os.unlink(name, dir_fd=fd)
            os.mkdir(name, 0o755, dir_fd=fd)
            child = os.open(name, _DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def _remove(parent: int, name: str) -> None:
    try:
        info = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def _write(parent: int, name: str, file: BaseFile, git_dir: Path) -> None:
    data = _git(git_dir, "cat-file", "blob", file.blob).stdout
    if file.mode == _SYMLINK:
        os.symlink(os.fsdecode(data), name, dir_fd=parent)
        return
    mode = 0o755 if file.mode == "100755" else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(name, flags, mode, dir_fd=parent), "wb") as handle:
        handle.write(data)


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """git on a git directory of ours alone (no work tree, no config from elsewhere)."""
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args],
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull},
    )
    if done.returncode != 0:
        raise MonkeysError(f"git {args[0]} failed in {git_dir}: {done.stderr.decode().strip()}")
    return done
