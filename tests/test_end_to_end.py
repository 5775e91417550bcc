"""Real lm-eval runs of the embedded SmolLM2-135M through both command lines."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from lm_eval_monkeys.metrics.estimators import coverage_at_k

pytestmark = pytest.mark.slow
SHORT = ["--limit", "2", "--gen_kwargs", "max_gen_toks=40", "--batch_size", "4", "--log_samples"]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def only(pattern: str, root: Path) -> Path:
    (found,) = root.rglob(pattern)
    return found


def test_gsm8k_through_lm_eval_monkeys(tmp_path: Path, embedded_model: str) -> None:
    result = run(
        [
            "lm-eval-monkeys",
            "--model",
            "hf",
            "--model_args",
            embedded_model,
            "--tasks",
            "monkeys_gsm8k",
            "--repeats",
            "4",
            "--output_path",
            str(tmp_path),
            *SHORT,
        ]
    )
    assert "coverage@4" in result.stdout and "majority@4" in result.stdout  # the printed table

    metrics = json.loads(only("results_*.json", tmp_path).read_text())["results"]["monkeys_gsm8k"]
    for k in (1, 2, 4):
        assert 0.0 <= metrics[f"coverage@{k},k-samples"] <= 1.0
        assert (
            0.0 <= metrics[f"majority@{k},k-samples"] <= metrics[f"coverage@{k},k-samples"] + 1e-12
        )
    assert metrics["coverage@1,k-samples"] == pytest.approx(metrics["majority@1,k-samples"])
    assert metrics["coverage@1,k-samples"] <= metrics["coverage@4,k-samples"]

    # Every sample is logged, and re-verifying the log reproduces coverage@k.
    logged = [json.loads(x) for x in only("samples_monkeys_gsm8k_*.jsonl", tmp_path).open()]
    assert len(logged) == 2 and all(len(row["resps"][0]) == 4 for row in logged)
    verify_in = tmp_path / "verify_in.jsonl"
    verify_in.write_text(
        "".join(
            json.dumps({"doc": row["doc"], "completion": completion, "doc_id": row["doc_id"]})
            + "\n"
            for row in logged
            for completion in row["resps"][0]
        )
    )
    verify_out = tmp_path / "verify_out.jsonl"
    run(
        [
            "lm-eval-monkeys",
            "verify",
            "--task",
            "monkeys_gsm8k",
            "--input",
            str(verify_in),
            "--output",
            str(verify_out),
        ]
    )
    verdicts = [json.loads(x) for x in verify_out.open()]
    assert len(verdicts) == 8
    for k in (1, 2, 4):
        per_doc = [
            coverage_at_k(4, sum(v["correct"] for v in verdicts if v["doc_id"] == d), k)
            for d in (0, 1)
        ]
        assert sum(per_doc) / 2 == pytest.approx(metrics[f"coverage@{k},k-samples"])


def test_math500_through_stock_lm_eval(tmp_path: Path, embedded_model: str) -> None:
    task_dir = run(["lm-eval-monkeys", "task-dir"]).stdout.strip()
    run(
        [
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            embedded_model,
            "--include_path",
            task_dir,
            "--tasks",
            "monkeys_math500",
            "--metadata",
            "repeats=4",
            "ks=[1,4]",
            "--output_path",
            str(tmp_path),
            *SHORT,
        ]
    )
    metrics = json.loads(only("results_*.json", tmp_path).read_text())["results"]["monkeys_math500"]
    names = {key.split(",")[0] for key in metrics if "@" in key and "stderr" not in key}
    assert names == {"coverage@1", "coverage@4", "majority@1", "majority@4"}
    logged = [json.loads(x) for x in only("samples_monkeys_math500_*.jsonl", tmp_path).open()]
    assert all(len(row["resps"][0]) == 4 for row in logged)


def test_embedded_model_store_extend_rescore_export(tmp_path: Path) -> None:
    """No --model: the embedded SmolLM2 on monkeys-hf, stored, extended, rescored, exported."""
    base = [
        "lm-eval-monkeys",
        "--tasks",
        "monkeys_gsm8k",
        "--limit",
        "1",
        "--gen_kwargs",
        "max_gen_toks=24",
        "--output_path",
        str(tmp_path),
    ]
    first = run([*base, "--repeats", "2"])
    assert "monkeys-hf" in first.stdout
    extended = run([*base, "--repeats", "3"])
    totals = re.findall(r"sampling \(MonkeysHF\):.*?/(\d+) ", extended.stderr)
    assert totals[-1] == "1", "only the one new sample is generated"
    exported = run(["lm-eval-monkeys", "export", str(tmp_path)]).stdout.splitlines()
    records = [json.loads(line) for line in exported]
    assert [r["sample_idx"] for r in records] == [0, 1, 2]
    assert all(r["prompt_tokens"] > 100 and r["completion_tokens"] <= 24 for r in records)
    run(["lm-eval-monkeys", "rescore", str(tmp_path)])
    rescored = json.loads((tmp_path / "rescore.json").read_text())["monkeys_gsm8k"]
    stored = json.loads(max(tmp_path.rglob("results_*.json")).read_text())["results"]
    assert rescored["coverage@2"] == stored["monkeys_gsm8k"]["coverage@2,k-samples"]
