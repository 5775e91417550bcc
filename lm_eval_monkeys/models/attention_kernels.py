"""The two attention kernels the shared-prefix attention borrows, each with a fallback.

- ``sdpa_attention``: transformers' SDPA attention function (what a model runs with
  ``attn_implementation="sdpa"``), looked up in transformers' attention registry
  (``ALL_ATTENTION_FUNCTIONS["sdpa"]``, as its attention-interface guide does) instead
  of importing its private module. A transformers without it gets
  ``torch_sdpa_attention``: torch's SDPA with transformers' rules (grouped heads,
  causal only for an unmasked prompt pass).
- ``attention_with_lse``: softmax attention and its log-sum-exp. On a CPU that is torch's
  fused flash kernel, ``aten._scaled_dot_product_flash_attention_for_cpu`` (private: the
  op SDPA itself runs there, which also returns the log-sum-exp), used only after it
  matched ``plain_attention_with_lse`` on a small input in this process (the way
  ``cpu_linear`` checks oneDNN); elsewhere, or where it is missing or disagrees, plain
  matmuls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

AttentionFn = Callable[..., tuple[torch.Tensor, Any]]


def torch_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention in torch alone: [rows, heads, q, dim] queries against
    [rows, kv_heads, keys, dim] keys, out as [rows, q, heads, dim]."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = query.shape[2] > 1 and attention_mask is None and causal
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        is_causal=causal,
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def sdpa_attention() -> AttentionFn:
    """transformers' SDPA attention function, else ``torch_sdpa_attention``."""
    try:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        found: AttentionFn = ALL_ATTENTION_FUNCTIONS["sdpa"]
    except (ImportError, KeyError):
        return torch_sdpa_attention
    return found


def plain_attention_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and its float32 log-sum-exp per query: ([..., q, dim], [..., q, 1])."""
    scores = (query @ key.transpose(-1, -2)).float() * scale + mask.float()
    lse = scores.logsumexp(-1, keepdim=True)
    return (scores - lse).exp().to(value.dtype) @ value, lse


def _flash_attention_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, False, attn_mask=mask, scale=scale
    )[:2]
    return out, lse.float()[..., None]


@functools.cache
def cpu_flash_agrees() -> bool:
    """Whether torch's CPU flash kernel exists and matches the plain computation here."""
    g = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, n, 8, generator=g) for n in (4, 5, 5))
    mask = torch.zeros(2, 3, 4, 5)
    mask[..., -1] = float("-inf")
    try:
        out, lse = _flash_attention_with_lse(query, key, value, mask, 0.3)
    except (AttributeError, RuntimeError, TypeError):  # absent, or another signature
        return False
    plain_out, plain_lse = plain_attention_with_lse(query, key, value, mask, 0.3)
    return bool(
        torch.allclose(out, plain_out, atol=1e-5) and torch.allclose(lse, plain_lse, atol=1e-5)
    )


def attention_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and its float32 log-sum-exp per query: ([..., q, dim], [..., q, 1])."""
    if query.device.type == "cpu" and cpu_flash_agrees():
        return _flash_attention_with_lse(query, key, value, mask, scale)
    return plain_attention_with_lse(query, key, value, mask, scale)
