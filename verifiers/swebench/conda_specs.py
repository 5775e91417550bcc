"""conda ``environment.yml`` specs (xarray, matplotlib) built with pip, without conda.

SWE-bench's harness builds these environments with conda from the repository's
``environment.yml`` (at ``environment_setup_commit``, the first of the spec's paths
present), then pip-installs the spec's pinned ``pip_packages``. Here every conda package
becomes its PyPI counterpart, installed with pip in one resolve together with the pins
(so the pins choose the versions of everything else, as the harness's later pip step
would force them): most conda names are the PyPI name, the others are in
``COUNTERPARTS``; a ``pip:`` section is taken as written. A conda package with no PyPI
counterpart (``NO_COUNTERPART``: C libraries, programs, conda-only projects) is never
dropped silently: the instance is ``env_failed`` naming every such package, unless the
user's spec lists it in ``conda_without`` (then it is left out, and every verdict whose
tests ran says so, as ``conda_left_out``). ``conda_without`` may also name a package that
has a counterpart which cannot be installed here (matplotlib's ``pygobject`` and
``wxpython`` publish no Linux wheels and build from source against GTK's headers): it is
left out the same way, and said so. A name this module does not know is taken as
the PyPI name; where the index has no such distribution the build fails, and its reason
names the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from lm_eval_monkeys.errors import MonkeysError

ENVIRONMENT_YML = "environment.yml"  # the harness's ``packages`` value for conda specs
# conda name -> PyPI distribution, where they differ (a same-named PyPI project can be
# another one: PyPI's "iris" is not SciTools' Iris, its "graphviz" is conda's
# "python-graphviz").
COUNTERPARTS = {
    "matplotlib-base": "matplotlib",
    "iris": "scitools-iris",
    "pyqt": "PyQt5",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "msgpack-python": "msgpack",
    "setuptools_scm": "setuptools-scm",
    "pseudonetcdf": "PseudoNetCDF",
    "hdf5": "h5py",  # the C library: PyPI has it only inside wheels (h5py's, netCDF4's)
}
# conda packages with no PyPI counterpart, and what they are.
NO_COUNTERPART = {
    "cdms2": "CDAT's climate data library, published on conda only",
    "graphviz": "the Graphviz programs (PyPI's graphviz is conda's python-graphviz)",
    "gtk3": "the GTK 3 C library",
    "gtk4": "the GTK 4 C library",
    "ffmpeg": "the FFmpeg programs",
    "imagemagick": "the ImageMagick programs",
    "libnetcdf": "the netCDF C library",
}
# Provided by the virtualenv itself: the interpreter is the spec's ``python``, pip is
# upgraded by the build (not dropped: both are there, at the runner's versions).
PROVIDED = ("python", "pip")
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$")


@dataclass(frozen=True)
class CondaPackages:
    """An ``environment.yml``'s packages as pip requirements."""

    requirements: tuple[str, ...]  # PyPI requirements, one per conda package or pip line
    missing: dict[str, str]  # conda name -> what it is, for packages with no counterpart
    left_out: tuple[str, ...]  # packages the user's spec chose to leave out

    def as_requirements_file(self, pins: tuple[str, ...]) -> str:
        """A requirements file of the packages and the spec's pins, resolved together."""
        return "\n".join([*self.requirements, *pins]) + "\n"


def pip_requirement(dependency: str) -> tuple[str, str]:
    """``(conda name, PyPI requirement)`` of one conda dependency: the channel and build
    string dropped, conda's ``=1.2`` (any 1.2.x) as ``==1.2.*``, the name mapped."""
    match = _CONDA_SPEC.match(dependency.strip())
    if match is None:
        raise MonkeysError(f"environment.yml: cannot read the dependency {dependency!r}")
    name, extras, version = match.group(1), match.group(2) or "", match.group(3)
    return name, f"{COUNTERPARTS.get(name.lower(), name)}{extras}{_pip_version(version)}"


def _pip_version(version: str) -> str:
    """conda's version syntax as pip's: ``1.2`` or ``=1.2`` (prefix match) as ``==1.2.*``,
    ``1.2=build`` without the build string; operators (``>=``, ``!=``...) as they are."""
    words = version.split()
    if len(words) == 2 and not re.match(r"^[=<>!~,]", words[1]):
        words = words[:1]  # "1.2 py39_0": a version and a build string
    version = "".join(words)
    if not version or version.startswith(("==", ">=", "<=", "!=", "~=", ">", "<")):
        return version
    exact = version.lstrip("=").split("=")[0]  # a build string follows a second "="
    return f"=={exact}" if version.startswith("==") or exact.endswith("*") else f"=={exact}.*"


def conda_packages(text: str, source: str, without: tuple[str, ...] = ()) -> CondaPackages:
    """The packages of an ``environment.yml`` (``source`` names it in messages);
    ``without``: packages the user chose to leave out (with a PyPI counterpart or not)."""
    try:
        document = yaml.safe_load(text) or {}
        dependencies = document.get("dependencies") or []
    except (yaml.YAMLError, AttributeError) as err:
        raise MonkeysError(f"{source}: not a conda environment file ({err})") from None
    requirements: list[str] = []
    missing: dict[str, str] = {}
    dropped: list[str] = []  # in ``without`` and named in the file
    for dependency in dependencies:
        if isinstance(dependency, dict):  # {"pip": [...]}: pip requirements as written
            requirements += [str(line) for line in dependency.get("pip") or ()]
            continue
        name, requirement = pip_requirement(str(dependency))
        if name.lower() in PROVIDED:
            continue
        if name in without:
            dropped.append(name)
            continue
        if name.lower() in NO_COUNTERPART:
            missing[name] = NO_COUNTERPART[name.lower()]
            continue
        renamed = not requirement.lower().startswith(name.lower())
        requirements.append(f"{requirement}  # conda: {name}" if renamed else requirement)
    return CondaPackages(tuple(requirements), missing, tuple(dropped))


def refusal(packages: CondaPackages, repo: str, version: str, source: str) -> str | None:
    """Why the environment cannot be built (packages without a PyPI counterpart that
    the user did not leave out), naming each and the way to build without it."""
    unanswered = {n: what for n, what in packages.missing.items() if n not in packages.left_out}
    if not unanswered:
        return None
    named = "; ".join(f"{name} ({what})" for name, what in unanswered.items())
    listed = ", ".join(f'"{name}"' for name in unanswered)
    return (
        f"{repo} {version}: {source} names conda packages with no PyPI counterpart: {named}. "
        "Nothing is left out silently: to build without them, add "
        '{"' + repo + '": {"' + version + '": {"conda_without": [' + listed + "]}}} to the "
        "JSON file named by MONKEYS_SWEBENCH_SPECS, or use swebench:docker"
    )
