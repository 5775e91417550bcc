"""A KV cache for k samples of a few prompts: each prompt's keys stored once, shared.

k samples of one problem share its prompt, often 1,000+ tokens, and add at most a few
hundred tokens each. The cache keeps each prompt's keys and values once, in a prefix
slot, and each sample's own tokens in a row of a suffix store. A decode step attends
over both (``shared_prefix_attention``): the queries of every row of one prompt against
that prompt's keys in one matmul, then each row against its own tokens, the two softmax
parts merged by their log-sum-exp. So a step reads a prompt's keys once, not once per
sample, and a sample costs memory for its own tokens only.

Live rows are kept at the front (rows ``0 .. live - 1``): a finished row with nothing to
take its place is filled by moving the last row into it, so a step runs the live rows
only, as views, with nothing gathered or padded. Each row writes its next token at its
own column; its mask hides the columns it has not written.

The model sees this object as its cache (``update`` and ``get_seq_length``, the two
methods its layers call) and gets a ready 4D mask plus explicit positions, so
transformers builds no mask and no cache of its own: the same code runs on the cache API
of transformers 5.19 (``past_key_values=``) and 5.24 (``cache=``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from lm_eval_monkeys.models.attention_kernels import attention_with_lse, sdpa_attention

SHARED_PREFIX_ATTENTION = "monkeys_shared_prefix"
# Prompt slots stop growing here (one slot always fits): k = 1 runs of long prompts would
# otherwise hold one prompt per row, 64 x 20,000 tokens of keys for a SWE-bench prompt.
PROMPT_BYTES = 4 * 2**30


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


@dataclass
class _Layout:
    """Where each live row's queries go in the per-prefix matmul of one step."""

    slots: int  # prefix slots 0 .. slots - 1 take part
    columns: int  # the longest of their prompts
    row_of: torch.Tensor  # [slots, most rows of one slot]: the row in each place
    place_of: torch.Tensor  # [live]: each row's place, flattened
    mask: torch.Tensor  # [slots, 1, 1, columns], additive: a slot's prompt length


@dataclass
class _Step:
    """What one decode step's layers share (``prepare_step``)."""

    rows: torch.Tensor  # 0 .. live - 1
    lengths: torch.Tensor  # [live]: the column each row writes
    columns: int  # the longest row's tokens, the one being written included
    layout: _Layout


class SharedPrefixCache:
    def __init__(
        self,
        layers: int,
        rows: int,
        kv_heads: int,
        head_dim: int,
        prompt_columns: int,
        sample_columns: int,
        dtype: torch.dtype,
        device: torch.device | str,
        prompt_bytes: int | None = None,
    ) -> None:
        self.rows, self.dtype, self.device = rows, dtype, torch.device(device)
        self._prefix_shape = (kv_heads, prompt_columns, head_dim)
        slot_bytes = 2 * layers * kv_heads * prompt_columns * head_dim * dtype.itemsize
        budget = PROMPT_BYTES if prompt_bytes is None else prompt_bytes
        self.max_slots = max(1, min(rows, budget // slot_bytes))
        # Prefix slots grow on demand: k samples of a problem need one, plain runs one per row.
        self.prefix_keys: list[torch.Tensor] = [self._no_slots() for _ in range(layers)]
        self.prefix_values: list[torch.Tensor] = [self._no_slots() for _ in range(layers)]
        self.prefix_length: list[int] = []
        self.users: list[int] = []  # live rows per prefix slot
        shape = (rows, kv_heads, sample_columns, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.length = [0] * rows  # a row's tokens with keys in the cache
        self.slot_of = [-1] * rows
        self.live = 0
        self._step: _Step | None = None

    # --- what the sampler calls ---
    def has_room(self) -> bool:
        """Whether another prompt fits now (else rows must finish and free a slot first)."""
        return 0 in self.users or len(self.users) < self.max_slots

    def add_prefix(self, prefix: Prefix) -> int:
        """Store a prompt's keys/values in a free prefix slot (grown if none is free)."""
        if 0 not in self.users:
            self._grow()
        slot = self.users.index(0)
        for stored, new in ((self.prefix_keys, prefix.keys), (self.prefix_values, prefix.values)):
            for layer, tensor in enumerate(new):
                stored[layer][slot, :, : prefix.length] = tensor
        self.prefix_length[slot] = prefix.length
        return slot

    def add_row(self, slot: int) -> int:
        """A new sample of the prompt in ``slot``, in the row after the live ones."""
        row = self.live
        self.live += 1
        self.slot_of[row], self.length[row] = slot, 0
        self.users[slot] += 1
        return row

    def remove_row(self, row: int) -> int | None:
        """End ``row``'s sample; the last live row moves into it. Which row moved, if any."""
        self.users[self.slot_of[row]] -= 1
        self.live -= 1
        last = self.live
        if row == last:
            return None
        used = self.length[last]
        for tensor in (*self.keys, *self.values):
            tensor[row, :, :used] = tensor[last, :, :used]
        self.slot_of[row], self.length[row] = self.slot_of[last], used
        return last

    def prepare_step(self) -> torch.Tensor:
        """The additive [live, 1, 1, columns] mask of the next step over the live rows."""
        live = self.live
        lengths = torch.tensor(self.length[:live], device=self.device)
        columns = int(lengths.max()) + 1
        hidden = torch.arange(columns, device=self.device)[None, :] > lengths[:, None]
        mask = torch.zeros(hidden.shape, dtype=self.dtype, device=self.device)
        mask.masked_fill_(hidden, torch.finfo(self.dtype).min)
        rows = torch.arange(live, device=self.device)
        self._step = _Step(rows, lengths, columns, self._layout())
        return mask[:, None, None, :]

    def advance(self) -> None:
        for row in range(self.live):
            self.length[row] += 1
        self._step = None

    # --- what the model's layers call ---
    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the live rows' new keys/values at their own columns; their samples' keys."""
        step = self._step
        assert step is not None, "prepare_step() comes before the forward pass"
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[step.rows, :, step.lengths] = key_states[:, :, 0]
        values[step.rows, :, step.lengths] = value_states[:, :, 0]
        return keys[: self.live, :, : step.columns], values[: self.live, :, : step.columns]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return max(self.length[: self.live], default=0)

    def prefix_part(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, _Layout]:
        """The layer's prompt keys and values of the slots this step reads, and the layout."""
        assert self._step is not None, "prepare_step() comes before the forward pass"
        layout = self._step.layout
        keys = self.prefix_keys[layer][: layout.slots, :, : layout.columns]
        values = self.prefix_values[layer][: layout.slots, :, : layout.columns]
        return keys, values, layout

    def _layout(self) -> _Layout:
        slot_of = self.slot_of[: self.live]
        slots = max(slot_of) + 1
        members: list[list[int]] = [[] for _ in range(slots)]
        for row, slot in enumerate(slot_of):
            members[slot].append(row)
        width = max(len(m) for m in members)
        row_of = [m + [0] * (width - len(m)) for m in members]  # row 0 fills unused places
        place_of = [0] * self.live
        for slot, rows in enumerate(members):
            for i, row in enumerate(rows):
                place_of[row] = slot * width + i
        columns = max(self.prefix_length[:slots])
        lengths = torch.tensor(
            [max(n, 1) for n in self.prefix_length[:slots]], device=self.device
        )  # an unused slot keeps column 0 visible, so its (unread) softmax stays finite
        mask = torch.zeros(slots, columns, dtype=self.dtype, device=self.device)
        hidden = torch.arange(columns, device=self.device) >= lengths[:, None]
        mask.masked_fill_(hidden, torch.finfo(self.dtype).min)
        return _Layout(
            slots=slots,
            columns=columns,
            row_of=torch.tensor(row_of, device=self.device),
            place_of=torch.tensor(place_of, device=self.device),
            mask=mask[:, None, None, :],
        )

    def _no_slots(self) -> torch.Tensor:
        return torch.zeros((0, *self._prefix_shape), dtype=self.dtype, device=self.device)

    def _grow(self) -> None:
        """Double the prefix slots (at least one, at most ``max_slots``)."""
        have = len(self.users)
        more = min(max(have, 1), self.max_slots - have)
        assert more > 0, "add_prefix() without has_room()"
        extra = (more, *self._prefix_shape)
        for stored in (self.prefix_keys, self.prefix_values):
            for layer, tensor in enumerate(stored):
                fresh = torch.zeros(extra, dtype=self.dtype, device=self.device)
                stored[layer] = torch.cat([tensor, fresh])
        self.prefix_length += [0] * more
        self.users += [0] * more


def cache_argument(model: torch.nn.Module) -> str:
    """The forward argument that takes the cache: ``cache`` from transformers 5.24 on."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def causal_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The additive [1, 1, length, length] causal mask of a prompt's forward pass."""
    blocked = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    mask = torch.zeros(length, length, dtype=dtype, device=device)
    return mask.masked_fill_(blocked, torch.finfo(dtype).min)[None, None]


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    shared_prefix: SharedPrefixCache | None = None,
    causal_prompt: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Decode attention over a shared prompt and each row's own tokens (module docstring).

    ``causal_prompt``: a prompt's own forward pass, causal, each key head read once. Any
    other call (``generate``, a loglikelihood) is transformers' SDPA. Query head h reads
    key/value head h // group, as in grouped-query attention; folding a key/value head's
    query heads into query positions reads each key head once.
    """
    rows, heads, length, dim = query.shape
    scale = dim**-0.5 if scaling is None else scaling
    if causal_prompt and rows == 1 and not dropout:
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scale, enable_gqa=True
        )
        return out.transpose(1, 2).contiguous(), None
    decoding = shared_prefix is not None and attention_mask is not None and length == 1
    if not decoding or dropout or kwargs.get("softcap") is not None:
        return sdpa_attention()(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    assert shared_prefix is not None and attention_mask is not None
    layer: int = module.layer_idx  # type: ignore[assignment]  # set by every decoder layer
    kv_heads = key.shape[1]
    group = heads // kv_heads
    q = query.view(rows, kv_heads, group, dim)
    # Each row against its own tokens.
    own_out, own_lse = attention_with_lse(q, key, value, attention_mask, scale)
    # Every row of a prompt against its keys at once: [slots, kv_heads, places * group, dim].
    prompt_keys, prompt_values, layout = shared_prefix.prefix_part(layer)
    slots, places = layout.row_of.shape
    grouped = q[layout.row_of].permute(0, 2, 1, 3, 4).reshape(slots, kv_heads, places * group, dim)
    shared_out, shared_lse = attention_with_lse(
        grouped, prompt_keys, prompt_values, layout.mask, scale
    )

    def by_row(t: torch.Tensor) -> torch.Tensor:  # [slots, kv, places * group, x] by row
        # -> [rows, kv, group, x]
        t = t.view(slots, kv_heads, places, group, -1).permute(0, 2, 1, 3, 4)
        return t.reshape(slots * places, kv_heads, group, -1)[layout.place_of]

    shared_out, shared_lse = by_row(shared_out), by_row(shared_lse)
    total = torch.logaddexp(own_lse, shared_lse)
    out = own_out * (own_lse - total).exp() + shared_out * (shared_lse - total).exp()
    return out.to(query.dtype).reshape(rows, 1, heads, dim), None
