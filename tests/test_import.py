"""``import`` and ``audit``: the paper's sample formats into run stores, verdicts side by side.

The files are written here in the schemas the paper's code and dataset define: one YAML
file per problem (``prompt``, ``question``, ``samples``, ``gt_answer`` or ``test_cases``
or ``theorem_name``, and ``is_corrects`` once evaluated), and the hub config's JSON rows
(the same columns, ``orig_dset_idx`` for CodeContests). Everything runs through the real
command, a real SQLite store and the real checkers (the code sandbox included).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml
from conftest import run_cli


def gsm8k_test(data_dir: Path, count: int) -> list[dict]:
    lines = (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


def gsm8k_rows(data_dir: Path) -> list[dict]:
    docs = gsm8k_test(data_dir, 3)
    answers = [doc["answer"].split("####")[-1].strip() for doc in docs]
    rows = [
        {
            "question": doc["question"],
            "prompt": f"Question: {doc['question']}\nAnswer:",
            "gt_answer": doc["answer"],
            "samples": [f"So #### {answer}", "I think #### 7777", f"#### {answer}.0"],
            # The source calls the second sample correct: right only if its checker is wrong.
            "is_corrects": [True, True, False],
        }
        for doc, answer in zip(docs, answers, strict=True)
    ]
    rows[1]["samples"][2] = None  # a sample that is not a string
    del rows[2]["is_corrects"]  # a problem the source never judged
    rows.append(
        {
            "question": "A question that is not in GSM8K at all?",
            "prompt": "Question: ...",
            "gt_answer": "#### 1",
            "samples": ["#### 1"],
            "is_corrects": [True],
        }
    )
    return rows


def write_hub_copy(directory: Path, config: str, rows: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{config}.json"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def store_rows(run_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        return db.execute(sql).fetchall()


def test_hub_config_imports_matches_and_audits(tmp_path: Path, data_dir: Path) -> None:
    config = "GSM8K_Llama-3-8B-Instruct"
    copy = write_hub_copy(tmp_path / "monkey_business", config, gsm8k_rows(data_dir))
    run = tmp_path / "run"
    imported = run_cli("import", str(copy.parent), "--config", config, "--output", str(run))
    assert imported.returncode == 0, imported.stderr
    # The unmatched problem is named, the non-text sample and the unjudged problem counted.
    assert "3 problems, 9 samples imported" in imported.stdout
    assert "1 problems match no monkeys_gsm8k document" in imported.stdout
    assert "not in GSM8K at all" in imported.stdout
    assert "1 samples were not text" in imported.stdout
    assert "1 problems carry no source verdicts" in imported.stdout

    assert store_rows(run, "SELECT DISTINCT doc_id FROM samples ORDER BY doc_id") == [
        (0,),
        (1,),
        (2,),
    ]
    not_text = "SELECT completion FROM samples WHERE doc_id = 1 AND sample_idx = 2"
    assert store_rows(run, not_text) == [("",)]
    (record,) = store_rows(run, "SELECT record FROM records")
    record = json.loads(record[0])
    assert record["task"] == "monkeys_gsm8k" and record["checker_spec"] == "gsm8k"
    assert record["prompt"]["imported_from"]["config"] == config
    assert record["prompt"]["imported_from"]["model"] == "Llama-3-8B-Instruct"
    assert store_rows(run, "SELECT COUNT(*) FROM source_verdicts") == [(6,)]

    rescored = run_cli("rescore", str(run))
    assert rescored.returncode == 0, rescored.stderr
    # Samples 0 and 2 of doc 0 and sample 0 of docs 1 and 2 are right: every problem
    # has a correct sample, coverage@1 = (2/3 + 1/3 + 2/3) / 3.
    scores = json.loads((run / "rescore.json").read_text())["monkeys_gsm8k"]
    assert abs(scores["coverage@1"] - 5 / 9) < 1e-9

    disagreements = tmp_path / "disagree.jsonl"
    audited = run_cli("audit", str(run), "--output", str(disagreements))
    assert audited.returncode == 0, audited.stderr
    lines = [json.loads(line) for line in disagreements.read_text().splitlines()]
    # The source called "#### 7777" correct (twice) and "#### N.0" wrong (doc 0): three
    # disagreements, each with both verdicts and both checkers' answers.
    assert sorted((r["doc_id"], r["sample_idx"]) for r in lines) == [(0, 1), (0, 2), (1, 1)]
    wrongly_right = next(r for r in lines if (r["doc_id"], r["sample_idx"]) == (0, 1))
    assert wrongly_right["source_correct"] is True and wrongly_right["correct"] is False
    assert wrongly_right["answer"] == "7777" and wrongly_right["source_answer"] == "7777"
    assert "agreement 3/6 samples" in audited.stdout
    assert "3 samples without a source verdict" in audited.stdout
    assert "3 disagreeing samples" in audited.stdout


def test_yaml_directory_imports_math_with_the_papers_answer_rule(
    tmp_path: Path, data_dir: Path
) -> None:
    lines = (data_dir / "math" / "test.jsonl").read_text().splitlines()[:2]
    problems = [json.loads(line) for line in lines]
    samples_dir = tmp_path / "samples"
    samples_dir.mkdir()
    for index, problem in enumerate(problems):
        record = {
            "prompt": f"Problem:\n{problem['question']}\n\nSolution:",
            "question": problem["question"],
            "samples": ["Final Answer: The final answer is $2$. I hope it is correct."] * 2,
            "gt_answer": problem["answer"],
            "is_corrects": [True, False],
        }
        (samples_dir / f"{index}.yaml").write_text(yaml.safe_dump(record))
    run = tmp_path / "run"
    imported = run_cli(
        "import", str(samples_dir), "--benchmark", "math", "--model", "mine", "--output", str(run)
    )
    assert imported.returncode == 0, imported.stderr
    assert "monkeys_math: 2 problems, 4 samples imported" in imported.stdout
    out = tmp_path / "d.jsonl"
    audited = run_cli("audit", str(run), "--output", str(out))
    assert audited.returncode == 0, audited.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # Problem 0's answer is 2 (the checker agrees with the first verdict, not the second);
    # problem 1's is not 2 (the checker disagrees with the first).
    assert sorted((r["doc_id"], r["sample_idx"], r["correct"]) for r in rows) == [
        (0, 1, True),
        (1, 0, False),
    ]
    assert all(r["source_answer"] == "2" for r in rows)


def test_codecontests_tests_come_from_the_data_not_the_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "codecontests").mkdir(parents=True)
    tests = {"input": ["1 2\n", "5 7\n"], "output": ["3\n", "12\n"]}
    empty: dict[str, list[str]] = {"input": [], "output": []}

    def problem(name: str, description: str) -> dict:
        return {
            "name": name,
            "description": description,
            "public_tests": tests,
            "private_tests": empty,
            "generated_tests": empty,
            "time_limit": {"seconds": 2, "nanos": 0},
            "memory_limit_bytes": 256 << 20,
            "difficulty": 1,
        }

    split = [
        problem("A. Pictures", "See <image>."),
        problem("B. Other", "Print the difference."),
        problem("C. Sum", "Print the sum of two numbers."),
    ]
    (data / "codecontests" / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in split))
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    wrong = "```python\nprint(3)\n```"  # passes only a record's single test, not the data's
    rows = [
        {
            "question": "Print the sum of two numbers.",
            "prompt": "Q: ...",
            "orig_dset_idx": 2,
            "samples": [right, wrong],
            "is_corrects": [True, True],
        }
    ]
    config = "CodeContests_Llama-3-8B-Instruct"
    copy = write_hub_copy(tmp_path / "mb", config, rows)
    run = tmp_path / "run"
    env = {"MONKEYS_DATA_DIR": str(data)}
    imported = run_cli("import", str(copy), "--output", str(run), env=env)
    assert imported.returncode == 0, imported.stderr
    # orig_dset_idx 2 is the task's document 1: the problem with an image is not a document.
    assert store_rows(run, "SELECT DISTINCT task, doc_id FROM samples") == [
        ("monkeys_codecontests", 1)
    ]
    out = tmp_path / "d.jsonl"
    audited = run_cli("audit", str(run), "--output", str(out), env=env)
    assert audited.returncode == 0, audited.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["sample_idx"], row["source_correct"], row["correct"]) == (1, True, False)


def test_codecontests_without_local_tests_is_refused_before_writing(
    tmp_path: Path, data_dir: Path
) -> None:
    copy = write_hub_copy(
        tmp_path / "mb", "CodeContests_x", [{"question": "q", "orig_dset_idx": 0, "samples": []}]
    )
    run = tmp_path / "run"
    refused = run_cli("import", str(copy), "--output", str(run))
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "test.jsonl" in refused.stderr
    assert not run.exists()


def test_bad_sources_are_one_line_and_write_nothing(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "run"
    for args in (
        [str(tmp_path / "missing")],  # neither a directory, a file nor a dataset id
        ["ScalingIntelligence/monkey_business"],  # a hub dataset without --config
        [str(write_hub_copy(tmp_path / "x", "Unknown_model", [{"samples": []}]))],
    ):
        result = run_cli("import", *args, "--output", str(run))
        assert result.returncode != 0, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert not run.exists()
    # is_corrects of the wrong length: a damaged record, named; no store left behind.
    rows = gsm8k_rows(data_dir)[:1]
    rows[0]["is_corrects"] = [True]
    damaged = write_hub_copy(tmp_path / "y", "GSM8K_m", rows)
    result = run_cli("import", str(damaged), "--output", str(run))
    assert result.returncode != 0 and "is_corrects" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run.exists() and not list(tmp_path.glob(".run.importing*"))


def test_reimport_adds_nothing_and_audit_needs_imported_verdicts(
    tmp_path: Path, data_dir: Path
) -> None:
    copy = write_hub_copy(tmp_path / "mb", "GSM8K_m", gsm8k_rows(data_dir))
    run = tmp_path / "run"
    for _ in range(2):
        result = run_cli("import", str(copy), "--output", str(run))
        assert result.returncode == 0, result.stderr
    assert store_rows(run, "SELECT COUNT(*) FROM samples") == [(9,)]
    other = write_hub_copy(tmp_path / "mb2", "GSM8K_other", gsm8k_rows(data_dir))
    clash = run_cli("import", str(other), "--output", str(run))
    assert clash.returncode != 0 and "different run configuration" in clash.stderr
