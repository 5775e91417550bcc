"""Vectorised next-token choice for a batch of rows, each with its own settings and stream.

Every row is one sample. Its random numbers come from a counter-based generator: the
uniform for decode step t of sample s is splitmix64(key_s + (t + 1) * golden gamma),
where key_s is the sample's seed. A sample's draws therefore depend on nothing but its
seed and step: not on the batch size, its neighbours, or when it joined the batch. The
token is the inverse CDF of the filtered distribution at that uniform.

Filters follow transformers' order and meaning: repetition penalty on the prompt and the
tokens so far, then temperature, top-k, top-p (the smallest set of most likely tokens
holding top_p of the mass left by top-k), min-p (tokens below min_p times the most likely
token's probability). Temperature 0 is greedy (argmax after the penalty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lm_eval_monkeys.models.generation import GenerationSettings

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def stream_uniforms(keys: np.ndarray, steps: np.ndarray) -> torch.Tensor:
    """One uniform in [0, 1) per row: splitmix64 of (key, step), 53 bits, float64."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        z = keys.astype(np.uint64) + (steps.astype(np.uint64) + np.uint64(1)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return torch.from_numpy((z >> np.uint64(11)).astype(np.float64) * 2.0**-53)


@dataclass
class RowSettings:
    """Per-row sampling settings as tensors, so one batch may mix problems' settings."""

    temperature: torch.Tensor
    top_p: torch.Tensor
    top_k: torch.Tensor
    min_p: torch.Tensor
    penalty: torch.Tensor

    @classmethod
    def empty(cls, rows: int, device: torch.device | str = "cpu") -> RowSettings:
        return cls(
            temperature=torch.zeros(rows, device=device),
            top_p=torch.ones(rows, device=device),
            top_k=torch.zeros(rows, dtype=torch.long, device=device),
            min_p=torch.zeros(rows, device=device),
            penalty=torch.ones(rows, device=device),
        )

    def first(self, rows: int) -> RowSettings:
        """The settings of rows ``0 .. rows - 1`` (views)."""
        return RowSettings(
            self.temperature[:rows],
            self.top_p[:rows],
            self.top_k[:rows],
            self.min_p[:rows],
            self.penalty[:rows],
        )

    def assign(self, row: int, settings: GenerationSettings) -> None:
        self.temperature[row] = settings.temperature
        self.top_p[row] = settings.top_p
        self.top_k[row] = settings.top_k
        self.min_p[row] = settings.min_p
        self.penalty[row] = settings.repetition_penalty


def next_tokens(
    logits: torch.Tensor,
    settings: RowSettings,
    uniforms: torch.Tensor,
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """The next token of every row of ``logits`` [rows, vocab]; ``seen`` marks penalised ids."""
    logits = logits.float()
    if seen is not None:
        logits = _penalise(logits, seen, settings.penalty)
    greedy = settings.temperature == 0
    temperature = torch.where(greedy, torch.ones_like(settings.temperature), settings.temperature)
    probs = torch.softmax(logits / temperature[:, None], dim=-1)
    if bool((settings.top_k > 0).any() or (settings.top_p < 1).any()):
        probs = _top_k_top_p(probs, settings.top_k, settings.top_p)
    if bool((settings.min_p > 0).any()):
        floor = settings.min_p[:, None] * probs.max(dim=-1, keepdim=True).values
        probs = probs.masked_fill(probs < floor, 0.0)
    cdf = probs.double().cumsum(dim=-1)
    # The first token whose cumulative mass exceeds u * total: never a zero-mass token.
    drawn = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
    drawn = drawn.clamp(max=logits.shape[-1] - 1)
    return torch.where(greedy, logits.argmax(dim=-1), drawn) if bool(greedy.any()) else drawn


def _penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """CTRL's repetition penalty: seen tokens' logits divided (or, if negative, multiplied)."""
    factor = penalty[:, None]
    penalised = torch.where(logits > 0, logits / factor, logits * factor)
    return torch.where(seen, penalised, logits)


def _top_k_top_p(probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    ordered, order = probs.sort(dim=-1, descending=True)
    rank = torch.arange(probs.shape[-1], device=probs.device)[None, :]
    ordered = ordered.masked_fill((top_k[:, None] > 0) & (rank >= top_k[:, None]), 0.0)
    kept = ordered.sum(dim=-1, keepdim=True)
    # Drop a token once the more likely ones already hold top_p of what top-k kept.
    beyond = ordered.cumsum(dim=-1) - ordered > top_p[:, None] * kept
    ordered = ordered.masked_fill(beyond & (top_p[:, None] < 1), 0.0)
    return torch.zeros_like(probs).scatter(-1, order, ordered)
