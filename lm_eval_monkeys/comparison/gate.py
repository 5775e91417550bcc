"""The CI gate on a comparison, and the comparison written for people and for CI systems.

A condition names a metric@k (optionally ``TASK/``) and when the candidate (the second
run) fails against the baseline (the first):

- ``coverage@16 < -0.02``: the difference candidate - baseline is below the margin;
- ``coverage@16 significant_drop 0.05``: the candidate is lower and the paired test's
  p-value is below the level.

A gate also fails when the candidate lacks a task or problems the baseline holds (a
candidate that skipped the hard problems must not pass on the rest), unless
``allow_missing``.

Outputs: a text table (stdout), Markdown (a CI job summary), JSON, and JUnit XML with
one test case per (condition, task).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lm_eval_monkeys.comparison.compare_runs import Comparison, TaskComparison, leaderboard
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.output_file import writable_output
from lm_eval_monkeys.text_tables import markdown_table, text_table

_CONDITION = re.compile(
    r"^\s*(?:(?P<task>[\w.-]+)/)?(?P<metric>[a-z][a-z0-9_.]*)@(?P<k>\d+)\s*"
    r"(?:(?P<op><=|<)\s*(?P<margin>\S+)|significant_drop\s+(?P<level>\S+))\s*$"
)


@dataclass(frozen=True)
class Condition:
    """One ``--fail_if`` condition, as written and as parsed."""

    text: str
    task: str | None  # None: every task holding the metric@k
    metric: str
    k: int
    margin: float | None  # fail if difference < margin (<= with ``inclusive``)
    inclusive: bool
    level: float | None  # fail if lower and p < level

    @property
    def column(self) -> str:
        return f"{self.metric}@{self.k}"


def parse_condition(text: str) -> Condition:
    """A condition from its text; anything else is an error showing both forms."""
    match = _CONDITION.match(text)
    try:
        if match is None:
            raise ValueError
        margin = None if match["margin"] is None else float(match["margin"])
        level = None if match["level"] is None else float(match["level"])
    except ValueError:
        raise MonkeysError(
            f"cannot read the condition {text!r}; write e.g. 'coverage@16 < -0.02' (a drop "
            "beyond a margin) or 'coverage@16 significant_drop 0.05' (optionally TASK/ first)"
        ) from None
    if level is not None and not 0 < level < 1:
        raise MonkeysError(f"the level of {text!r} must be in (0, 1), e.g. 0.05")
    if margin is not None and not math.isfinite(margin):
        raise MonkeysError(f"the margin of {text!r} must be a finite number, e.g. -0.02")
    return Condition(
        text.strip(),
        match["task"],
        match["metric"],
        int(match["k"]),
        margin,
        match["op"] == "<=",
        level,
    )


@dataclass(frozen=True)
class Check:
    """A condition evaluated on one task: failed or passed, and why."""

    condition: str
    task: str
    failed: bool
    difference: float | None  # None: a check of what the candidate holds
    p_value: float | None
    detail: str


HOLDS_BASELINE = "the candidate holds the baseline's tasks and problems"


def evaluate(
    comparison: Comparison, conditions: list[Condition], allow_missing: bool = False
) -> list[Check]:
    """Every condition on every task it applies to, candidate (run 2) against baseline
    (run 1); with conditions, a failed check per task or problems the candidate lacks
    (passed, saying so, with ``allow_missing``)."""
    if conditions and len(comparison.runs) != 2:
        raise MonkeysError("--fail_if gates a candidate on a baseline: give exactly two runs")
    allowed = "allowed by --allow_missing" if allow_missing else "--allow_missing allows it"
    checks = [
        Check(HOLDS_BASELINE, gap.task, not allow_missing, None, None, f"{gap.detail}; {allowed}")
        for gap in (comparison.gaps if conditions else [])
    ]
    for condition in conditions:
        tasks = [
            t
            for t in comparison.tasks.values()
            if condition.task in (None, t.task) and condition.column in t.columns
        ]
        if not tasks:
            raise MonkeysError(
                f"no compared task holds {condition.column} for {condition.text!r}; "
                f"tasks: {', '.join(comparison.tasks)}"
            )
        checks += [_check(condition, t, comparison.runs) for t in tasks]
    return checks


def _check(condition: Condition, task: TaskComparison, runs: list[str]) -> Check:
    result = task.pairs[(runs[0], runs[1])][task.columns.index(condition.column)]
    diff, p = result.difference, result.p_value
    if condition.margin is not None:
        op = "<=" if condition.inclusive else "<"
        failed = diff <= condition.margin if condition.inclusive else diff < condition.margin
        detail = f"difference {diff:+.4f} {'' if failed else 'not '}{op} {condition.margin:g}"
    else:
        assert condition.level is not None
        failed = diff < 0 and p < condition.level
        detail = (
            f"difference {diff:+.4f}, p = {p:.3g}: "
            f"{'a significant drop' if failed else 'no significant drop'} "
            f"at level {condition.level:g}"
        )
    return Check(condition.text, task.task, failed, diff, p, detail)


# -- renderings ------------------------------------------------------------------------------


def pair_rows(comparison: Comparison, task: TaskComparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one task's pairwise table."""
    level = f"{1 - comparison.alpha:.0%}"
    two = len(comparison.runs) == 2
    headers = [
        *([] if two else ["A", "B"]),
        "metric",
        "A" if not two else comparison.runs[0],
        "B" if not two else comparison.runs[1],
        "B − A",
        f"{level} CI",
        "p" if two else "p (Holm)",
        "won / lost / tied",
    ]
    rows = []
    for (a, b), results in task.pairs.items():
        for column, r, p in zip(task.columns, results, task.adjusted[(a, b)], strict=True):
            rows.append(
                [
                    *([] if two else [a, b]),
                    column,
                    f"{r.mean_a:.4f}",
                    f"{r.mean_b:.4f}",
                    f"{r.difference:+.4f}",
                    f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                    f"{p:.3g}",
                    f"{r.won} / {r.lost} / {r.tied}",
                ]
            )
    return headers, rows


def _leaderboard_rows(comparison: Comparison, task: TaskComparison) -> tuple[str, list[list[str]]]:
    """The ranking on the task's first metric at its largest k."""
    metric = task.columns[0].split("@")[0]
    column = max((c for c in task.columns if c.split("@")[0] == metric), key=_k_of)
    rows = [
        [str(s.rank), s.run, f"{s.mean:.4f}", "yes" if s.top else ""]
        for s in leaderboard(task, column, comparison.alpha)
    ]
    return column, rows


def _k_of(column: str) -> int:
    return int(column.rsplit("@", 1)[1])


_TOP = "not significantly worse than the best"


def text(comparison: Comparison, checks: list[Check]) -> str:
    """The comparison as plain text, for the terminal."""
    blocks = [f"runs: {', '.join(comparison.runs)}; p-value correction: {comparison.correction}"]
    for task in comparison.tasks.values():
        blocks.append(
            f"{task.task} ({len(task.doc_ids)} problems)\n"
            + text_table(*pair_rows(comparison, task))
        )
        if len(comparison.runs) > 2:
            column, rows = _leaderboard_rows(comparison, task)
            headers = ["rank", "run", column, _TOP]
            blocks.append(f"{task.task} leaderboard\n" + text_table(headers, rows))
    blocks += [f"note: {note}" for note in comparison.notes]
    if checks:
        lines = [
            f"{'FAIL' if c.failed else 'pass'}  {c.task}: {c.condition}  ({c.detail})"
            for c in checks
        ]
        blocks.append("gate\n" + "\n".join("  " + line for line in lines))
    return "\n\n".join(blocks)


def markdown(comparison: Comparison, checks: list[Check]) -> str:
    """The comparison as Markdown, e.g. for ``$GITHUB_STEP_SUMMARY``."""
    runs = " → ".join(f"`{r}`" for r in comparison.runs)
    parts = [f"## lm-eval-monkeys compare: {runs}"]
    if checks:
        failed = sum(c.failed for c in checks)
        verdict = (
            f"**{failed} of {len(checks)} conditions failed**"
            if failed
            else "all conditions passed"
        )
        rows = [
            ["❌ fail" if c.failed else "✅ pass", c.task, f"`{c.condition}`", c.detail]
            for c in checks
        ]
        parts += [
            f"Gate: {verdict}.",
            markdown_table(["result", "task", "condition", "detail"], rows),
        ]
    for task in comparison.tasks.values():
        parts.append(f"### {task.task} ({len(task.doc_ids)} problems)")
        parts.append(markdown_table(*pair_rows(comparison, task)))
        if len(comparison.runs) > 2:
            column, rows = _leaderboard_rows(comparison, task)
            parts.append(markdown_table(["rank", "run", column, _TOP], rows))
    parts.append(
        f"Paired over problems: B − A with a seeded bootstrap interval and a sign-flip test; "
        f"p-value correction: {comparison.correction}."
    )
    parts += [f"- {note}" for note in comparison.notes]
    return "\n\n".join(parts) + "\n"


def as_json(comparison: Comparison, checks: list[Check]) -> dict[str, Any]:
    """The comparison and the gate as plain data (what ``--json`` writes)."""
    tasks = {}
    for task in comparison.tasks.values():
        pairs = [
            {
                "a": a,
                "b": b,
                "metrics": {
                    column: {**asdict(r), "p_adjusted": p}
                    for column, r, p in zip(
                        task.columns, results, task.adjusted[(a, b)], strict=True
                    )
                },
            }
            for (a, b), results in task.pairs.items()
        ]
        column, _ = _leaderboard_rows(comparison, task)
        standings = [asdict(s) for s in leaderboard(task, column, comparison.alpha)]
        tasks[task.task] = {
            "problems": len(task.doc_ids),
            "pairs": pairs,
            "leaderboard": {"metric": column, "runs": standings},
        }
    return {
        "runs": comparison.runs,
        "alpha": comparison.alpha,
        "correction": comparison.correction,
        "tasks": tasks,
        "notes": comparison.notes,
        "gate": {
            "passed": not any(c.failed for c in checks),
            "checks": [asdict(c) for c in checks],
        },
    }


def json_text(comparison: Comparison, checks: list[Check]) -> str:
    return json.dumps(as_json(comparison, checks), indent=2, allow_nan=False) + "\n"


def junit_xml(comparison: Comparison, checks: list[Check]) -> str:
    """JUnit XML: one test case per (condition, task), a failure element when it failed."""
    suite = ET.Element(
        "testsuite",
        name=f"lm-eval-monkeys compare {' vs '.join(comparison.runs)}",
        tests=str(len(checks)),
        failures=str(sum(c.failed for c in checks)),
        errors="0",
    )
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname=check.task, name=check.condition)
        if check.failed:
            ET.SubElement(
                case, "failure", message=check.detail, type="regression"
            ).text = f"{check.task}: {check.condition}: {check.detail}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_outputs(files: dict[Path, str], step_summary: Path | None, summary: str) -> None:
    """Write every rendered output (each whole or not at all) and append the Markdown to a
    CI job summary when one is named."""
    for path, content in files.items():
        with writable_output(path) as target:
            try:
                target.write_text(content)
            except OSError as err:
                raise MonkeysError(f"cannot write {path}: {err.strerror}") from None
    if step_summary is not None:
        try:
            with step_summary.open("a") as handle:
                handle.write(summary)
        except OSError as err:
            raise MonkeysError(f"cannot append to {step_summary}: {err.strerror}") from None
