"""A preallocated KV cache of fixed rows for continuous batching with transformers models.

Each row holds one sample. All rows write their next token at one shared column; a row's
tokens end at that column and start wherever its prompt was placed, earlier columns being
masked out (left padding that moves). A finished row is refilled by copying a prompt's
cached keys and values into the columns just before the shared one. When the columns run
out, the live data is moved back to column 0; when a new prompt is longer than the filled
columns, it is moved forward. Nothing is appended or concatenated per step.

The model sees this object as its cache (``update`` and ``get_seq_length``, the two
methods its layers call) and gets a ready 4D attention mask plus explicit positions, so
transformers builds no mask and no cache of its own: the same code runs on the cache API
of transformers 5.19 (``past_key_values=``) and 5.24 (``cache=``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Prefix:
    """One prompt run through the model: its per-layer keys/values and last logits."""

    keys: list[torch.Tensor]  # [kv_heads, length, head_dim] per layer
    values: list[torch.Tensor]
    logits: torch.Tensor  # [vocab]

    @property
    def length(self) -> int:
        return self.keys[0].shape[1]


class PrefixCapture:
    """The cache a prompt's forward pass writes to: it keeps each layer's keys and values."""

    def __init__(self, layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys[layer_idx], self.values[layer_idx] = key_states, value_states
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


class SlotCache:
    def __init__(
        self,
        layers: int,
        rows: int,
        kv_heads: int,
        head_dim: int,
        capacity: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (rows, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.valid = torch.zeros(rows, capacity, dtype=torch.bool, device=device)
        self.capacity = capacity
        self.column = 0  # the column the next decode step writes

    # --- what the model's attention layers call ---
    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:, :, self.column] = key_states[:, :, 0]
        values[:, :, self.column] = value_states[:, :, 0]
        return keys[:, :, : self.column + 1], values[:, :, : self.column + 1]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.column

    # --- what the sampler calls ---
    def place(self, row: int, prefix: Prefix) -> None:
        """Put a prompt's keys/values in ``row``, ending just before the shared column."""
        if self.column < prefix.length:
            self._move(prefix.length - self.column)
        start = self.column - prefix.length
        for layer, (keys, values) in enumerate(zip(self.keys, self.values, strict=True)):
            keys[row, :, start : self.column] = prefix.keys[layer]
            values[row, :, start : self.column] = prefix.values[layer]
        self.valid[row] = False
        self.valid[row, start : self.column] = True

    def release(self, row: int) -> None:
        self.valid[row] = False

    def decode_mask(self, live: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The additive [rows, 1, 1, columns] mask of the next step; makes room first.

        Every row sees the column it writes, so a free row (fed a dummy token) attends
        to itself only and its output stays finite; its stale columns are masked.
        """
        if self.column == self.capacity:
            self._move(-self._first_live_column())
        self.valid[:, self.column] = live
        seen = self.valid[:, : self.column + 1].clone()
        seen[:, self.column] = True
        mask = torch.zeros(seen.shape, dtype=dtype, device=seen.device)
        return mask.masked_fill_(~seen, torch.finfo(dtype).min)[:, None, None, :]

    def advance(self) -> None:
        self.column += 1

    def _first_live_column(self) -> int:
        used = self.valid[:, : self.column].any(dim=0).nonzero()
        return int(used[0]) if len(used) else self.column

    def _move(self, offset: int) -> None:
        """Move every row's live columns by ``offset`` (the shared column moves with them)."""
        start, end = self._first_live_column(), self.column
        for tensor in (*self.keys, *self.values):
            tensor[:, :, start + offset : end + offset] = tensor[:, :, start:end].clone()
        moved = self.valid[:, start:end].clone()
        self.valid[:] = False
        self.valid[:, start + offset : end + offset] = moved
        self.column = end + offset


def cache_argument(model: torch.nn.Module) -> str:
    """The forward argument that takes the cache: ``cache`` from transformers 5.24 on."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def causal_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The additive [1, 1, length, length] causal mask of a prompt's forward pass."""
    blocked = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    mask = torch.zeros(length, length, dtype=dtype, device=device)
    return mask.masked_fill_(blocked, torch.finfo(dtype).min)[None, None]


GROUPED_ATTENTION = "monkeys_grouped_sdpa"


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA that reads each key/value head once when one token per row is decoded.

    transformers' SDPA path copies every key/value head once per query head it serves
    (``repeat_kv``) whenever a mask is given: at a 1,400-token context that copy costs
    ten times the attention itself. With one query token per row, a key/value head's
    query heads become that many query positions instead, and nothing is copied.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    if length != 1 or heads == kv_heads or dropout or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    out = torch.nn.functional.scaled_dot_product_attention(
        query.view(rows, kv_heads, heads // kv_heads, dim),  # head h reads kv head h // group
        key,
        value,
        attn_mask=attention_mask,
        scale=scaling,
    )
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None
