"""``lm-eval-monkeys compare`` end to end on stored monkeys-synthetic runs with known
effects: the same run twice, a real drop, other problems, other prompts, three runs."""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.store import Sample, SampleStore, prompt_hash

TASK = "monkeys_gsm8k"


def synthetic_run(directory: Path, accuracy: float, *extra: str, limit: int = 40) -> Path:
    """40 GSM8K problems x 16 samples. Per-problem success rates come from the seed, so
    runs with one seed and different accuracies differ on every problem the same way."""
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", f"accuracy={accuracy},seed=1"),
        *(
            "--tasks",
            TASK,
            "--limit",
            str(limit),
            "--repeats",
            "16",
            "--output_path",
            str(directory),
        ),
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    base = synthetic_run(root / "base", 0.4)
    copy = root / "copy"
    shutil.copytree(base, copy)
    return {
        "base": base,
        "copy": copy,
        "drop": synthetic_run(root / "drop", 0.15),
        "fewer": synthetic_run(root / "fewer", 0.4, limit=25),
        "prompts": synthetic_run(root / "prompts", 0.4, "--gen_kwargs", "max_gen_toks=99"),
        "flexible": synthetic_run(root / "flexible", 0.4, "--metadata", "verifier=gsm8k:flexible"),
    }


def error_line(result) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("lm-eval-monkeys: error:")]
    return line


def test_same_run_twice_differs_by_exactly_zero(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "same.json"
    result = run_cli("compare", str(runs["base"]), str(runs["copy"]), "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    (pair,) = json.loads(out.read_text())["tasks"][TASK]["pairs"]
    assert set(pair["metrics"]) == {
        f"{m}@{k}" for m in ("coverage", "majority") for k in (1, 2, 4, 8, 16)
    }
    for r in pair["metrics"].values():
        assert (r["difference"], r["ci_low"], r["ci_high"], r["p_value"]) == (0.0, 0.0, 0.0, 1.0)
        assert (r["won"], r["lost"], r["tied"]) == (0, 0, 40)
    # The same directory twice is the same comparison, under two labels.
    again = run_cli("compare", str(runs["base"]), str(runs["base"]), "--ks", "4")
    assert again.returncode == 0 and "base (2)" in again.stdout and "+0.0000" in again.stdout


def test_ci_gate_end_to_end_on_a_real_drop(runs: dict[str, Path], tmp_path: Path) -> None:
    summary, result_json, junit, step = (
        tmp_path / n for n in ("s.md", "r.json", "j.xml", "step.md")
    )
    step.write_text("earlier step\n")
    result = run_cli(
        *("compare", str(runs["base"]), str(runs["drop"]), "--metrics", "coverage,passall"),
        *("--fail_if", "coverage@16 < -0.02", "--fail-if", "coverage@4 significant_drop 0.05"),
        *("--fail_if", "majority@16 < -0.9", "--fail_if", f"{TASK}/gpass_0.5@8 < -0.01"),
        *("--summary", str(summary), "--json", str(result_json), "--junit", str(junit)),
        env={"GITHUB_STEP_SUMMARY": str(step)},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "FAIL  monkeys_gsm8k: coverage@16 < -0.02" in result.stdout
    assert "pass  monkeys_gsm8k: majority@16 < -0.9" in result.stdout

    data = json.loads(result_json.read_text())
    checks = {c["condition"]: c for c in data["gate"]["checks"]}
    assert data["gate"]["passed"] is False
    assert [checks[c]["failed"] for c in checks] == [True, True, False, True]
    (pair,) = data["tasks"][TASK]["pairs"]
    cov = pair["metrics"]["coverage@4"]
    assert cov["difference"] < -0.1 and cov["ci_high"] < 0 and cov["p_value"] < 0.01
    assert cov["lost"] > cov["won"]
    assert "passall@16" in pair["metrics"] and "gpass_0.5@8" in pair["metrics"]
    assert checks["coverage@4 significant_drop 0.05"]["p_value"] == cov["p_value"]

    text = summary.read_text()
    assert text.startswith("## lm-eval-monkeys compare: `base` → `drop`")
    assert "**3 of 4 conditions failed**" in text and text.count("❌ fail") == 3
    assert "| coverage@4 |" in text
    assert step.read_text() == "earlier step\n" + text

    root = ET.parse(junit).getroot()
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("4", "3")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == set(checks)
    assert all(c.get("classname") == TASK for c in cases.values())
    assert cases["majority@16 < -0.9"].find("failure") is None
    failure = cases["coverage@16 < -0.02"].find("failure")
    assert failure is not None and "difference -" in failure.get("message")


def test_gate_passes_when_the_candidate_does_not_regress(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    junit = tmp_path / "j.xml"
    result = run_cli(
        "compare",
        str(runs["drop"]),
        str(runs["base"]),
        "--fail_if",
        "coverage@16 significant_drop 0.05",
        "--junit",
        str(junit),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("1", "0")


def test_runs_on_different_problems_are_refused_unless_intersected(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    refused = run_cli("compare", str(runs["base"]), str(runs["fewer"]), "--json", str(out))
    assert "different problems of monkeys_gsm8k (base: 40, fewer: 25; 25 shared)" in error_line(
        refused
    )
    assert "--intersection" in error_line(refused) and not out.exists()
    accepted = run_cli(
        "compare", str(runs["base"]), str(runs["fewer"]), "--intersection", "--json", str(out)
    )
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["tasks"][TASK]["problems"] == 25
    assert any("25 problems every run holds" in note for note in data["notes"])
    (pair,) = data["tasks"][TASK]["pairs"]
    # The 25 shared problems were sampled identically (same seed and accuracy).
    assert pair["metrics"]["coverage@16"]["difference"] == 0.0


def test_runs_with_different_prompts_are_refused_unless_allowed(runs: dict[str, Path]) -> None:
    refused = error_line(run_cli("compare", str(runs["base"]), str(runs["prompts"])))
    assert "monkeys_gsm8k prompts differ (run record: generation_kwargs)" in refused
    assert "--different_prompts" in refused
    allowed = run_cli(
        "compare", str(runs["base"]), str(runs["prompts"]), "--different_prompts", "--ks", "1,16"
    )
    assert allowed.returncode == 0, allowed.stderr[-2000:]


def hand_written_store(run_dir: Path, data_dir: Path, prompts: list[str]) -> Path:
    """GSM8K problems with the given prompt texts and 4 samples each, written directly
    (no run record: per-problem prompt hashes are all there is to compare)."""
    docs = [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").open()][: len(prompts)]
    with SampleStore(run_dir) as store:
        store.bind_config({"model": "hand-written"})
        store.register_docs(
            [
                (TASK, i, doc, prompt_hash(text, {}), {})
                for i, (doc, text) in enumerate(zip(docs, prompts, strict=True))
            ]
        )
        store.add(
            (TASK, i, Sample(j, f"#### {j}", 10, 2)) for i in range(len(docs)) for j in range(4)
        )
    return run_dir


def test_per_problem_prompts_are_compared_when_runs_have_no_record(
    tmp_path: Path, data_dir: Path
) -> None:
    a = hand_written_store(tmp_path / "a", data_dir, ["p0", "p1", "p2"])
    b = hand_written_store(tmp_path / "b", data_dir, ["p0", "other", "p2"])
    refused = error_line(run_cli("compare", str(a), str(b)))
    assert "1 of the 3 shared monkeys_gsm8k problems were sampled with different prompts" in refused
    assert "(first: doc 1)" in refused
    assert run_cli("compare", str(a), str(b), "--different_prompts").returncode == 0


def test_runs_verified_by_different_checkers_are_refused_unless_one_is_named(
    runs: dict[str, Path],
) -> None:
    refused = error_line(run_cli("compare", str(runs["base"]), str(runs["flexible"])))
    assert "come from different checkers (gsm8k, gsm8k:flexible)" in refused
    assert "--verifier" in refused
    named = run_cli(
        "compare", str(runs["base"]), str(runs["flexible"]), "--verifier", "gsm8k:flexible"
    )
    assert named.returncode == 0, named.stderr[-2000:]


def test_three_runs_pairwise_with_holm_and_a_leaderboard(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    result = run_cli(
        "compare",
        str(runs["base"]),
        str(runs["drop"]),
        str(runs["copy"]),
        "--ks",
        "1,16",
        "--metrics",
        "coverage",
        "--json",
        str(out),
        "--summary",
        str(tmp_path / "s.md"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["correction"] == "Holm, over the 3 pairs of each task and metric@k"
    pairs = {(p["a"], p["b"]): p["metrics"]["coverage@16"] for p in data["tasks"][TASK]["pairs"]}
    assert set(pairs) == {("base", "drop"), ("base", "copy"), ("drop", "copy")}
    assert all(p["p_adjusted"] >= p["p_value"] for p in pairs.values())
    board = data["tasks"][TASK]["leaderboard"]
    assert board["metric"] == "coverage@16"
    top = {s["run"] for s in board["runs"] if s["top"]}
    assert top == {"base", "copy"}
    assert "p (Holm)" in (tmp_path / "s.md").read_text()
    assert "not significantly worse than the best" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail_if", "coverage@16 > 0"], "cannot read the condition"),
        (["--fail_if", "coverage@32 < 0"], "k=32 exceeds the 16 samples"),
        (["--ks", "64"], "k=64 exceeds the 16 samples"),
        (["--metrics", "coverage,best"], "unknown metric 'best'"),
        (["--metrics", ","], "--metrics names no metric"),
        (["--alpha", "1.5"], "--alpha must be in (0, 1)"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    runs: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "r.json"
    result = run_cli("compare", str(runs["base"]), str(runs["drop"]), "--json", str(out), *args)
    assert message in error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_refusals_of_run_sets(runs: dict[str, Path], tmp_path: Path) -> None:
    assert "at least two runs" in error_line(run_cli("compare", str(runs["base"])))
    assert "holds no sample store" in error_line(
        run_cli("compare", str(runs["base"]), str(tmp_path))
    )
    three = run_cli(
        "compare",
        str(runs["base"]),
        str(runs["drop"]),
        str(runs["copy"]),
        "--fail_if",
        "coverage@1 < 0",
    )
    assert "give exactly two runs" in error_line(three)


def test_report_marks_significant_differences_and_plots_pairs(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    output = tmp_path / "report"
    result = run_cli(
        "report",
        str(runs["base"]),
        str(runs["drop"]),
        str(runs["copy"]),
        "--output",
        str(output),
        "--ks",
        "1,4,16",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with (output / "leaderboard.csv").open() as handle:
        rows = {row["run"]: row for row in csv.DictReader(handle)}
    assert {run: row["not_worse_than_best"] for run, row in rows.items()} == {
        "base": "yes",
        "drop": "no",
        "copy": "yes",
    }
    assert float(rows["drop"]["coverage@paired_k_vs_best"]) < -0.1
    assert (
        float(rows["base"]["coverage@paired_k_vs_best"]) == 0.0 and rows["base"]["paired_k"] == "16"
    )
    markdown = (output / "report.md").read_text()
    assert "paired differences of coverage@k on the 40 problems every run holds" in markdown
    assert "Holm, over the 3 pairs" in markdown
    for other in ("drop", "copy"):
        png = output / "figures" / f"{TASK}__paired_{other}_vs_base.png"
        assert png.read_bytes().startswith(b"\x89PNG")
        assert f"paired: {other} vs base" in (output / "report.html").read_text()


def test_report_of_runs_that_cannot_be_paired_warns_and_goes_on(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    output = tmp_path / "report"
    result = run_cli(
        "report", str(runs["base"]), str(runs["prompts"]), "--output", str(output), "--ks", "1,16"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no paired comparison of the runs: the runs' monkeys_gsm8k prompts" in result.stderr
    with (output / "leaderboard.csv").open() as handle:
        assert {row["not_worse_than_best"] for row in csv.DictReader(handle)} == {""}


def test_rescore_reports_the_opt_in_metrics_on_request(runs: dict[str, Path]) -> None:
    result = run_cli(
        "rescore", str(runs["copy"]), "--metrics", "coverage,passall,gpass_0.5", "--ks", "1,4"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gpass_0.5@k" in result.stdout and "passall@k" in result.stdout
    metrics = json.loads((runs["copy"] / "rescore.json").read_text())[TASK]
    assert {k for k in metrics if "@" in k} == {
        f"{m}@{k}" for m in ("coverage", "passall", "gpass_0.5") for k in (1, 4)
    }
    assert (
        metrics["passall@1"]
        == pytest.approx(metrics["coverage@1"])
        == pytest.approx(metrics["gpass_0.5@1"])
    )
    assert metrics["passall@4"] < metrics["gpass_0.5@4"] < metrics["coverage@4"]
    assert "unknown metric 'pass'" in error_line(
        run_cli("rescore", str(runs["copy"]), "--metrics", "pass")
    )


def test_a_candidate_extending_the_baseline_differs_by_exactly_zero(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """The baseline stored at k = 16, the candidate the same model and seed at k = 32 (its
    first 16 samples are the baseline's): compared like with like, not a drop."""
    extended = synthetic_run(tmp_path / "extended", 0.4, "--repeats", "32")
    out = tmp_path / "r.json"
    result = run_cli(
        *("compare", str(runs["base"]), str(extended), "--json", str(out)),
        *("--fail_if", "coverage@16 significant_drop 0.05", "--fail_if", "majority@16 < 0"),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    data = json.loads(out.read_text())
    (pair,) = data["tasks"][TASK]["pairs"]
    for r in pair["metrics"].values():
        assert (r["difference"], r["p_value"]) == (0.0, 1.0)
    (note,) = [n for n in data["notes"] if "numbers of samples" in n]
    assert "(base: 16, extended: 32)" in note and "first 16 samples" in note
    assert "first 16 samples every run holds" in result.stdout


def test_the_gate_fails_when_the_candidate_lacks_problems_unless_allowed(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    gate = ("--intersection", "--fail_if", "coverage@16 < -0.5")
    out = tmp_path / "r.json"
    lacking = run_cli("compare", str(runs["base"]), str(runs["fewer"]), *gate, "--json", str(out))
    assert lacking.returncode == 1, lacking.stderr[-2000:]
    assert "FAIL  monkeys_gsm8k: the candidate holds the baseline's tasks and problems" in (
        lacking.stdout
    )
    assert "fewer lacks 15 of the 40 monkeys_gsm8k problems base holds" in lacking.stdout
    checks = json.loads(out.read_text())["gate"]["checks"]
    assert [(c["failed"], c["difference"]) for c in checks] == [(True, None), (False, 0.0)]
    allowed = run_cli("compare", str(runs["base"]), str(runs["fewer"]), *gate, "--allow_missing")
    assert allowed.returncode == 0, allowed.stdout[-2000:]
    assert "allowed by --allow_missing" in allowed.stdout
    # The other way round nothing is missing: the candidate holds more than the baseline.
    more = run_cli("compare", str(runs["fewer"]), str(runs["base"]), *gate)
    assert more.returncode == 0 and "lacks" not in more.stdout


def test_the_gate_fails_when_the_candidate_lacks_a_task(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    both = tmp_path / "both"
    shutil.copytree(runs["base"], both)
    math = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.4,seed=1"),
        *("--tasks", "monkeys_math500", "--limit", "3", "--repeats", "2"),
        *("--output_path", str(both)),
    )
    assert math.returncode == 0, math.stderr[-2000:]
    gate = ("--fail_if", "monkeys_gsm8k/coverage@1 < -0.5", "--ks", "1")
    lacking = run_cli("compare", str(both), str(runs["base"]), *gate)
    assert lacking.returncode == 1
    assert "FAIL  monkeys_math500: the candidate holds" in lacking.stdout
    assert "base lacks task monkeys_math500, which both holds" in lacking.stdout
    allowed = run_cli("compare", str(both), str(runs["base"]), *gate, "--allow_missing")
    assert allowed.returncode == 0, allowed.stdout[-2000:]
