"""The private APIs the package borrows, each behind one module with a fallback: the
fallback computes what the private API does, and the guard picks the private API only
where it exists (and, for the CPU flash kernel, agrees)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch

from lm_eval_monkeys.models.attention_kernels import (
    attention_with_lse,
    cpu_flash_agrees,
    plain_attention_with_lse,
    sdpa_attention,
    torch_sdpa_attention,
)


def tensors(rows: int, heads: int, kv_heads: int, q: int, keys: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(rows, heads, q, 16, generator=g)
    key = torch.randn(rows, kv_heads, keys, 16, generator=g)
    value = torch.randn(rows, kv_heads, keys, 16, generator=g)
    return query, key, value


def test_the_cpu_flash_kernel_is_checked_and_matches_plain_attention() -> None:
    assert cpu_flash_agrees()  # torch 2.13 has it: the fast path is the one in use here
    query, key, value = tensors(3, 4, 4, 5, 9)
    mask = torch.zeros(3, 4, 5, 9)
    mask[0, :, :, 6:] = float("-inf")  # row 0 has written 6 of its 9 columns
    out, lse = attention_with_lse(query, key, value, mask, 0.25)
    plain_out, plain_lse = plain_attention_with_lse(query, key, value, mask, 0.25)
    assert lse.shape == (3, 4, 5, 1) and lse.dtype == torch.float32
    assert torch.allclose(out, plain_out, atol=1e-5) and torch.allclose(lse, plain_lse, atol=1e-5)
    # The log-sum-exp is softmax's normaliser: it is what merging two key sets relies on.
    scores = (query @ key.transpose(-1, -2)) * 0.25 + mask
    assert torch.allclose(plain_lse, scores.logsumexp(-1, keepdim=True), atol=1e-5)


def module(kv_groups: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(is_causal=True, num_key_value_groups=kv_groups)


@pytest.mark.parametrize(
    ("heads", "kv_heads", "q", "masked"),
    [(4, 4, 1, True), (6, 2, 1, True), (6, 2, 7, False), (4, 4, 7, True)],
)
def test_the_torch_fallback_equals_transformers_sdpa(
    heads: int, kv_heads: int, q: int, masked: bool
) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    assert sdpa_attention() is sdpa_attention_forward  # found through the public registry
    query, key, value = tensors(2, heads, kv_heads, q, 7, seed=heads + q)
    mask = None
    if masked:
        mask = torch.zeros(2, 1, q, 7)
        mask[1, :, :, 3:] = float("-inf")
    args = (module(heads // kv_heads), query, key, value, mask)
    theirs, _ = sdpa_attention_forward(*args, scaling=0.3)
    ours, _ = torch_sdpa_attention(*args, scaling=0.3)
    assert ours.shape == theirs.shape == (2, q, heads, 16)
    assert torch.allclose(ours, theirs, atol=1e-5)
    if not masked:  # a prompt's pass without a mask is causal: the first query sees one key
        first_key = value[:, torch.arange(heads) // (heads // kv_heads), 0]  # [rows, heads, dim]
        assert torch.allclose(ours[:, 0], first_key, atol=1e-5)


def test_without_transformers_sdpa_the_fallback_is_used() -> None:
    code = (  # a transformers whose attention registry has no "sdpa"
        "from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS\n"
        "ALL_ATTENTION_FUNCTIONS._global_mapping.pop('sdpa')\n"
        "from lm_eval_monkeys.models.attention_kernels import sdpa_attention, "
        "torch_sdpa_attention\n"
        "assert sdpa_attention() is torch_sdpa_attention\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_without_lm_evals_cli_class_the_run_is_one_line() -> None:
    code = (
        "import sys; sys.modules['lm_eval._cli'] = None\n"
        "from lm_eval_monkeys.cli import main\n"
        "sys.argv = ['lm-eval-monkeys', '--model', 'monkeys-synthetic', '--tasks', "
        "'monkeys_gsm8k', '--limit', '1']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "lm_eval._cli.HarnessCLI" in line and "lm-eval>=0.4.13" in line, line


def test_lm_evals_cli_parse_leaves_sys_argv_alone() -> None:
    from lm_eval_monkeys.cli.harness import HarnessCommand

    before = list(sys.argv)
    args = HarnessCommand().parse(["--model", "monkeys-synthetic", "--tasks", "monkeys_gsm8k"])
    assert (args.command, args.model) == ("run", "monkeys-synthetic")
    assert sys.argv == before
