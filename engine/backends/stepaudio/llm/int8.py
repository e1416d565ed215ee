"""Weight-only int8 for the Step1 LLM: int8 weights, one scale per output channel, float math.

Only the weights are quantized (symmetric, round to nearest, ``scale = max|w| / 127`` per
output row); activations stay in the model's dtype, so logits move far less than with
dynamic quantization, which rounds the activations too. Resident weight memory drops to a
quarter of fp32 (half of bf16).

How a product is computed (measured on a 2-core AVX-512/AMX CPU, torch 2.13, one
3072 -> 8192 projection, one thread):

- CPU, up to ``PACKED_MAX_ROWS`` rows (decoding), input widths a multiple of
  ``PACKED_WIDTH_MULTIPLE``: ``torch._weight_int8pack_mm`` in bf16
  (fp16 for fp16 inputs): 2.5 ms a token against 6.9 ms for the fp32 Linear and 4.9 ms for
  bf16. Its fp32 kernel takes 24.5 ms, so fp32 inputs are rounded to bf16 for this product
  only (fp32 accumulation; the result is cast back).
- More rows (prefill), other devices, and inputs the kernel does not take: the int8 weight
  is converted to the input's dtype (exact: |q| <= 127 fits bf16's mantissa) and the scale
  multiplies the output, so no scaled float copy of the weight is made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional

__all__ = [
    "PACKED_MAX_ROWS",
    "PACKED_WIDTH_MULTIPLE",
    "Int8Linear",
    "quantize_linears",
    "quantize_weight",
    "weight_bytes",
]

_LOG = logging.getLogger(__name__)

# Above this many rows the packed kernel (no blocking over rows) is slower than converting
# the weight once: 25.8 ms against ~6 ms + the 27 ms conversion at 32 rows, 4.2 ms against
# 4.7 ms at 4 rows.
PACKED_MAX_ROWS = 16
# The bf16 kernel returns inf/nan or crashes for input widths that are not a multiple of 16
# (torch 2.13 CPU, AVX-512 BF16); every Step1 width is a multiple of 32.
PACKED_WIDTH_MULTIPLE = 32
_PACKED_DTYPES = {
    torch.float32: torch.bfloat16,
    torch.bfloat16: torch.bfloat16,
    torch.float16: torch.float16,
}


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 of a ``(out, in)`` weight, rounded to nearest.

    Args:
        weight: Float weight of any dtype and device.

    Returns:
        The int8 weight (same shape and device) and the float32 ``(out,)`` scales, with
        ``weight ~= int8 * scale[:, None]`` to within ``scale / 2`` per element. An
        all-zero row gets scale 1 (its int8 row is zero).
    """
    # One float32 working copy, rounded in place (the full-size MLP weights are 100 MB each).
    w = weight.detach().to(torch.float32, copy=True)
    peak = w.abs().amax(dim=1)
    scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
    q = w.div_(scale[:, None]).round_().clamp_(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """A bias-optional Linear whose weight is int8 with a float32 scale per output channel.

    ``weight`` (int8, ``(out, in)``) and ``scale`` (float32, ``(out,)``) are buffers, so the
    module holds no trainable parameters and a state dict carries both.

    Args:
        in_features: Input width.
        out_features: Output width.
        bias: Whether there is a float bias (kept in the model's dtype).
        device: Where the buffers live.
        dtype: Dtype of the bias.
    """

    weight: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self._packable = in_features % PACKED_WIDTH_MULTIPLE == 0
        self.register_buffer(
            "weight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device)
        )
        self.register_buffer("scale", torch.ones(out_features, dtype=torch.float32, device=device))
        self.bias = (
            nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype), requires_grad=False)
            if bias
            else None
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """The quantized copy of ``linear`` (on its device; the bias is shared)."""
        module = cls(
            linear.in_features,
            linear.out_features,
            bias=False,
            device=torch.device("meta"),
        )
        module.weight, module.scale = quantize_weight(linear.weight)
        if linear.bias is not None:
            module.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
        return module

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight as floats, ``int8 * scale`` (for checks; ``forward`` never makes it)."""
        return (self.weight.to(torch.float32) * self.scale[:, None]).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        packed = _PACKED_DTYPES.get(x.dtype) if self._packable and x.device.type == "cpu" else None
        if packed is not None and rows.shape[0] <= PACKED_MAX_ROWS:
            out = torch._weight_int8pack_mm(
                rows.to(packed).contiguous(), self.weight, self.scale.to(packed)
            ).to(x.dtype)
        else:
            # Per-output-channel scales commute with the product: scale the output.
            out = functional.linear(rows, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, int8 per-channel"
        )


def quantize_linears(model: nn.Module, skip: Iterable[str] = ("lm_head",)) -> list[str]:
    """Replaces every ``nn.Linear`` of ``model`` by an ``Int8Linear``, one at a time.

    Each float weight is freed as soon as its int8 copy exists, so peak memory stays near
    the float model plus one layer. A meta-device model gets meta ``Int8Linear`` modules
    (to be filled by ``load_state_dict(..., assign=True)``).

    Args:
        model: The model, changed in place.
        skip: Qualified module names (and their sub-modules) kept in float; by default the
            output head, whose logits are what sampling reads (the official int8 mode keeps
            it 16-bit too).

    Returns:
        The qualified names of the replaced modules.
    """
    skipped = tuple(skip)
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear):
            continue
        if any(name == s or name.startswith(s + ".") for s in skipped):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if module.weight.device.type == "meta":
            quantized = Int8Linear(
                module.in_features,
                module.out_features,
                bias=module.bias is not None,
                device="meta",
                dtype=module.weight.dtype,
            )
        else:
            quantized = Int8Linear.from_linear(module)
        setattr(parent, child, quantized)
        replaced.append(name)
    _LOG.debug("int8: %d Linear modules quantized, %s kept in float", len(replaced), skipped)
    return replaced


def weight_bytes(modules: Iterable[nn.Module]) -> int:
    """Bytes of the parameters and buffers of ``modules`` (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total
