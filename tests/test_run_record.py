"""The run record is the whole truth: a run judged by a ``command:`` hook is rescored,
exported and reported with that hook's verdicts, and no answer is judged twice.

Real subprocesses throughout: ``lm-eval-monkeys`` on ``monkeys-synthetic``, a hook that is
a real process and logs every request it answers, a real SQLite store.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import run_cli

HOOK = """\
import json, sys
log = open(sys.argv[1], "a")
for line in sys.stdin:
    request = json.loads(line)
    log.write(json.dumps([request["doc"]["question"], request["completion"]]) + "\\n")
    log.flush()
    print(json.dumps({"id": request["id"], "correct": True}), flush=True)
"""


def judged(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("hook_run")
    (root / "yes.py").write_text(HOOK)
    log = root / "judged.log"
    spec = f"command:{sys.executable} {root / 'yes.py'} {log}"
    run_dir = root / "run"
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.3,seed=0"),
        *("--tasks", "monkeys_gsm8k", "--limit", "5", "--repeats", "4"),
        *("--metadata", json.dumps({"verifier": spec}), "--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, log, spec


def distinct_pairs(run_dir: Path) -> set[tuple[int, str]]:
    """(doc, completion) pairs of the store with an answer (the hook's key is the text)."""
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        rows = db.execute("SELECT doc_id, completion FROM samples").fetchall()
    return {(doc_id, text) for doc_id, text in rows if text}


def test_the_store_records_the_runs_checker_and_prompt(hook_run: tuple[Path, Path, str]) -> None:
    run_dir, _, spec = hook_run
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        (text,) = db.execute("SELECT record FROM records WHERE task = 'monkeys_gsm8k'").fetchone()
    record = json.loads(text)
    assert record["checker_spec"] == spec
    assert record["repeats"] == 4 and record["ks"] == [1, 2, 4]
    assert record["metrics"] == ["coverage", "majority"]
    assert record["prompt"]["num_fewshot"] == 5
    assert record["prompt"]["doc_to_text"] == "Question: {{question}}\nAnswer:"
    assert record["reward_prompt"] == {"template": "Question: {{question}}\nAnswer:"}


def test_rescore_export_report_use_the_hooks_verdicts_and_never_call_it_again(
    hook_run: tuple[Path, Path, str], tmp_path: Path
) -> None:
    run_dir, log, spec = hook_run
    during_run = judged(log)
    # Each distinct answer was judged exactly once during the run.
    assert len(during_run) == len(set(during_run)) == len(distinct_pairs(run_dir)) > 5

    rescored = run_cli("rescore", str(run_dir))
    assert rescored.returncode == 0, rescored.stderr[-2000:]
    results = json.loads((run_dir / "rescore.json").read_text())["monkeys_gsm8k"]
    assert results["verifier"] == spec
    assert results["coverage@4"] == 1.0  # the hook accepts every answer
    exported = run_cli("export", str(run_dir), "--output", str(tmp_path / "all.jsonl"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert len(records) == 20
    assert all(r["correct"] == bool(r["completion"]) for r in records)
    reported = run_cli("report", str(run_dir), "--output", str(tmp_path / "report"))
    assert reported.returncode == 0, reported.stderr[-2000:]
    assert (tmp_path / "report" / "report.html").is_file()
    assert judged(log) == during_run, "the hook was asked again after the run"


def test_another_checker_is_explicit_and_said(hook_run: tuple[Path, Path, str]) -> None:
    run_dir, log, spec = hook_run
    before = judged(log)
    other = run_cli("rescore", str(run_dir), "--verifier", "gsm8k")
    assert other.returncode == 0, other.stderr[-2000:]
    assert f"verifying with gsm8k instead of the run's {spec}" in other.stderr
    assert "checker gsm8k" in other.stdout
    assert json.loads((run_dir / "rescore.json").read_text())["monkeys_gsm8k"]["coverage@4"] < 1
    assert judged(log) == before


def test_a_run_asking_for_another_checker_on_the_store_is_refused(
    hook_run: tuple[Path, Path, str],
) -> None:
    run_dir = hook_run[0]
    again = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.3,seed=0"),
        *("--tasks", "monkeys_gsm8k", "--limit", "5", "--repeats", "4"),
        *("--output_path", str(run_dir)),
    )
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert "another checker (" in last and "rescore" in last and "--verifier gsm8k" in last


def test_a_store_without_records_is_scored_as_the_installed_config_says(tmp_path: Path) -> None:
    """A store written through the ``SampleStore`` API holds no run records: its checker,
    metrics and reward prompt come from the installed config, a ``!function`` prompt
    included (read without lm-eval's private YAML loader)."""
    from lm_eval_monkeys.models.reward_model import task_prompt
    from lm_eval_monkeys.store import SampleStore, installed_record

    record = installed_record("monkeys_math")
    assert record.checker_spec == "math" and record.metrics == ("coverage", "majority")
    assert record.reward_prompt["function"] == "lm_eval.tasks.minerva_math.utils:doc_to_text"
    assert installed_record("monkeys_math", "gsm8k").checker_spec == "gsm8k"
    with SampleStore(tmp_path) as store:
        assert store.records.get("monkeys_math") is None
        prompt = task_prompt(store, "monkeys_math")({"problem": "What is 1+1?"})
    assert "What is 1+1?" in prompt and prompt.startswith("Problem:")
    with pytest.raises(Exception, match="no run record and no installed config"):
        installed_record("no_such_task")
