"""The k-by-metric text table printed after a run and by ``rescore``."""

from __future__ import annotations

from collections.abc import Mapping

from lm_eval_monkeys.scoring.rescore import TaskResult
from lm_eval_monkeys.text_tables import text_table


def metric_table(results: Mapping[str, TaskResult]) -> str:
    """One block per task: a row per k, a column per metric (lm-eval sorts ``name@k``
    as strings, putting coverage@16 before coverage@2)."""
    blocks = []
    for task, result in results.items():
        names = list(result.curves)
        ks = sorted({k for curve in result.curves.values() for k in curve})
        if not ks:
            continue
        rows = [
            [
                str(k),
                *(f"{result.curves[n][k]:.4f}" if k in result.curves[n] else "" for n in names),
            ]
            for k in ks
        ]
        title = f"{task} ({result.problems} problems, checker {result.checker_spec})"
        blocks.append(title + "\n" + text_table(["k", *(f"{n}@k" for n in names)], rows))
    return "\n\n".join(blocks)
