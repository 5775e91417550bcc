"""The YAML task configs, shipped inside the package (``lm-eval-monkeys task-dir``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TASK_DIR = Path(__file__).resolve().parent


class _TolerantLoader(yaml.SafeLoader):
    """Reads lm-eval configs without resolving their ``!function`` tags."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def installed_metadata(dirs: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Each task's ``metadata`` in the configs of ``dirs`` (default: the installed ones),
    following ``include:`` files for shared settings."""
    found: dict[str, dict[str, Any]] = {}
    for directory in dirs or [TASK_DIR]:
        for path in sorted(Path(directory).glob("*.yaml")):
            config = _load(path)
            if isinstance(config.get("task"), str):
                found[config["task"]] = config.get("metadata") or {}
    return found


def _load(path: Path) -> dict[str, Any]:
    config = yaml.load(path.read_text(), Loader=_TolerantLoader) or {}
    include = config.pop("include", None)
    if isinstance(include, str) and (path.parent / include).is_file():
        return {**_load(path.parent / include), **config}
    return config
