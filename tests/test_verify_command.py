"""``lm-eval-monkeys verify``: the JSONL interface, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

GSM_DOC = {"question": "How many?", "answer": "2 + 2 = 4\n#### 4"}
MATH_DOC = {
    "problem": "Half?",
    "solution": "It is $\\boxed{\\frac{1}{2}}$.",
    "level": "Level 1",
    "type": "Algebra",
}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_verify_gsm8k_adds_verdicts_and_passes_extra_keys_through(tmp_path: Path) -> None:
    records = [
        {"doc": GSM_DOC, "completion": "2+2=4\n#### 4", "sample_idx": 0},
        {"doc": GSM_DOC, "completion": "#### 5", "sample_idx": 1},
        {"doc": GSM_DOC, "completion": "", "sample_idx": 2},
        {"doc": GSM_DOC, "completion": "The answer is 4.", "sample_idx": 3},
    ]
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "verify",
        "--task",
        "monkeys_gsm8k",
        "--input",
        str(write_jsonl(tmp_path / "in.jsonl", records)),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["correct"] for r in rows] == [True, False, False, False]  # strict: no ####
    assert [r["answer"] for r in rows] == ["4", "5", None, None]
    assert [r["sample_idx"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["doc"] == GSM_DOC

    flexible = run_cli(
        "verify",
        "--task",
        "monkeys_gsm8k",
        "--verifier",
        "gsm8k:flexible",
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(out),
    )
    assert flexible.returncode == 0, flexible.stderr
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()][3] is True


def test_verify_math500_schema_and_equivalence(tmp_path: Path) -> None:
    doc = {
        "problem": "Half?",
        "solution": "...",
        "answer": "\\frac{1}{2}",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "x",
    }
    records = [
        {"doc": doc, "completion": "so $\\boxed{0.5}$"},
        {
            "doc": MATH_DOC,
            "completion": "Final Answer: The final answer is $\\dfrac12$. I hope it is correct.",
        },
        {"doc": MATH_DOC, "completion": "$\\boxed{2}$"},
    ]
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "verify",
        "--task",
        "monkeys_math500",
        "--input",
        str(write_jsonl(tmp_path / "in.jsonl", records)),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == [True, True, False]


def test_non_utf8_completion_is_incorrect_and_kept_byte_for_byte(tmp_path: Path) -> None:
    good = json.dumps({"doc": GSM_DOC, "completion": "#### 4"}).encode()
    bad = b'{"doc": ' + json.dumps(GSM_DOC).encode() + b', "completion": "#### 4 \xff\xfe"}'
    source = tmp_path / "in.jsonl"
    source.write_bytes(good + b"\n" + bad + b"\n")
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "verify", "--task", "monkeys_gsm8k", "--input", str(source), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2
    assert b"\xff\xfe" in lines[1]
    assert b'"correct": false' in lines[1] and b'"correct": true' in lines[0]


def test_malformed_line_is_a_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"doc": GSM_DOC, "completion": "#### 4"}) + "\n{not json\n")
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "verify", "--task", "monkeys_gsm8k", "--input", str(source), "--output", str(out)
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lm-eval-monkeys: error:") and "in.jsonl:2" in last
    assert "Traceback" not in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_missing_fields_and_unknown_task_are_clear_errors(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"completion": "#### 4"}])
    result = run_cli(
        "verify",
        "--task",
        "monkeys_gsm8k",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert result.returncode != 0 and '"doc"' in result.stderr and "Traceback" not in result.stderr

    result = run_cli(
        "verify",
        "--task",
        "monkeys_nope",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert result.returncode != 0
    assert "unknown task 'monkeys_nope'" in result.stderr and "monkeys_gsm8k" in result.stderr

    wrong_schema = write_jsonl(
        tmp_path / "w.jsonl", [{"doc": {"question": "?"}, "completion": "1"}]
    )
    result = run_cli(
        "verify",
        "--task",
        "monkeys_gsm8k",
        "--input",
        str(wrong_schema),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert result.returncode != 0 and "hub schema" in result.stderr


def test_task_dir_points_at_the_shipped_configs() -> None:
    result = run_cli("task-dir")
    assert result.returncode == 0
    directory = Path(result.stdout.strip())
    assert (directory / "monkeys_gsm8k.yaml").is_file()
    assert (directory / "_monkeys_template_yaml").is_file()
