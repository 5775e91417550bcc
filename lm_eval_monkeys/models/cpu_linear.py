"""Linear layers on oneDNN with prepacked weights, for models decoding on a CPU.

torch's CPU ``nn.Linear`` calls MKL's GEMM, which on AMD CPUs takes a generic path: on
the development machine (AMD EPYC, AVX-512) a 64-row fp32 matmul ran at a third of the
speed of oneDNN's with the weight reordered once into its blocked layout
(docs/benchmarks.md). Decoding k samples is exactly that shape, every step, so
``pack_linears`` swaps each linear layer of a loaded model for one that holds the
prepacked weight. The arithmetic stays in the model's dtype (fp32 stays fp32); only the
summation order differs, so outputs agree with ``nn.Linear`` to float rounding, which
``pack_linears`` checks on the model's own first layer before swapping anything.

The kernels are torch's own (``torch.ops.mkldnn``, what ``torch.compile`` uses for CPU
linears). Where they are missing or disagree, the model is left as it was.

``native_bfloat16`` says whether the CPU multiplies bfloat16 in hardware (AMX tiles or
AVX512_BF16): there oneDNN's bfloat16 linear, accumulating in fp32, ran 4 to 12 times
faster than its fp32 one at a decode step's shapes (docs/benchmarks.md), so
``monkeys-hf`` decodes in bfloat16 by default on such a CPU (docs/engines.md).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

# The row count oneDNN is told to expect; measured as fast from 1 to 1,200 rows.
_ROWS_HINT = 64


# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16 matmuls.
_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512_BF16 flags)."""
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux: no claim, fp32 stays
        return False
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return bool(flags & _BF16_FLAGS)


class PackedLinear(torch.nn.Module):
    """``nn.Linear`` inference with the weight prepacked for oneDNN."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        # Not a parameter: a oneDNN-layout tensor cannot be moved, saved or trained.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, _ROWS_HINT)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def pack_linears(model: torch.nn.Module) -> int:
    """Swap every linear layer of ``model`` (on CPU) for a ``PackedLinear``; how many.

    Nothing is swapped (0) unless the model is on the CPU in float32 or bfloat16, the
    kernels exist, and the first layer's packed output matches its own to rounding.
    """
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]
    if not linears or not _packs_faithfully(linears[0][2]):
        return 0
    for parent, name, child in linears:
        setattr(parent, name, PackedLinear(child))
    return len(linears)


def _packs_faithfully(linear: torch.nn.Linear) -> bool:
    weight = linear.weight
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.bfloat16):
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    with torch.inference_mode():
        x = torch.randn(3, linear.in_features, generator=torch.Generator().manual_seed(0))
        x = x.to(weight.dtype)
        try:
            packed = PackedLinear(linear)(x)
        except (AttributeError, RuntimeError):  # kernels absent from this torch build
            return False
        reference = F.linear(x, weight, linear.bias)
    tolerance = 1e-4 if weight.dtype == torch.float32 else 2e-2
    scale = float(reference.abs().max()) or 1.0
    return bool((packed.float() - reference.float()).abs().max() <= tolerance * scale)
