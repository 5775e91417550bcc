"""The YAML task configs, shipped inside the package (``lm-eval-monkeys task-dir``)."""

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent
