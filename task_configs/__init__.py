"""The YAML task configs, shipped inside the package (``lm-eval-monkeys task-dir``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TASK_DIR = Path(__file__).resolve().parent


class _TolerantLoader(yaml.SafeLoader):
    """Reads lm-eval configs without resolving their ``!function`` tags: a tagged scalar
    reads as its text (the function's dotted name), anything else tagged as None."""


_TolerantLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
    ),
)


def installed_configs(dirs: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Each task's config in ``dirs`` (default: the installed ones), following ``include:``
    files for shared settings; a group's config (``group:``, its ``task:`` a list) under
    the group's name."""
    found: dict[str, dict[str, Any]] = {}
    for directory in dirs or [TASK_DIR]:
        for path in sorted(Path(directory).glob("*.yaml")):
            config = _load(path)
            if isinstance(config.get("task"), str):
                found[config["task"]] = config
            elif isinstance(config.get("group"), str) and isinstance(config.get("task"), list):
                found[config["group"]] = config
    return found


def installed_metadata(dirs: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Each task's ``metadata`` in the configs of ``dirs`` (default: the installed ones)."""
    return {
        task: config.get("metadata") or {}
        for task, config in installed_configs(dirs).items()
        if isinstance(config.get("task"), str)
    }


def _load(path: Path) -> dict[str, Any]:
    config = yaml.load(path.read_text(), Loader=_TolerantLoader) or {}
    include = config.pop("include", None)
    if isinstance(include, str) and (path.parent / include).is_file():
        return {**_load(path.parent / include), **config}
    return config


def with_group_tasks(names: list[str], configs: dict[str, dict[str, Any]]) -> list[str]:
    """The names and, after them, the tasks of each group among them, once each."""
    members = [configs.get(name, {}).get("task") for name in names]
    grouped = [task for group in members if isinstance(group, list) for task in group]
    return list(dict.fromkeys([*names, *grouped]))
