"""The Paraformer-streaming SAN-M encoder, run chunk by chunk as the vq02 tokenizer does (§3.2).

Module and parameter names match the ``encoder.*`` keys of the official ``model.pt`` once that
prefix is removed: ``encoders0.0.*`` (input width -> model width), ``encoders.{i}.*`` and
``after_norm.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["EncoderConfig", "EncoderState", "SanmEncoder", "StreamingSettings"]

# LayerNorm epsilon of every FunASR encoder norm.
_NORM_EPS = 1e-12


@dataclass(frozen=True)
class EncoderConfig:
    """The ``encoder_conf`` values the forward pass depends on.

    Attributes:
        input_size: Width of the LFR features (``n_mels * lfr_m``).
        output_size: Model width.
        attention_heads: Heads per attention.
        linear_units: Feed-forward width.
        num_blocks: Layers, the first one included.
        kernel_size: FSMN kernel.
        sanm_shift: FSMN extra left shift (``sanm_shfit`` in the config).
    """

    input_size: int
    output_size: int = 512
    attention_heads: int = 4
    linear_units: int = 2048
    num_blocks: int = 50
    kernel_size: int = 11
    sanm_shift: int = 0

    @classmethod
    def from_mapping(cls, conf: Mapping[str, Any], input_size: int) -> EncoderConfig:
        """Builds the config from ``config.yaml``'s ``encoder_conf``.

        Raises:
            ValueError: for settings this implementation does not support.
        """
        expected = {
            "input_layer": "pe_online",
            "normalize_before": True,
            "concat_after": False,
            "selfattention_layer_type": "sanm",
            "positionwise_layer_type": "linear",
        }
        for key, value in expected.items():
            if key in conf and conf[key] != value:
                raise ValueError(
                    f"encoder_conf.{key} is {conf[key]!r}; only {value!r} is supported"
                )
        config = cls(
            input_size=input_size,
            output_size=int(conf.get("output_size", 512)),
            attention_heads=int(conf.get("attention_heads", 4)),
            linear_units=int(conf.get("linear_units", 2048)),
            num_blocks=int(conf.get("num_blocks", 50)),
            kernel_size=int(conf.get("kernel_size", 11)),
            sanm_shift=int(conf.get("sanm_shfit", 0)),
        )
        if config.output_size % config.attention_heads:
            raise ValueError(
                f"encoder_conf.output_size {config.output_size} is not divisible by "
                f"attention_heads {config.attention_heads}"
            )
        if config.num_blocks < 1:
            raise ValueError(f"encoder_conf.num_blocks must be >= 1, got {config.num_blocks}")
        return config


@dataclass(frozen=True)
class StreamingSettings:
    """How the tokenizer streams (``chunk_size`` [0, 4, 5], ``encoder_chunk_look_back`` 4).

    Attributes:
        chunk_size: (left, middle, right) in LFR frames; middle * 960 samples is the stride.
        look_back: Chunks of keys/values each layer keeps.
    """

    chunk_size: tuple[int, int, int] = (0, 4, 5)
    look_back: int = 4

    @property
    def stride_samples(self) -> int:
        """Samples per streamed piece (60 ms per LFR frame at 16 kHz)."""
        return self.chunk_size[1] * 960

    @property
    def overlap(self) -> int:
        """Embedded frames of the previous window prepended to each new one."""
        return self.chunk_size[0] + self.chunk_size[2]

    @property
    def cache_frames(self) -> int:
        """Keys/values each layer keeps between chunks."""
        return self.look_back * self.chunk_size[1]


@dataclass
class EncoderState:
    """Everything carried from one chunk to the next.

    Attributes:
        position: LFR frames embedded so far (positions count from 1).
        overlap: Most recent embedded frames, ``(1, overlap, input_size)``.
        kv: Per layer, the cached keys and values ``(1, heads, frames, head_dim)``.
    """

    position: int
    overlap: torch.Tensor
    kv: list[tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=list)


class _FeedForward(nn.Module):
    def __init__(self, size: int, units: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(size, units)
        self.w_2 = nn.Linear(units, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.relu(self.w_1(x)))


class _SanmAttention(nn.Module):
    """Self-attention plus an FSMN memory block over the values."""

    def __init__(self, in_size: int, size: int, heads: int, kernel: int, shift: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = size // heads
        self.linear_q_k_v = nn.Linear(in_size, 3 * size)
        self.linear_out = nn.Linear(size, size)
        self.fsmn_block = nn.Conv1d(size, size, kernel, groups=size, bias=False)
        left = (kernel - 1) // 2 + max(shift, 0)
        self.padding = (left, kernel - 1 - left)

    def forward(
        self,
        x: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None,
        settings: StreamingSettings,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, frames, _ = x.shape
        q, k, v = torch.split(self.linear_q_k_v(x), self.heads * self.head_dim, dim=-1)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, frames, self.heads, self.head_dim).transpose(1, 2)

        q_h, k_h, v_h = heads(q), heads(k), heads(v)
        # The last chunk_size[2] frames are right context; they are not cached.
        drop = settings.chunk_size[2]
        if cache is None:
            new_cache = (k_h[:, :, :-drop], v_h[:, :, :-drop])
        else:
            new_cache = (
                torch.cat([cache[0], k_h[:, :, :-drop]], dim=2)[:, :, -settings.cache_frames :],
                torch.cat([cache[1], v_h[:, :, :-drop]], dim=2)[:, :, -settings.cache_frames :],
            )
            k_h = torch.cat([cache[0], k_h], dim=2)
            v_h = torch.cat([cache[1], v_h], dim=2)
        memory = nn.functional.pad(v.transpose(1, 2), self.padding)
        memory = self.fsmn_block(memory).transpose(1, 2) + v
        scores = torch.matmul(q_h * self.head_dim**-0.5, k_h.transpose(-2, -1))
        context = torch.matmul(torch.softmax(scores, dim=-1), v_h)
        context = context.transpose(1, 2).reshape(batch, frames, self.heads * self.head_dim)
        return self.linear_out(context) + memory, new_cache


class _SanmLayer(nn.Module):
    """Pre-norm SAN-M layer; the attention residual exists only when widths match."""

    def __init__(self, in_size: int, config: EncoderConfig) -> None:
        super().__init__()
        size = config.output_size
        self.residual = in_size == size
        self.norm1 = nn.LayerNorm(in_size, eps=_NORM_EPS)
        self.norm2 = nn.LayerNorm(size, eps=_NORM_EPS)
        self.self_attn = _SanmAttention(
            in_size, size, config.attention_heads, config.kernel_size, config.sanm_shift
        )
        self.feed_forward = _FeedForward(size, config.linear_units)

    def forward(
        self,
        x: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None,
        settings: StreamingSettings,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, cache = self.self_attn(self.norm1(x), cache, settings)
        x = x + attended if self.residual else attended
        return x + self.feed_forward(self.norm2(x)), cache


class SanmEncoder(nn.Module):
    """``SANMEncoderChunkOpt`` in streaming (``forward_chunk``) mode.

    Args:
        config: Sizes from ``config.yaml``.
        settings: Chunking of the official tokenizer.
    """

    def __init__(self, config: EncoderConfig, settings: StreamingSettings) -> None:
        super().__init__()
        self.config = config
        self.settings = settings
        self.encoders0 = nn.ModuleList([_SanmLayer(config.input_size, config)])
        self.encoders = nn.ModuleList(
            [_SanmLayer(config.output_size, config) for _ in range(config.num_blocks - 1)]
        )
        self.after_norm = nn.LayerNorm(config.output_size, eps=_NORM_EPS)

    def initial_state(self) -> EncoderState:
        """State before the first chunk: position 0, zero overlap frames, empty caches."""
        param = self.after_norm.weight
        shape = (1, self.settings.overlap, self.config.input_size)
        overlap = torch.zeros(shape, dtype=param.dtype, device=param.device)
        return EncoderState(position=0, overlap=overlap, kv=[None] * self.config.num_blocks)

    def _position_encoding(self, start: int, frames: int) -> torch.Tensor:
        """Sinusoids of positions ``start + 1 … start + frames`` laid out as [sin ‖ cos]."""
        depth = self.config.input_size
        positions = torch.arange(start + 1, start + frames + 1, dtype=torch.float32)
        increment = torch.log(torch.tensor([10000.0])) / (depth / 2 - 1)
        inverse = torch.exp(torch.arange(depth // 2, dtype=torch.float32) * -increment)
        angles = positions[:, None] * inverse[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)[None]

    @torch.inference_mode()
    def forward_chunk(self, features: torch.Tensor, state: EncoderState) -> torch.Tensor:
        """Encodes the LFR frames of one piece.

        Args:
            features: ``(1, frames, input_size)`` CMVN-normalised LFR frames.
            state: Carried state; updated in place.

        Returns:
            ``(1, frames, output_size)``: the outputs of the new frames only.
        """
        frames = features.shape[1]
        # Scaled by sqrt(model width) even though the features are input_size wide.
        x = features * self.config.output_size**0.5
        x = x + self._position_encoding(state.position, frames).to(x)
        state.position += frames
        x = torch.cat([state.overlap, x], dim=1)
        state.overlap = x[:, -self.settings.overlap :]
        for index, layer in enumerate([*self.encoders0, *self.encoders]):
            x, state.kv[index] = layer(x, state.kv[index], self.settings)
        return self.after_norm(x)[:, -frames:]
