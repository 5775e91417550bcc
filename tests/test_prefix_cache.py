"""The shared-prefix cache and its attention against plain attention over each row's tokens.

Each row's reference is SDPA over its prompt's keys followed by its own tokens' keys,
with every key/value head repeated for its query heads: what a model without a shared
cache computes. The cache is driven as the sampler drives it: prompts of different
lengths in slots, rows of several prompts at different lengths, finished rows filled by
the last one, slots reused and grown.
"""

from __future__ import annotations

import types

import pytest
import torch

from lm_eval_monkeys.models.prefix_cache import (
    Prefix,
    SharedPrefixCache,
    shared_prefix_attention,
)

KV_HEADS, GROUP, DIM, LAYERS = 3, 3, 16, 2


def prompt(length: int, generator: torch.Generator) -> Prefix:
    def layer() -> torch.Tensor:
        return torch.randn(KV_HEADS, length, DIM, generator=generator)

    return Prefix(
        keys=[layer() for _ in range(LAYERS)],
        values=[layer() for _ in range(LAYERS)],
        logits=torch.zeros(5),
    )


class Reference:
    """Every row's keys and values in full, as a cache-less decoder would hold them."""

    def __init__(self) -> None:
        self.keys: dict[int, list[torch.Tensor]] = {}
        self.values: dict[int, list[torch.Tensor]] = {}

    def start(self, row: int, prefix: Prefix) -> None:
        self.keys[row] = [k.clone() for k in prefix.keys]
        self.values[row] = [v.clone() for v in prefix.values]

    def append(self, row: int, layer: int, key: torch.Tensor, value: torch.Tensor) -> None:
        self.keys[row][layer] = torch.cat([self.keys[row][layer], key[:, None]], dim=1)
        self.values[row][layer] = torch.cat([self.values[row][layer], value[:, None]], dim=1)

    def attend(self, row: int, layer: int, query: torch.Tensor) -> torch.Tensor:
        keys = self.keys[row][layer].repeat_interleave(GROUP, dim=0)
        values = self.values[row][layer].repeat_interleave(GROUP, dim=0)
        return torch.nn.functional.scaled_dot_product_attention(query[:, None], keys, values)[:, 0]


def step(cache: SharedPrefixCache, reference: Reference, order: list[int], g: torch.Generator):
    """One decode step of every live row through both; the largest difference."""
    mask = cache.prepare_step()
    live = cache.live
    worst = 0.0
    for layer in range(LAYERS):
        query = torch.randn(live, KV_HEADS * GROUP, 1, DIM, generator=g)
        key = torch.randn(live, KV_HEADS, 1, DIM, generator=g)
        value = torch.randn(live, KV_HEADS, 1, DIM, generator=g)
        own_keys, own_values = cache.update(key, value, layer)
        out, _ = shared_prefix_attention(
            types.SimpleNamespace(layer_idx=layer),  # type: ignore[arg-type]
            query,
            own_keys,
            own_values,
            mask,
            shared_prefix=cache,
        )
        assert out.shape == (live, 1, KV_HEADS * GROUP, DIM)
        for row in range(live):
            reference.append(order[row], layer, key[row, :, 0], value[row, :, 0])
            expected = reference.attend(order[row], layer, query[row, :, 0])
            worst = max(worst, float((out[row, 0] - expected).abs().max()))
    cache.advance()
    return worst


@pytest.mark.parametrize("rows", [1, 4, 7])
def test_shared_prefix_attention_equals_attention_over_each_rows_tokens(rows: int) -> None:
    g = torch.Generator().manual_seed(rows)
    cache = SharedPrefixCache(LAYERS, rows, KV_HEADS, DIM, 40, 12, torch.float32, "cpu")
    reference = Reference()
    order: list[int] = []  # the sample in each cache row
    samples = iter(range(1_000))
    lengths = [40, 7, 23, 1, 31, 40, 2]
    pending = [(prompt(n, g), 3) for n in lengths]  # (prompt, samples still to start)
    slot = None
    worst = 0.0
    for _ in range(300):
        while cache.live < rows and pending:  # fill: the next sample or the next prompt
            prefix, left = pending[0]
            if slot is None or slot[0] is not prefix:
                slot = (prefix, cache.add_prefix(prefix))
            sample = next(samples)
            assert cache.add_row(slot[1]) == len(order)
            order.append(sample)
            reference.start(sample, prefix)
            pending[0] = (prefix, left - 1)
            if left == 1:
                pending.pop(0)
        if not cache.live:
            break
        worst = max(worst, step(cache, reference, order, g))
        full = [r for r in range(cache.live) if cache.length[r] == 12]
        ended = [r for r in range(cache.live) if r in full or torch.rand(1, generator=g) < 0.3]
        for r in reversed(ended):  # the last live row moves into each ended one
            moved = cache.remove_row(r)
            last = order.pop()
            if moved is not None:
                order[r] = last
    assert worst < 1e-5
    assert not pending and cache.live == 0, "every sample ran and ended"
    # Slots are reused: never more than one per row, often far fewer.
    assert len(cache.users) <= rows


def test_a_moved_row_keeps_its_own_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    cache = SharedPrefixCache(LAYERS, 3, KV_HEADS, DIM, 10, 8, torch.float32, "cpu")
    slot = cache.add_prefix(prompt(10, g))
    for _ in range(3):
        cache.add_row(slot)
    cache.prepare_step()
    for layer in range(LAYERS):
        marks = torch.arange(3.0)[:, None, None, None].expand(3, KV_HEADS, 1, DIM)
        cache.update(marks, marks, layer)
    cache.advance()
    assert cache.remove_row(0) == 2  # row 2 moves into row 0
    assert cache.live == 2 and cache.length[:2] == [1, 1]
    assert torch.equal(cache.keys[0][0, :, 0], torch.full((KV_HEADS, DIM), 2.0))
    assert torch.equal(cache.keys[1][1, :, 0], torch.full((KV_HEADS, DIM), 1.0))
    assert cache.remove_row(1) is None  # the last row: nothing moves
    assert cache.users[slot] == 1


def test_prompt_slots_stop_growing_at_their_memory_budget() -> None:
    """Two slots' worth of bytes: a third prompt waits until a row of another finishes."""
    g = torch.Generator().manual_seed(0)
    slot_bytes = 2 * LAYERS * KV_HEADS * 10 * DIM * 4
    cache = SharedPrefixCache(
        LAYERS, 4, KV_HEADS, DIM, 10, 8, torch.float32, "cpu", prompt_bytes=2 * slot_bytes
    )
    assert cache.max_slots == 2
    first, second = cache.add_prefix(prompt(10, g)), None
    cache.add_row(first)
    assert cache.has_room()
    second = cache.add_prefix(prompt(5, g))
    cache.add_row(second)
    assert not cache.has_room() and len(cache.users) == 2
    assert cache.remove_row(0) == 1  # the first prompt's only row ends: its slot is free
    assert cache.has_room() and cache.add_prefix(prompt(3, g)) == first
