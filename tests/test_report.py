"""``lm-eval-monkeys report`` on real stores: the embedded SmolLM2, monkeys-synthetic, and
stores written here through ``SampleStore`` (one sample per problem: too few k to fit)."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.reports.report import LEADERBOARD_COLUMNS
from lm_eval_monkeys.store import Sample, SampleStore, prompt_hash

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory, embedded_model: str) -> Path:
    """The embedded SmolLM2-135M: 2 GSM8K problems x 4 samples of at most 32 tokens."""
    run_dir = tmp_path_factory.mktemp("runs") / "smol"
    result = run_cli(
        *("--model", "monkeys-hf", "--model_args", embedded_model, "--tasks", "monkeys_gsm8k"),
        *("--limit", "2", "--repeats", "4", "--gen_kwargs", "max_gen_toks=32"),
        *("--batch_size", "4", "--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """monkeys-synthetic on two tasks: 20 problems x 100 samples each."""
    run_dir = tmp_path_factory.mktemp("runs") / "synthetic"
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.2,seed=1"),
        *("--tasks", "monkeys_gsm8k,monkeys_math500", "--limit", "20", "--repeats", "100"),
        *("--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def one_sample(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A store of 3 GSM8K problems with one sample each (one right), written directly."""
    run_dir = tmp_path_factory.mktemp("runs") / "one_sample"
    docs = [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").open()][:3]
    store = SampleStore(run_dir)
    store.bind_config({"model": "hand-written"})
    store.register_docs(
        [
            ("monkeys_gsm8k", i, doc, prompt_hash(doc["question"], {}), {})
            for i, doc in enumerate(docs)
        ]
    )
    answers = [docs[0]["answer"].split("####")[-1].strip(), "-1", "-1"]
    store.add(
        ("monkeys_gsm8k", i, Sample(0, f" So.\n#### {a}", 120, 6)) for i, a in enumerate(answers)
    )
    store.close()
    return run_dir


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def leaderboard(output: Path) -> list[dict[str, str]]:
    with (output / "leaderboard.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == LEADERBOARD_COLUMNS
        return list(reader)


@pytest.mark.slow
def test_report_of_the_embedded_model_and_a_synthetic_run(
    smol: Path, synthetic: Path, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "SmolLM2-135M-Instruct.Q4_1.gguf: {input: 0.02, output: 0.05}\n"
        "synthetic: {input: 0.2, output: 0.6}\n"
    )
    output = tmp_path / "report"
    result = run_cli(
        *("report", str(smol), str(synthetic), "--output", str(output)),
        *("--params", "synthetic=1.5B", "--prices", str(prices), "--budget", "$0.001"),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    pngs = sorted((output / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {
        "monkeys_gsm8k__smol.png",
        "monkeys_gsm8k__synthetic.png",
        "monkeys_gsm8k__coverage_vs_cost.png",
        "monkeys_math500__synthetic.png",
    } <= names
    for png in pngs:
        width, height = png_size(png)
        assert 600 <= width <= 2000 and 400 <= height <= 1200
        assert png.stat().st_size > 20_000  # curves, labels and legend, not an empty canvas

    html = (output / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    assert "<h2>Leaderboard</h2>" in html and "coverage at equal cost per problem" in html
    assert 'src="figures/' not in html  # self-contained

    rows = {(r["run"], r["task"]): r for r in leaderboard(output)}
    assert set(rows) == {
        ("smol", "monkeys_gsm8k"),
        ("synthetic", "monkeys_gsm8k"),
        ("synthetic", "monkeys_math500"),
    }
    assert rows[("smol", "monkeys_gsm8k")]["params"] == "134515008"  # read from the GGUF
    synthetic_gsm8k = rows[("synthetic", "monkeys_gsm8k")]
    assert synthetic_gsm8k["max_k"] == "100" and synthetic_gsm8k["problems"] == "20"
    assert float(synthetic_gsm8k["fit_b"]) < 0 < float(synthetic_gsm8k["coverage@max_k"])
    assert float(synthetic_gsm8k["forecast@forecast_k"]) >= float(synthetic_gsm8k["coverage@max_k"])
    assert float(synthetic_gsm8k["flops_per_problem@max_k"]) > 0
    assert float(synthetic_gsm8k["usd_per_problem@max_k"]) > 0
    assert synthetic_gsm8k["backtest_m"] == "10"
    # math500 is in one run only: said on stderr and in the HTML
    assert "task monkeys_math500 is not in every run" in result.stderr
    assert "monkeys_math500 is not in every run" in html
    assert "| run | model | task |" in (output / "report.md").read_text()


def test_too_few_k_and_mismatched_tasks_still_report(
    synthetic: Path, one_sample: Path, tmp_path: Path
) -> None:
    output = tmp_path / "report"
    result = run_cli("report", str(synthetic), str(one_sample), "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "one_sample / monkeys_gsm8k: no power-law fit" in result.stderr
    assert "at least 2 samples per problem" in result.stderr
    assert "task monkeys_math500 is not in every run (missing from one_sample)" in result.stderr
    assert "no parameter count for model hand-written" in result.stderr
    html = (output / "report.html").read_text()
    assert "one_sample / monkeys_gsm8k: no power-law fit" in html
    rows = {(r["run"], r["task"]): r for r in leaderboard(output)}
    assert len(rows) == 3
    few = rows[("one_sample", "monkeys_gsm8k")]
    assert few["fit_a"] == "" and few["max_k"] == "1"
    assert float(few["coverage@1"]) == pytest.approx(1 / 3)
    assert png_size(output / "figures" / "monkeys_gsm8k__one_sample.png")[0] > 600


def test_a_run_that_cannot_be_scored_is_left_out_with_a_warning(
    synthetic: Path, one_sample: Path, tmp_path: Path
) -> None:
    output = tmp_path / "report"
    result = run_cli(
        "report", str(synthetic), str(one_sample), "--output", str(output), "--ks", "1,10,100"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "one_sample: left out of the report: k=100 exceeds" in result.stderr
    assert {r["run"] for r in leaderboard(output)} == {"synthetic"}


def test_a_directory_that_is_not_a_store_is_an_error(tmp_path: Path, synthetic: Path) -> None:
    result = run_cli("report", str(synthetic), str(tmp_path), "--output", str(tmp_path / "out"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "holds no sample store" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "report.html").exists()
