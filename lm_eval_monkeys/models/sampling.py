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
_BLOCK = 256  # tokens per block of the two-level cumulative sum (inverse_cdf)


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
    drawn = inverse_cdf(probs, uniforms)
    return torch.where(greedy, logits.argmax(dim=-1), drawn) if bool(greedy.any()) else drawn


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Per row, the first token whose cumulative mass exceeds u times the row's total.

    Never a zero-mass token. In two levels: the blocks of ``_BLOCK`` tokens (their sums'
    cumulative sum, float64), then the tokens of the one block holding the draw (float64).
    One cumulative sum over the whole vocabulary is a serial float64 pass over every token
    of every row, 67 ms a step at 64 rows of 49,152 on one core; these levels take 3.
    """
    rows, vocab = probs.shape
    if vocab % _BLOCK:
        probs = torch.nn.functional.pad(probs, (0, -vocab % _BLOCK))
    blocks = probs.view(rows, -1, _BLOCK)
    block_cdf = blocks.sum(dim=-1).double().cumsum(dim=-1)
    target = uniforms.to(block_cdf.dtype)[:, None] * block_cdf[:, -1:]
    # A target rounded up to the total lands in the first block that reaches the total.
    last_block = torch.searchsorted(block_cdf, block_cdf[:, -1:].contiguous())
    block = torch.minimum(torch.searchsorted(block_cdf, target, right=True), last_block)
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp(min=0)), 0.0)
    chosen = blocks[torch.arange(rows, device=probs.device), block[:, 0]]
    token = torch.searchsorted(chosen.double().cumsum(-1), target - before, right=True)
    # The block sums' rounding can put the target past the block's own float64 total:
    # then its last token with mass, never one without.
    positions = torch.arange(_BLOCK, device=probs.device)
    last = torch.where(chosen > 0, positions, 0).amax(dim=-1, keepdim=True)
    return (block * _BLOCK + torch.minimum(token, last))[:, 0]


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
