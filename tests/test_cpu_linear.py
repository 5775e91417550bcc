"""oneDNN-packed linear layers agree with ``nn.Linear`` and are swapped only when they do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lm_eval_monkeys.models.cpu_linear import (
    PackedLinear,
    SiblingPart,
    native_bfloat16,
    pack_linears,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_matches_nn_linear(dtype: torch.dtype, bias: bool) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160, bias=bias).to(dtype)
    packed = PackedLinear(linear)
    with torch.inference_mode():
        for shape in [(1, 96), (64, 96), (2, 7, 96), (1, 300, 96)]:
            x = torch.randn(shape).to(dtype)
            expected, got = linear(x), packed(x)
            assert got.shape == expected.shape and got.dtype == dtype
            tolerance = 1e-5 if dtype == torch.float32 else 2e-2
            scale = float(expected.abs().max())
            assert float((got.float() - expected.float()).abs().max()) <= tolerance * scale


def test_pack_linears_swaps_every_linear_and_keeps_the_output() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(64, 8))
    )
    x = torch.randn(5, 32)
    with torch.inference_mode():
        before = model(x)
        assert pack_linears(model) == 2
        after = model(x)
    assert isinstance(model[0], PackedLinear) and isinstance(model[2][0], PackedLinear)
    assert torch.allclose(before, after, rtol=1e-5, atol=1e-6)


class Block(torch.nn.Module):
    """Attention's three projections (q with a bias, as Qwen2's) and a gated MLP's inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(32, 32)
        self.k_proj = torch.nn.Linear(32, 8, bias=False)
        self.v_proj = torch.nn.Linear(32, 8, bias=False)
        self.gate_proj = torch.nn.Linear(32, 48, bias=False)
        self.up_proj = torch.nn.Linear(32, 48, bias=False)


def test_siblings_share_one_matmul_and_give_each_layer_its_own_output() -> None:
    torch.manual_seed(0)
    block = Block()
    names = ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"]
    own = {name: getattr(block, name) for name in names}
    x, y = torch.randn(5, 32), torch.randn(5, 32)
    with torch.inference_mode():
        assert pack_linears(block) == 5
        assert all(isinstance(getattr(block, name), SiblingPart) for name in names)
        assert block.q_proj.siblings is block.v_proj.siblings is not block.up_proj.siblings
        # The model's order, then orders that must not reuse another input's output:
        # a sibling again on the same input, siblings alternating between two inputs.
        calls = [(n, x) for n in names] + [("k_proj", x), ("k_proj", x), ("q_proj", y)]
        calls += [("k_proj", x), ("v_proj", y), ("gate_proj", y), ("up_proj", x)]
        for name, inputs in calls:
            got, expected = getattr(block, name)(inputs), own[name](inputs)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (name, inputs is x)


def test_pack_linears_leaves_other_dtypes_alone() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4)).double()
    assert pack_linears(model) == 0
    assert type(model[0]) is torch.nn.Linear


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu avx512f amx_bf16 amx_tile", True),
        ("fpu avx512f avx512_bf16", True),
        ("fpu avx2", False),
    ],
)
def test_native_bfloat16_reads_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t: avx512_bf16\n")
    assert native_bfloat16(cpuinfo) is native
    assert native_bfloat16(tmp_path / "absent") is False  # no /proc: no claim
