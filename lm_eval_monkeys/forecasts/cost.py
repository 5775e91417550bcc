"""What repeated sampling costs: FLOPs and dollars per k, budgets, samples for a target.

FLOPs follow the usual inference approximation of 2 FLOPs per parameter per token:

    FLOPs(k) = 2 * N_params * (prompt_tokens + k * completion_tokens_per_sample)

per problem, averaged over the task's problems: each problem's prompt is counted once (its
k samples share the prompt's KV cache, as with ``monkeys-hf`` or vLLM's ``n=k``) and its
decoded tokens per sample (the mean over its stored samples, times k). Costs are per
problem so that runs over different numbers of problems compare. Attention over the
context (2 * n_layers * context * d_model per token) is left out: it needs the architecture,
and is a few percent of 2N for billion-parameter models at GSM8K-sized contexts (about 13%
for the 135M embedded model at a 1,000-token context).

Dollars use the same token counts with a price table of $ per 1M input (prompt) and
output (completion) tokens per model.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.forecasts.extrapolation import Estimate, none
from lm_eval_monkeys.metrics.estimators import coverage_at_k

_SUFFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([KMBGTPE]?)\s*$", re.IGNORECASE)

Unit = Literal["flops", "usd"]


def parse_count(text: str) -> float:
    """``"135M"`` -> 1.35e8; also ``"8B"``, ``"1.5e9"``, ``"2T"`` (K, M, B/G, T, P, E)."""
    match = _COUNT.match(text)
    if not match:
        raise MonkeysError(f"cannot read {text!r} as a count; write e.g. 135M, 8B or 1.5e9")
    return float(match[1]) * _SUFFIXES[match[2].upper()]


@dataclass(frozen=True)
class Budget:
    """A spend per problem: FLOPs or US dollars."""

    amount: float
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"1e18"`` or ``"1E FLOPs"`` are FLOPs; ``"$25"`` or ``"25usd"`` are dollars."""
        raw = text.strip()
        lowered = raw.lower()
        if raw.startswith("$") or lowered.endswith("usd"):
            value = raw[1:] if raw.startswith("$") else raw[:-3]
            return cls(_positive(parse_count(value), text), "usd")
        return cls(_positive(parse_count(re.sub(r"(?i)flops?$", "", raw)), text), "flops")

    def __str__(self) -> str:
        return f"${self.amount:.4g}" if self.unit == "usd" else f"{self.amount:.3g} FLOPs"


def _positive(value: float, text: str) -> float:
    if value <= 0:
        raise MonkeysError(f"budget {text!r} must be positive")
    return value


@dataclass(frozen=True)
class Price:
    """US dollars per 1M input (prompt) tokens and per 1M output (completion) tokens."""

    input: float
    output: float


def load_prices(path: Path) -> dict[str, Price]:
    """A YAML or JSON mapping ``model: {input: $/1M tokens, output: $/1M tokens}``."""
    try:
        table = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise MonkeysError(f"cannot read the price table {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise MonkeysError(f"{path} is not YAML or JSON: {err}") from None
    if not isinstance(table, dict) or not table:
        raise MonkeysError(
            f"{path}: expected a mapping of model -> {{input: ..., output: ...}} "
            "(dollars per 1M tokens)"
        )
    prices = {}
    for model, entry in table.items():
        try:
            prices[str(model)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError):
            raise MonkeysError(
                f"{path}: entry {model!r} needs numeric 'input' and 'output' "
                "(dollars per 1M tokens), e.g. {input: 0.15, output: 0.60}"
            ) from None
        if prices[str(model)].input < 0 or prices[str(model)].output < 0:
            raise MonkeysError(f"{path}: entry {model!r} has a negative price")
    return prices


def count_parameters(model_args: Mapping[str, Any]) -> int | None:
    """Parameters of a local model from its weight files (GGUF, or safetensors headers);
    None when the weights are not on this machine (pass ``--params`` then)."""
    pretrained = model_args.get("pretrained")
    if not pretrained or not Path(str(pretrained)).is_dir():
        return None
    directory = Path(str(pretrained))
    gguf_file = model_args.get("gguf_file")
    if gguf_file and (directory / str(gguf_file)).is_file():
        from gguf import GGUFReader

        reader = GGUFReader(directory / str(gguf_file))
        return sum(int(tensor.n_elements) for tensor in reader.tensors)
    shards = sorted(directory.glob("*.safetensors"))
    return sum(_safetensors_parameters(shard) for shard in shards) if shards else None


def _safetensors_parameters(path: Path) -> int:
    """Element count from a safetensors header (8-byte length, then JSON): no weights read."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(
        math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__"
    )


def token_flops(n_params: float, tokens: float) -> float:
    """FLOPs of ``tokens`` through a model of ``n_params`` parameters (2 per parameter per
    token)."""
    return 2.0 * n_params * tokens


@dataclass(frozen=True)
class RunCost:
    """Tokens of one run on one task, per problem, and what a token costs.

    ``prompt_tokens``: the mean prompt length (each prompt counted once);
    ``completion_tokens``: the mean decoded tokens of one sample.
    """

    prompt_tokens: float
    completion_tokens: float
    n_params: float | None = None
    price: Price | None = None

    def tokens(self, k: float) -> tuple[float, float]:
        return self.prompt_tokens, k * self.completion_tokens

    def flops(self, k: float) -> float | None:
        if self.n_params is None:
            return None
        prompt, completion = self.tokens(k)
        return token_flops(self.n_params, prompt + completion)

    def dollars(self, k: float) -> float | None:
        if self.price is None:
            return None
        prompt, completion = self.tokens(k)
        return (prompt * self.price.input + completion * self.price.output) / 1e6

    def at(self, k: float, unit: Unit) -> float | None:
        return self.flops(k) if unit == "flops" else self.dollars(k)

    def affordable_k(self, budget: Budget) -> float | None:
        """Samples per problem a per-problem budget pays for (fractional); None without a
        cost model."""
        fixed, per_k = self.at(0, budget.unit), self.at(1, budget.unit)
        if fixed is None or per_k is None or per_k <= fixed:
            return None
        return (budget.amount - fixed) / (per_k - fixed)


def run_cost(
    prompt_tokens: np.ndarray,
    completion_tokens: np.ndarray,
    n: np.ndarray,
    n_params: float | None = None,
    price: Price | None = None,
) -> RunCost:
    """A ``RunCost`` from per-problem prompt tokens, summed completion tokens and samples."""
    return RunCost(
        float(np.mean(prompt_tokens)),
        float(np.sum(completion_tokens) / np.sum(n)),
        n_params,
        price,
    )


Coverage = Callable[[float], Estimate]
"""Coverage at k, measured or forecast, with its interval."""


def coverage_for_budget(coverage: Coverage, cost: RunCost, budget: Budget) -> Estimate:
    """Coverage a per-problem budget buys: at the largest whole k it pays for; none (with
    the reason) if it buys no sample."""
    k = cost.affordable_k(budget)
    if k is None:
        return none(math.nan, "no cost model")
    if k < 1:
        return none(k, "budget below one sample")
    return coverage(math.floor(k))


def smallest_measured_k(n: np.ndarray, c: np.ndarray, target: float) -> int | None:
    """The least k <= min(n) whose mean unbiased coverage reaches target; None if none."""
    k_max = int(np.min(n))

    def mean_at(k: int) -> float:
        return float(np.mean(coverage_at_k(n, c, k)))

    if mean_at(k_max) < target:
        return None
    lo, hi = 1, k_max  # coverage@k increases with k: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mean_at(mid) >= target else (mid + 1, hi)
    return lo
