"""The YAML task configs, shipped inside the package (``lm-eval-monkeys task-dir``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TASK_DIR = Path(__file__).resolve().parent
DEFAULT_METRICS = ("coverage", "majority")  # what a task reports unless it names its metrics


class _TolerantLoader(yaml.SafeLoader):
    """Reads lm-eval configs without importing anything: ``!function a.b.c`` becomes
    ``{"function": "a.b:c", "file": <a/b.py beside the config>}`` (imported by module name,
    else from that file, as lm-eval does), any other tag None."""


def _function(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, str] | None:
    if suffix != "function" or not isinstance(node, yaml.ScalarNode):
        return None
    module, _, name = str(node.value).rpartition(".")
    config_dir = Path(getattr(loader, "name", ".")).parent
    return {"function": f"{module}:{name}", "file": str(config_dir / f"{module}.py")}


_TolerantLoader.add_multi_constructor("!", _function)


def installed_configs(dirs: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Each task's config in ``dirs`` (default: the installed ones), following
    ``include:`` files for shared settings."""
    found: dict[str, dict[str, Any]] = {}
    for directory in dirs or [TASK_DIR]:
        for path in sorted(Path(directory).glob("*.yaml")):
            config = _load(path)
            if isinstance(config.get("task"), str):
                found[config["task"]] = config
    return found


def installed_metadata(dirs: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Each task's ``metadata`` in the configs of ``dirs`` (default: the installed ones)."""
    return {task: config.get("metadata") or {} for task, config in installed_configs(dirs).items()}


def _load(path: Path) -> dict[str, Any]:
    with path.open() as stream:  # the loader's name is the path: functions beside it
        config = yaml.load(stream, Loader=_TolerantLoader) or {}
    include = config.pop("include", None)
    if isinstance(include, str) and (path.parent / include).is_file():
        return {**_load(path.parent / include), **config}
    return config


def installed_groups(dirs: list[Path] | None = None) -> dict[str, list[str]]:
    """Each group's tasks (a config with ``group:`` and a ``task:`` list)."""
    found: dict[str, list[str]] = {}
    for directory in dirs or [TASK_DIR]:
        for path in sorted(Path(directory).glob("*.yaml")):
            config = _load(path)
            if isinstance(config.get("group"), str) and isinstance(config.get("task"), list):
                found[config["group"]] = [str(task) for task in config["task"]]
    return found


def with_group_tasks(names: list[str]) -> list[str]:
    """The names and, after them, the tasks of each installed group among them, once each."""
    groups = installed_groups()
    return list(dict.fromkeys([*names, *(t for name in names for t in groups.get(name, []))]))
