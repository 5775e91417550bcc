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

import itertools
from pathlib import Path
from typing import Any, TypeGuard

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

    def __init__(self, *linears: torch.nn.Linear) -> None:
        """One layer, or several reading one input: their outputs side by side."""
        super().__init__()
        self.in_features = linears[0].in_features
        self.out_features = sum(lin.out_features for lin in linears)
        weight = torch.cat([lin.weight.detach() for lin in linears])
        # Not a parameter: a oneDNN-layout tensor cannot be moved, saved or trained.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, _ROWS_HINT)
        biases = [
            torch.zeros(lin.out_features, dtype=weight.dtype) if lin.bias is None else lin.bias
            for lin in linears
        ]
        no_bias = all(lin.bias is None for lin in linears)
        self.bias = None if no_bias else torch.cat([b.detach() for b in biases])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


class SiblingLinears:
    """Linear layers that read the same input (``SIBLINGS``), computed as one matmul.

    Each sibling becomes a ``SiblingPart``; the first one called on an input runs the
    concatenated weight, the others take their columns of that output. A sibling called
    again on the same input, or any on another input, runs the matmul again, so any
    call order gives each layer's own output; the one order that computes once is the
    model's own (the input is not changed in place between its siblings' calls).
    """

    def __init__(self, linears: list[torch.nn.Linear]) -> None:
        self.linear = PackedLinear(*linears)
        ends = itertools.accumulate((lin.out_features for lin in linears), initial=0)
        self.parts = [SiblingPart(self, a, b) for a, b in itertools.pairwise(ends)]
        self._input: torch.Tensor | None = None
        self._output = torch.empty(0)
        self._served: set[int] = set()

    def columns(self, x: torch.Tensor, part: int, start: int, end: int) -> torch.Tensor:
        if x is not self._input or part in self._served:
            self._input, self._output, self._served = x, self.linear(x), set()
        output = self._output
        self._served.add(part)
        if len(self._served) == len(self.parts):  # every sibling served: hold nothing
            self._input, self._output = None, torch.empty(0)
        return output[..., start:end]


class SiblingPart(torch.nn.Module):
    """One layer of ``SiblingLinears``: its columns of the siblings' shared matmul."""

    def __init__(self, siblings: SiblingLinears, start: int, end: int) -> None:
        super().__init__()
        self.siblings, self.start, self.end = siblings, start, end
        self.out_features = end - start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.siblings.columns(x, id(self), self.start, self.end)


# Names of linear layers that read one input, in the models of transformers that use them
# (Llama, Qwen2, Mistral, ...): attention's projections and the gated MLP's two inputs.
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def pack_linears(model: torch.nn.Module) -> int:
    """Swap every linear layer of ``model`` (on CPU) for a packed one; how many.

    Siblings (``SIBLINGS``) share one ``SiblingLinears``, the rest become ``PackedLinear``:
    at a decode step's 64 rows one matmul of the three attention projections and one of
    the MLP's two inputs ran 1.3x and 2.4x faster than the separate ones (bfloat16, this
    project's CPU; docs/benchmarks.md). Nothing is swapped (0) unless the model is on the
    CPU in float32 or bfloat16, the kernels exist, and the first layer's packed output
    matches its own to rounding.
    """
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]
    if not linears or not _packs_faithfully(linears[0][2]):
        return 0
    fused: set[tuple[int, str]] = set()
    for parent in {id(p): p for p, _, _ in linears}.values():
        for names in SIBLINGS:
            group = [getattr(parent, n, None) for n in names]
            if _same_input(group):
                for name, part in zip(names, SiblingLinears(group).parts, strict=True):
                    setattr(parent, name, part)
                fused.update((id(parent), n) for n in names)
    for parent, name, child in linears:
        if (id(parent), name) not in fused:
            setattr(parent, name, PackedLinear(child))
    return len(linears)


def _same_input(group: list[Any]) -> TypeGuard[list[torch.nn.Linear]]:
    """Whether ``group`` is linear layers of one input width and dtype."""
    if not all(type(g) is torch.nn.Linear for g in group):
        return False
    first = group[0].weight
    return all(g.in_features == first.shape[1] and g.weight.dtype == first.dtype for g in group)


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
