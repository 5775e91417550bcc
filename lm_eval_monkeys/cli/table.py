"""The k-by-metric text table printed after a run and by ``rescore``."""

from __future__ import annotations

from collections.abc import Mapping

from lm_eval_monkeys.scoring.rescore import TaskResult
from lm_eval_monkeys.text_tables import text_table


def metric_table(results: Mapping[str, TaskResult]) -> str:
    """One block per task: a row per k, a column per metric (lm-eval sorts ``name@k``
    as strings, putting coverage@16 before coverage@2); a run sampled until verified
    adds coverage@k's interval, what it did not generate, and the metrics it cannot give."""
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
        header = ["k", *(f"{n}@k" for n in names)]
        saving = result.adaptive
        if saving is not None:
            header.append("95% interval")
            for row, k in zip(rows, ks, strict=True):
                low, high = saving.intervals[k]
                row.append(f"[{low:.4f}, {high:.4f}]")
        title = f"{task} ({result.problems} problems, checker {result.checker_spec})"
        block = title + "\n" + text_table(header, rows)
        if saving is not None:
            block += "\n" + saving.describe(result.problems)
        blocks.append(block)
    return "\n\n".join(blocks)
