"""Tables of results: one row per k, one column per metric, one block per task."""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME_AT_K = re.compile(r"^(?P<name>[a-z_]+)@(?P<k>\d+)(?:,.*)?$")


def metric_table(results: Mapping[str, Mapping[str, object]]) -> str:
    """Pivot ``{task: {"coverage@4,filter": 0.5, ...}}`` into a k-by-metric text table."""
    blocks = []
    for task, metrics in results.items():
        grid: dict[int, dict[str, float]] = {}
        for key, value in metrics.items():
            match = _NAME_AT_K.match(key)
            if match and isinstance(value, (int, float)):
                grid.setdefault(int(match["k"]), {})[match["name"]] = float(value)
        if not grid:
            continue
        names = sorted({name for row in grid.values() for name in row})
        lines = [task, "  " + f"{'k':>6}" + "".join(f"{n + '@k':>14}" for n in names)]
        for k in sorted(grid):
            cells = "".join(f"{grid[k][n]:>14.4f}" if n in grid[k] else f"{'':>14}" for n in names)
            lines.append(f"  {k:>6}{cells}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
