"""Which metrics a task reports, and grouping answers only when a reported metric reads
vote classes: code, Lean and SWE-bench tasks report coverage unless majority is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from lm_eval.tasks import TaskManager

from lm_eval_monkeys.metrics import needs_votes
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.task_configs import TASK_DIR, installed_metadata
from lm_eval_monkeys.verifiers.answers.math import MathChecker

COVERAGE_ONLY = ("monkeys_codecontests", "monkeys_minif2f", "monkeys_minif2f_mathd")


def test_program_proof_and_patch_tasks_list_coverage_only() -> None:
    metadata = installed_metadata()
    for task in (*COVERAGE_ONLY, "monkeys_swebench_lite", "monkeys_codecontests_paper"):
        assert metadata[task]["metrics"] == ["coverage"], task
    for task in ("monkeys_gsm8k", "monkeys_math", "monkeys_math500", "monkeys_math500_paper"):
        assert "metrics" not in metadata[task], task  # the default: coverage and majority


@pytest.mark.parametrize(
    ("metadata", "reported"),
    [
        ({}, {"coverage"}),
        ({"metrics": ["coverage", "majority"]}, {"coverage", "majority"}),
        # `--metadata metrics=[coverage,majority]` reaches the task as this string
        ({"metrics": "[coverage,majority]"}, {"coverage", "majority"}),
        ({"metrics": "coverage"}, {"coverage"}),
    ],
)
def test_majority_of_a_code_task_only_when_asked(metadata: dict, reported: set[str]) -> None:
    manager = TaskManager(
        include_path=str(TASK_DIR), include_defaults=False, metadata={"repeats": 2, **metadata}
    )
    task = manager.load("monkeys_codecontests")["tasks"]["monkeys_codecontests"]
    assert {name.split("@")[0] for name in task.aggregation()} == reported


class CountingMath(MathChecker):
    """The real MATH checker, counting grouping work."""

    def __init__(self) -> None:
        self.keys = self.comparisons = 0

    def group_key(self, answer: str) -> str:
        self.keys += 1
        return super().group_key(answer)

    def equivalent(self, a: str, b: str) -> bool:
        self.comparisons += 1
        return super().equivalent(a, b)


COMPLETIONS = [f"$\\boxed{{{a}}}$" for a in ["\\frac12", "0.5", "2", "\\frac{4}{2}", "3", "3"]]


def test_grouping_is_skipped_when_no_metric_reads_votes() -> None:
    assert needs_votes(["coverage", "majority"]) and needs_votes(["rm_majority"])
    assert not needs_votes(["coverage", "rm_best"])
    checker = CountingMath()
    flat = score_completions(checker, {"answer": "7"}, COMPLETIONS, group=False).summary
    assert (checker.keys, checker.comparisons) == (0, 0)
    assert sorted(flat.class_sizes) == [1, 1, 1, 1, 2]  # each distinct answer alone
    grouped = score_completions(checker, {"answer": "7"}, COMPLETIONS, group=True).summary
    assert sorted(grouped.class_sizes) == [2, 2, 2]  # {1/2, 0.5} {2, 4/2} {3, 3}
    # Keys put 1/2 with 0.5 and 2 with 4/2: one comparison each, none across keys.
    assert (checker.keys, checker.comparisons) == (5, 2)


def test_rescore_honours_the_runs_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.4,seed=1"),
        *("--tasks", "monkeys_math500", "--limit", "3", "--repeats", "4"),
        *("--metadata", json.dumps({"metrics": ["coverage"]}), "--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rescored = run_cli("rescore", str(run_dir))
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    names = set(json.loads((run_dir / "rescore.json").read_text())["monkeys_math500"])
    assert {n for n in names if "@" in n} == {"coverage@1", "coverage@2", "coverage@4"}


def test_a_run_reporting_gpass_tau_runs_and_rescores(tmp_path: Path) -> None:
    """``gpass_0.5`` is a metric ``check_metric`` accepts: deciding whether to group answers
    by vote must look it up the same way (it once stopped the run with a KeyError)."""
    assert not needs_votes(["coverage", "gpass_0.5"]) and needs_votes(["gpass_0.5", "majority"])
    run_dir = tmp_path / "run"
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.4,seed=1"),
        *("--tasks", "monkeys_math500", "--limit", "2", "--repeats", "4"),
        *("--metadata", json.dumps({"metrics": ["coverage", "gpass_0.5"]})),
        *("--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "KeyError" not in result.stderr
    rescored = run_cli("rescore", str(run_dir))
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    names = set(json.loads((run_dir / "rescore.json").read_text())["monkeys_math500"])
    assert {"gpass_0.5@4", "coverage@4"} <= names
