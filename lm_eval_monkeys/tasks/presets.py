"""``--preset NAME``: run each task as its preset variant, a task config named
``TASK_NAME.yaml`` next to the task's own (``monkeys_gsm8k`` -> ``monkeys_gsm8k_paper``).

The presets are data, in ``task_configs/``; this only maps task names and refuses tasks
that have no such variant, before any model loads.
"""

from __future__ import annotations

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.task_configs import TASK_DIR

PRESETS = ("paper",)


def preset_tasks(tasks: list[str], preset: str) -> list[str]:
    """The preset variant of every task (tasks already named as one are kept)."""
    if preset not in PRESETS:
        raise MonkeysError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    suffix = f"_{preset}"
    variants = {path.stem for path in TASK_DIR.glob(f"monkeys_*{suffix}.yaml")}
    mapped = [task if task in variants else f"{task}{suffix}" for task in tasks]
    missing = [task for task, name in zip(tasks, mapped, strict=True) if name not in variants]
    if missing:
        bases = ", ".join(sorted(v.removesuffix(suffix) for v in variants))
        raise MonkeysError(
            f"--preset {preset} has no variant of {', '.join(missing)}; it covers {bases} "
            f"(name each task; groups are not expanded)"
        )
    return mapped
