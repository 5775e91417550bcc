"""The report as one self-contained HTML file: figures inlined as base64 PNG data URIs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from lm_eval_monkeys.text_tables import markdown_table


@dataclass(frozen=True)
class Table:
    """A titled table, rendered as Markdown or HTML."""

    title: str
    headers: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        return f"### {self.title}\n\n" + markdown_table(self.headers, self.rows)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.warnings { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.5em 1em; }
.scroll { overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; }
"""

TaskBlock = tuple[list[Table], bytes | None, list[tuple[str, bytes]], dict[str, list[Table]]]
"""A task's cost tables, its cost figure, each run's metric figure and fit tables."""


def table_html(table: Table, level: int = 3) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    return (
        f"<h{level}>{escape(table.title)}</h{level}>"
        f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'
    )


def image_html(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}"></figure>'


def render_html(
    runs: Table, leaderboard: Table, warnings: list[str], tasks: dict[str, TaskBlock]
) -> str:
    """The whole report: runs, warnings, leaderboard, then per task its figures and tables."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lm-eval-monkeys report</title><style>{_STYLE}</style></head><body>",
        f"<h1>lm-eval-monkeys report</h1><p>Generated {stamp}.</p>",
        table_html(runs, 2),
    ]
    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        parts.append(f'<div class="warnings"><h2>Warnings</h2><ul>{items}</ul></div>')
    parts.append(table_html(leaderboard, 2))
    for task, (cost_tables, cost_png, run_figures, fit_tables) in tasks.items():
        parts.append(f"<h2>{escape(task)}</h2>")
        if cost_png is not None:
            parts.append(image_html(f"{task}: coverage vs cost", cost_png))
        parts += [table_html(t) for t in cost_tables]
        for run, png in run_figures:
            parts.append(f"<h3>{escape(run)}</h3>{image_html(f'{task}: {run}', png)}")
            parts += [table_html(t, 4) for t in fit_tables.get(run, [])]
    parts.append("</body></html>")
    return "\n".join(parts)
