"""Sampling until verified (``--until_verified``, ``--budget``): the shared round loop, its
estimator and intervals against the exact coverage of ``monkeys-synthetic``, resume after
a kill, the refusals, and a real run of the embedded model against a uniform one."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lm_eval.api.instance import Instance

from lm_eval_monkeys.comparison.compare_runs import compare_runs
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import default_ks
from lm_eval_monkeys.metrics.estimators import first_success_coverage, wilson_interval
from lm_eval_monkeys.models.rounds import round_shares
from lm_eval_monkeys.models.synthetic import SyntheticLM
from lm_eval_monkeys.reports.report import build_report
from lm_eval_monkeys.scoring import ScoredSamples
from lm_eval_monkeys.scoring.rescore import TaskResult, rescore_store
from lm_eval_monkeys.store import SampleStore, Sampling, TaskRecord

TASK = "monkeys_gsm8k"
DOCS = [{"question": f"What is {g} - 0?", "answer": f"It is {g}.\n#### {g}"} for g in range(1, 31)]


def adaptive_run(
    run_dir: Path, seed: int, k: int, sampling: Sampling
) -> tuple[SyntheticLM, TaskResult]:
    """A synthetic adaptive run through the model's own ``generate_until`` (lm-eval's
    cloned requests, the run store, the round loop), rescored from its store."""
    with SampleStore(run_dir) as store:
        store.records.bind(
            TaskRecord(TASK, "gsm8k", k, tuple(default_ks(k)), ("coverage",), sampling=sampling)
        )
    model = SyntheticLM(seed=seed, run_dir=str(run_dir))
    requests = []
    for doc_id, doc in enumerate(DOCS):
        request = Instance(
            "generate_until", doc, (doc["question"], {"temperature": 1.0}), 0, (TASK, doc_id, k)
        )
        requests += [request] * k
    outputs = model.generate_until(requests, disable_tqdm=True)
    assert len(outputs) == len(requests)
    with SampleStore(run_dir, writer=False) as store:
        return model, rescore_store(store)[TASK]


def exact_coverage(model: SyntheticLM, k: int) -> float:
    rates = np.array([model.success_rate(TASK, d) for d in range(len(DOCS))])
    return float(np.mean(1 - (1 - rates) ** k))


def test_adaptive_coverage_agrees_with_the_exact_coverage_over_seeds(tmp_path: Path) -> None:
    k, seeds = 32, range(100)
    inside = np.zeros(len(default_ks(k)))
    errors = []
    drawn = 0
    for seed in seeds:
        model, result = adaptive_run(tmp_path / str(seed), seed, k, Sampling(round_size=2))
        assert result.adaptive is not None
        assert sorted(result.curves["coverage"]) == default_ks(k)
        for i, kk in enumerate(default_ks(k)):
            low, high = result.adaptive.intervals[kk]
            exact = exact_coverage(model, kk)
            inside[i] += low <= exact <= high
            errors.append(result.curves["coverage"][kk] - exact)
        drawn += result.adaptive.drawn
    # 95% intervals, conservative for a mean of unequal Bernoulli indicators: at every k
    # they hold the exact coverage for at least 90 of the 100 seeds.
    assert (inside >= 90).all(), inside
    # Unbiased: the mean error over seeds and ks is within 3 standard errors of zero.
    assert abs(np.mean(errors)) < 3 * np.std(errors) / np.sqrt(len(errors))
    assert drawn < 0.6 * k * len(DOCS) * len(seeds), "most samples are not generated"


def test_a_budget_goes_evenly_to_the_unsolved_problems(tmp_path: Path) -> None:
    budget = 5 * len(DOCS) + 7
    adaptive_run(tmp_path, 0, 32, Sampling(round_size=2, budget=budget))
    unsolved: list[int] = []

    def note(task: str, doc_id: int, samples: list, scored: ScoredSamples) -> None:
        if scored.summary.first_correct is None:
            unsolved.append(len(samples))

    with SampleStore(tmp_path, writer=False) as store:
        result = rescore_store(store, ks=[1, 5], on_problem=note)[TASK]
    assert result.adaptive is not None
    assert result.adaptive.drawn == budget  # spent, not a sample more
    # Every unsolved problem got at least the uniform share, so coverage@5 is known: the
    # figure the same budget spread uniformly would reach; the rounds solve more.
    assert unsolved and min(unsolved) >= budget // len(DOCS)
    assert result.adaptive.solved > result.curves["coverage"][5] * len(DOCS)


def test_round_shares_spread_a_short_budget_first_problems_first() -> None:
    assert round_shares(3, 4, None) == [4, 4, 4]
    assert round_shares(3, 4, 12) == [4, 4, 4]
    assert round_shares(3, 4, 7) == [3, 2, 2]
    assert round_shares(3, 4, 0) == [0, 0, 0]


def test_first_success_estimator_and_wilson_interval() -> None:
    assert first_success_coverage(None, [1, 8]).tolist() == [0.0, 0.0]
    assert first_success_coverage(3, [1, 3, 4, 8]).tolist() == [0.0, 0.0, 1.0, 1.0]
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2  # not the Wald interval's zero width
    # Exact at the ends, for every size (computed, they are off by rounding at some).
    assert [wilson_interval(0, n)[0] for n in (1, 3, 7, 20)] == [0.0] * 4
    assert [wilson_interval(n, n)[1] for n in (1, 3, 7, 20)] == [1.0] * 4
    low, high = wilson_interval(10, 20)
    assert low < 0.5 < high and high - low == pytest.approx(2 * (0.5 - low))


SYNTHETIC = ["--model", "monkeys-synthetic", "--tasks", TASK, "--limit", "20", "--repeats", "32"]
ROUNDS = ["--until_verified", "--round_size", "2"]
SLOW = "accuracy=0.3,seed=0,sample_delay=0.01"  # a kill lands mid-run


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # The timeout is only a hang guard, generous for a busy machine.
    return subprocess.run(["lm-eval-monkeys", *args], capture_output=True, text=True, timeout=1800)


def stored(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        return db.execute(
            "SELECT doc_id, sample_idx, completion FROM samples ORDER BY doc_id, sample_idx"
        ).fetchall()


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1]


def test_a_killed_adaptive_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    whole = cli(*SYNTHETIC, *ROUNDS, "--model_args", SLOW, "--output_path", str(reference))
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert "not generated" in whole.stdout and "majority" in whole.stdout  # the refusal line
    total = len(stored(reference))
    assert total < 20 * 32 / 2, "solved problems got no more samples"

    command = ["lm-eval-monkeys", *SYNTHETIC, *ROUNDS, "--model_args", SLOW]
    process = subprocess.Popen(
        [*command, "--output_path", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (killed / "samples.sqlite").exists() and len(stored(killed)) >= 30:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 30 <= len(stored(killed)) < total, "the kill must land mid-run"

    resumed = cli(*SYNTHETIC, *ROUNDS, "--model_args", SLOW, "--output_path", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert stored(killed) == stored(reference)
    rescored = [json.loads((d / "rescore.json").read_text()) for d in (reference, killed)]
    assert rescored[0] == rescored[1]
    assert rescored[0][TASK]["samples_not_generated"] == 20 * 32 - total

    # What such a run cannot give is refused in one line, by rescore, compare and report.
    with SampleStore(killed, writer=False) as store, pytest.raises(MonkeysError) as refused:
        rescore_store(store, metrics=["majority"])
    assert "majority need all k samples" in str(refused.value)
    with pytest.raises(MonkeysError, match="majority need all k samples"):
        compare_runs([reference, killed], ["a", "b"], metrics=["coverage", "majority"])
    compared = compare_runs([reference, killed], ["a", "b"])  # coverage only, by default
    assert compared.tasks[TASK].columns[0] == "coverage@1"
    assert all(c.startswith("coverage@") for c in compared.tasks[TASK].columns)
    build_report([killed], tmp_path / "report", params={"killed": 135e6})
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"not generated: {20 * 32 - total} samples" in markdown
    # FLOPs not generated: 2 per parameter per completion token the skipped samples
    # would have taken at the drawn samples' mean length.
    with sqlite3.connect(killed / "samples.sqlite") as db:
        (tokens,) = db.execute("SELECT AVG(completion_tokens) FROM samples").fetchone()
    flops = 2 * 135e6 * (20 * 32 - total) * tokens
    assert f"~{flops:.3g} FLOPs not generated" in markdown
    # A uniform run into the adaptive run's store would mix the two: refused.
    with SampleStore(killed) as store, pytest.raises(MonkeysError, match="another sampling;"):
        uniform = store.records.get(TASK)
        assert uniform is not None
        store.records.bind(replace(uniform, sampling=None))


def test_adaptive_runs_refuse_bad_input_before_any_model_loads(tmp_path: Path) -> None:
    no_store = cli(*SYNTHETIC, "--until_verified")
    assert "--output_path" in error_line(no_store)
    no_k = cli("--model", "monkeys-synthetic", "--tasks", TASK, "--budget", "100")
    assert "--budget N needs --repeats K" in error_line(no_k)
    zero = cli(*SYNTHETIC, "--round_size", "0", "--output_path", str(tmp_path))
    assert "round_size must be a whole number >= 1" in error_line(zero)
    votes = cli(
        *SYNTHETIC,
        *ROUNDS,
        "--metadata",
        "metrics=[coverage,majority]",
        "--output_path",
        str(tmp_path),
    )
    assert "majority need all k samples" in error_line(votes)
    assert not (tmp_path / "samples.sqlite").exists()


@pytest.mark.slow
def test_embedded_model_adaptive_run_agrees_with_a_uniform_run(tmp_path: Path) -> None:
    """The embedded SmolLM2 on two GSM8K problems, k = 4, judged by the gsm8k checker:
    sampled until verified, and every sample drawn; the same coverage within intervals."""
    small = ["--tasks", TASK, "--limit", "2", "--repeats", "4"]
    uniform = cli(*small, "--output_path", str(tmp_path / "uniform"))
    assert uniform.returncode == 0, uniform.stderr[-2000:]
    adaptive = cli(*small, "--round_size", "2", "--output_path", str(tmp_path / "adaptive"))
    assert adaptive.returncode == 0, adaptive.stderr[-2000:]
    both = [
        json.loads((tmp_path / d / "rescore.json").read_text())[TASK]
        for d in ("uniform", "adaptive")
    ]
    assert both[0]["verifier"] == both[1]["verifier"] == "gsm8k"
    for k in (1, 2, 4):
        assert (
            both[1][f"coverage_low@{k}"]
            <= both[0][f"coverage@{k}"]
            <= both[1][f"coverage_high@{k}"]
        )
    drawn = len(stored(tmp_path / "adaptive"))
    assert drawn == both[1]["samples"] == 8 - both[1]["samples_not_generated"]
    assert drawn <= 8 and both[1]["solved"] <= 2
    assert "not generated" in adaptive.stdout
