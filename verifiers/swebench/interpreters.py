"""Python interpreters for SWE-bench environments: found by version, usable by the sandbox.

Candidates, in order: ``uv python find`` (uv-managed or system Pythons), pyenv's real
installs under ``$PYENV_ROOT/versions`` (never its shims, which dispatch on a ``.python-
version`` file and fail or pick another Python), then ``pythonX.Y`` on PATH resolved to
its binary. Each is run once to check its version; nothing falls back to another
version. An interpreter under a directory the sandbox's unprivileged uid cannot enter
(pyenv under a 0700 ``/root``) is linked (or copied) into the shared sandbox directory,
its standard library with it, and run from there with its shared library on
``LD_LIBRARY_PATH`` (pyenv builds link libpython through an absolute RUNPATH) and on
``LIBRARY_PATH`` (builds that link extensions against libpython, as numpy.distutils
does for such Pythons, pass the original ``-L`` directory, which the sandbox hides).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lm_eval_monkeys.digest import short_digest
from lm_eval_monkeys.errors import MonkeysError

_VERSION = re.compile(r"^\d+(\.\d+)*$")


@dataclass(frozen=True)
class Interpreter:
    """A Python the sandbox can run: its binary, exact version, extra library path."""

    executable: Path
    version: str  # e.g. "3.9.18"
    library_path: str = ""  # its shared library's directory, "" when not needed

    def env(self) -> dict[str, str]:
        """Where the loader (running it) and the linker (building extensions that link
        libpython) find its shared library."""
        if not self.library_path:
            return {}
        return {"LD_LIBRARY_PATH": self.library_path, "LIBRARY_PATH": self.library_path}


def find_python(version: str, shared: Path) -> Interpreter:
    """The Python ``version`` (``3.9`` matches any 3.9.x), made usable under ``shared``."""
    if not _VERSION.match(version):
        raise MonkeysError(f"python version {version!r} is not a version number like 3.9")
    for candidate in _candidates(version):
        found = _exact_version(candidate)
        if found is not None and _matches(found, version):
            return _usable(candidate, found, shared)
    raise MonkeysError(
        f"SWE-bench needs Python {version} and none was found (uv, pyenv or python{version} "
        f"on PATH); install it (uv python install {version}, or pyenv install {version})"
    )


def _candidates(version: str) -> list[Path]:
    found: list[Path] = []
    uv = shutil.which("uv")
    if uv:
        done = subprocess.run(
            [uv, "python", "find", "--no-python-downloads", version],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip():
            found.append(Path(done.stdout.strip()))
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv", "versions")
    if pyenv.is_dir():
        installs = [p for p in pyenv.iterdir() if _matches(p.name, version)]
        for install in sorted(installs, key=lambda p: _key(p.name), reverse=True):
            found.append(install / "bin" / f"python{'.'.join(install.name.split('.')[:2])}")
    on_path = shutil.which(f"python{version}")
    if on_path and "/shims/" not in os.path.realpath(on_path):
        found.append(Path(os.path.realpath(on_path)))
    return [p for p in found if p.is_file()]


def _exact_version(executable: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(executable), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _matches(found: str, wanted: str) -> bool:
    return found.split(".")[: len(wanted.split("."))] == wanted.split(".")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".") if x.isdigit())


def _usable(executable: Path, version: str, shared: Path) -> Interpreter:
    """The interpreter itself when any uid can run it, else its linked copy in ``shared``."""
    prefix = executable.resolve().parent.parent
    if _world_traversable(executable.resolve()):
        return Interpreter(executable, version)
    minor = ".".join(version.split(".")[:2])
    target = shared / "pythons" / f"{version}-{short_digest(str(prefix))}"
    if not target.is_dir():
        _link_installation(prefix, minor, target)
    binary = target / "bin" / f"python{minor}"
    return Interpreter(binary, version, str(target / "lib"))


def _world_traversable(path: Path) -> bool:
    for directory in path.parents:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IXOTH)


def _link_installation(prefix: Path, minor: str, target: Path) -> None:
    """Hard-link (copy across filesystems) bin/pythonX.Y, libpython and the standard
    library (without its site-packages and test suite) into ``target``, built under a
    temporary name and renamed into place so a killed link leaves nothing half-made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (scratch / "bin").mkdir()
        _link(prefix / "bin" / f"python{minor}", scratch / "bin" / f"python{minor}")
        (scratch / "lib").mkdir()
        for library in (prefix / "lib").glob("libpython*"):
            _link(library, scratch / "lib" / library.name)
        shutil.copytree(
            prefix / "lib" / f"python{minor}",
            scratch / "lib" / f"python{minor}",
            symlinks=True,
            ignore=lambda d, names: (
                [n for n in names if n in ("site-packages", "test")]
                if d == str(prefix / "lib" / f"python{minor}")
                else []
            ),
            copy_function=_link,
        )
        (scratch / "lib" / f"python{minor}" / "site-packages").mkdir()
        include = prefix / "include"
        if include.is_dir():  # headers, for packages with C extensions
            shutil.copytree(include, scratch / "include", symlinks=True, copy_function=_link)
        for directory, _, _ in os.walk(scratch):
            os.chmod(directory, 0o755)
        os.rename(scratch, target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not target.is_dir():  # else another process linked it first
            raise
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _link(source: str | Path, destination: str | Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
