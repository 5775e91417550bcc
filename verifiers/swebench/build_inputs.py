"""Whether a patch can change what the project's install made, read from the patches alone.

The harness's eval script runs the project's ``install`` again after the patches. The
runner installs each instance's tree once (at the fixed path every patch's tree is shown
at) and skips that re-run when it provably changes nothing: the install is editable (the
environment imports the tree itself, so an edited module is seen without it), it
succeeded, the patch applied without the fallbacks (whose clean-up may remove untracked
build output), and no file either patch names is one the install reads or compiles:

- a file at the tree's root (``setup.py``, ``setup.cfg``, ``pyproject.toml``,
  ``MANIFEST.in``, top-level modules), ``setup_package.py`` (astropy's per-package
  extension settings) and ``__init__.py`` (package discovery, version attributes);
- a compiled or generated source (C, C++, Cython, Fortran, SWIG, templates);
- a file the build configuration names or reads (in the root's ``setup.py``,
  ``setup.cfg`` or ``pyproject.toml``: its file name, as in ``write_to`` or a version
  file opened by ``setup.py``; a module ``setup.py`` imports; the module of an
  ``attr:`` value, as in ``version = attr: pkg.version.VERSION``). A module named only
  as an entry point (``flask = "flask.cli:main"``) is not read: its script imports it
  at run time;
- an added or removed Python module outside an existing package (a new top-level
  module), or any added or removed file in a directory the base commit does not have;
- anything the patch text does not name plainly: a quoted path, a symlink, a binary patch.

Any header of any form counts (the one the ``patch`` fallback may use too), so a patch
cannot hide a path from this check; whatever cannot be read makes the install run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

BUILD_CONFIGURATION = ("setup.py", "setup.cfg", "pyproject.toml")
BUILD_NAMES = frozenset({"setup_package.py", "__init__.py"})
COMPILED_SUFFIXES = frozenset(
    ".c .h .cc .cpp .cxx .c++ .hh .hpp .hxx .pyx .pxd .pxi .f .f90 .f95 .for .pyf .cu .cuh "
    ".m .mm .i .swg .src .in .tmpl .s .asm .def".split()
)
# pip's editable install; ``setup.py develop`` installs in place too, without pip.
PIP_EDITABLE = re.compile(r"(?:^|\s)(?:-e|--editable)(?:[\s=]|$)")
_DEVELOP = re.compile(r"\bsetup\.py\s+develop\b")
# Header lines that name paths, in every form git apply or GNU patch reads.
_HEADER = re.compile(
    r"^(diff --git |--- |\+\+\+ |\*\*\* |Index: |(?:rename|copy) (?:from|to) )(.*)$", re.M
)
_UNREADABLE = re.compile(r"^(?:GIT binary patch|Binary files |.*mode 120000)", re.M)
# A file added, removed, renamed or copied: git's headers, /dev/null, GNU patch's epoch dates.
_ADDS_OR_REMOVES = re.compile(
    r"^(?:new file|deleted file|rename |copy )|/dev/null|1970-01-01|1969-12-31", re.M
)
_SECTION = re.compile(r"^(?=diff --git )", re.M)
# Modules a build reads: setuptools' attr: values (their module) and setup.py's imports.
_ATTR = re.compile(r"""\battr\s*[:=]\s*["']?([\w.]+)\.\w+""")
_IMPORT = re.compile(r"^\s*(?:from|import)\s+([\w.]+)", re.M)


def editable(install: str) -> bool:
    """The install command installs the tree in place (``pip install -e``, ``develop``)."""
    return bool(PIP_EDITABLE.search(install) or _DEVELOP.search(install))


def reinstall_reason(patches: Iterable[str], base: Iterable[str], configuration: str) -> str | None:
    """Why the install must run again after ``patches`` (the candidate and the test
    patch), or None when it changes nothing. ``base`` holds the tree's files before the
    patches (relative paths), ``configuration`` the build configuration's text."""
    tree = Tree(frozenset(base), configuration)
    for patch in patches:
        if _UNREADABLE.search(patch):
            return "the patch changes a binary file or a symlink"
        # Per file of a git diff; text before the first "diff --git" (or a patch in
        # another format) is one section, whose every path counts as added or removed
        # if any is.
        for section in _SECTION.split(patch):
            added_or_removed = bool(_ADDS_OR_REMOVES.search(section))
            for path in _named_paths(section):
                if path is None:
                    return "the patch names a path in a form this check does not read"
                reason = tree.build_input(path, added_or_removed or path not in tree.files)
                if reason:
                    return f"{path}: {reason}"
    return None


def _named_paths(section: str) -> Iterable[str | None]:
    """Every path a header names, its first component (``a/``, ``b/``) dropped; None for
    one that is quoted or not plainly below the tree."""
    for header in _HEADER.finditer(section):
        kind, rest = header.groups()
        words = rest.split() if kind == "diff --git " else [rest.split("\t")[0].strip()]
        for word in words:
            if word == "/dev/null":
                continue
            parts = word.split("/")
            if kind.startswith(("diff", "---", "+++", "***")):
                parts = parts[1:]
            if not parts or word.startswith('"') or any(p in ("", ".", "..") for p in parts):
                yield None
            else:
                yield "/".join(parts)


class Tree:
    """The tree before the patches: its files, directories and build configuration."""

    def __init__(self, files: frozenset[str], configuration: str) -> None:
        self.files = files
        self.directories = {str(p) for f in files for p in PurePosixPath(f).parents}
        self.configuration = configuration
        read = [*_ATTR.findall(configuration), *_IMPORT.findall(configuration)]
        self.read_modules = {tuple(module.split(".")) for module in read}

    def build_input(self, path: str, added_or_removed: bool) -> str:
        """Why the install reads ``path`` (or would, once added or removed), or ""."""
        pure = PurePosixPath(path)
        parent = str(pure.parent)
        if parent == ".":
            return "a file at the tree's root (build configuration, top-level modules)"
        if pure.name in BUILD_NAMES:
            return "the install reads it (package discovery, versions, extensions)"
        if pure.suffix.lower() in COMPILED_SUFFIXES:
            return "a compiled or generated source"
        module = pure.with_suffix("").parts
        if pure.name in self.configuration or (
            pure.suffix == ".py" and any(module[-len(m) :] == m for m in self.read_modules)
        ):
            return "the build configuration names it"
        if added_or_removed:
            if parent not in self.directories:
                return "added or removed in a directory the base commit does not have"
            if pure.suffix == ".py" and f"{parent}/__init__.py" not in self.files:
                return "a module added or removed outside a package (a top-level module)"
        return ""
