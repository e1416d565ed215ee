"""The flow's token encoder: conformer layers with relative-position attention, upsampled x2.

Non-streaming only: every position attends to every other (one utterance, no padding).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from engine.backends.stepaudio.decoder.config import EncoderConfig

__all__ = ["UpsampleConformerEncoder", "relative_positions"]

_ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def relative_positions(length: int, width: int, device: torch.device) -> torch.Tensor:
    """ESPnet sinusoids for relative distances ``length-1, ..., 0, ..., -(length-1)``.

    Channel ``2i`` holds ``sin(r * f_i)`` and ``2i + 1`` holds ``cos(r * f_i)``, with
    ``f_i = 10000^(-2i / width)``.

    Returns:
        ``(1, 2 * length - 1, width)`` float32.
    """
    distance = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=device)
    freqs = torch.exp(
        torch.arange(0, width, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / width)
    )
    angles = distance[:, None] * freqs[None, :]
    table = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(len(distance), width)
    return table.unsqueeze(0)


class LinearEmbed(nn.Module):
    """Linear -> LayerNorm, scaled by sqrt(width) before the attention layers."""

    def __init__(self, in_width: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_width, width)
        self.norm = nn.LayerNorm(width, eps=1e-5)
        self.scale = math.sqrt(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x)) * self.scale


class RelPositionAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions (u/v biases)."""

    def __init__(self, width: int, heads: int, key_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.linear_q = nn.Linear(width, width)
        self.linear_k = nn.Linear(width, width, bias=key_bias)
        self.linear_v = nn.Linear(width, width)
        self.linear_out = nn.Linear(width, width)
        self.linear_pos = nn.Linear(width, width, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.head_dim))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self._split(self.linear_q(x))
        k = self._split(self.linear_k(x)).transpose(1, 2)
        v = self._split(self.linear_v(x)).transpose(1, 2)
        p = self._split(self.linear_pos(positions)).transpose(1, 2)
        content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-1, -2))
        by_distance = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-1, -2))
        # Row i of by_distance lists distances length-1 .. -(length-1); key j sits at
        # distance i - j, i.e. column (length - 1) - i + j: a strided view, no copy.
        by_distance = by_distance.contiguous()
        span = 2 * length - 1
        position = by_distance.as_strided(
            (batch, self.heads, length, length),
            (self.heads * length * span, length * span, span - 1, 1),
            by_distance.storage_offset() + length - 1,
        )
        scores = (content + position) / math.sqrt(self.head_dim)
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.linear_out(out.transpose(1, 2).reshape(batch, length, -1))


class FeedForward(nn.Module):
    """Position-wise feed-forward block."""

    def __init__(self, width: int, inner: int, activation: str) -> None:
        super().__init__()
        self.w_1 = nn.Linear(width, inner)
        self.w_2 = nn.Linear(inner, width)
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(x)))


class ConformerLayer(nn.Module):
    """Pre-norm attention + feed-forward (no macaron half, no convolution module)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        width = config.output_size
        self.norm_mha = nn.LayerNorm(width, eps=1e-12)
        self.self_attn = RelPositionAttention(width, config.attention_heads, config.key_bias)
        self.norm_ff = nn.LayerNorm(width, eps=1e-12)
        self.feed_forward = FeedForward(width, config.linear_units, config.activation)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), positions)
        return x + self.feed_forward(self.norm_ff(x))


class PreLookahead(nn.Module):
    """Looks ``lookahead`` frames ahead (right-padded conv), then a causal conv; residual."""

    def __init__(self, width: int, lookahead: int) -> None:
        super().__init__()
        self.lookahead = lookahead
        self.conv1 = nn.Conv1d(width, width, lookahead + 1)
        self.conv2 = nn.Conv1d(width, width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.pad(x.transpose(1, 2), (0, self.lookahead))
        y = functional.pad(functional.leaky_relu(self.conv1(y)), (2, 0))
        return x + self.conv2(y).transpose(1, 2)


class Upsample(nn.Module):
    """Nearest-neighbour repeat by ``stride``, then a causal conv of width ``2 * stride + 1``."""

    def __init__(self, width: int, stride: int, scale: float) -> None:
        super().__init__()
        self.stride, self.scale = stride, scale
        self.conv = nn.Conv1d(width, width, 2 * stride + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.interpolate(x.transpose(1, 2), scale_factor=self.scale, mode="nearest")
        return self.conv(functional.pad(y, (2 * self.stride, 0))).transpose(1, 2)


class UpsampleConformerEncoder(nn.Module):
    """Embed -> lookahead -> conformer layers -> x2 upsample -> embed -> conformer layers."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        width = config.output_size
        self.embed = LinearEmbed(config.input_size, width)
        self.pre_lookahead_layer = PreLookahead(width, config.pre_lookahead_len)
        self.encoders = nn.ModuleList(ConformerLayer(config) for _ in range(config.num_blocks))
        self.up_layer = Upsample(width, config.up_stride, config.up_scale_factor)
        self.up_embed = LinearEmbed(config.input_size, width)
        self.up_encoders = nn.ModuleList(
            ConformerLayer(config) for _ in range(config.num_up_blocks)
        )
        self.after_norm = nn.LayerNorm(width, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encodes ``(1, T, input_size)`` embeddings into ``(1, stride * T, output_size)``."""
        width = self.after_norm.normalized_shape[0]
        x = self.pre_lookahead_layer(self.embed(x))
        positions = relative_positions(x.shape[1], width, x.device).to(x.dtype)
        for layer in self.encoders:
            x = layer(x, positions)
        x = self.up_embed(self.up_layer(x))
        positions = relative_positions(x.shape[1], width, x.device).to(x.dtype)
        for layer in self.up_encoders:
            x = layer(x, positions)
        return self.after_norm(x)
