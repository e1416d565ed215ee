"""The CFM velocity estimator: a diffusion transformer with adaLN-Zero and a conv branch."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from engine.backends.stepaudio.decoder.config import DiTConfig

__all__ = ["DiT"]

_TIME_SCALE = 1000.0
_TIME_FEATURES = 256


def _norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Affine-free LayerNorm (eps 1e-6), then ``* (1 + scale) + shift``."""
    return functional.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale) + shift


def timestep_features(t: torch.Tensor, width: int = _TIME_FEATURES) -> torch.Tensor:
    """``[cos || sin]`` of ``1000 t`` at frequencies ``10000^(-k / (width / 2))``."""
    half = width // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = (t.float() * _TIME_SCALE)[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1).to(t.dtype)


class TimeEmbed(nn.Module):
    """Sinusoidal features -> Linear -> SiLU -> Linear."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(_TIME_FEATURES, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.fc2(functional.silu(self.fc1(timestep_features(t))))


class Attention(nn.Module):
    """Bidirectional multi-head attention with per-head LayerNorm on queries and keys."""

    def __init__(self, width: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q = nn.Linear(width, inner)
        self.to_k = nn.Linear(width, inner)
        self.to_v = nn.Linear(width, inner)
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-5)
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-5)
        self.proj = nn.Linear(inner, width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q_norm(self._heads(self.to_q(x)))
        k = self.k_norm(self._heads(self.to_k(x)))
        v = self._heads(self.to_v(x))
        out = functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class Mlp(nn.Module):
    """Linear -> GELU (tanh approximation) -> Linear."""

    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, inner)
        self.fc2 = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(functional.gelu(self.fc1(x), approximate="tanh"))


class CausalConvBranch(nn.Module):
    """Causal conv (kernel 3) -> LayerNorm -> Mish -> causal conv, over time."""

    def __init__(self, width: int, kernel: int = 3) -> None:
        super().__init__()
        self.pad = kernel - 1
        self.conv1 = nn.Conv1d(width, width, kernel)
        self.norm = nn.LayerNorm(width)
        self.conv2 = nn.Conv1d(width, width, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(functional.pad(x.transpose(1, 2), (self.pad, 0))).transpose(1, 2)
        y = functional.mish(self.norm(y)).transpose(1, 2)
        return self.conv2(functional.pad(y, (self.pad, 0))).transpose(1, 2)


class DiTBlock(nn.Module):
    """Attention, conv and MLP branches, each gated and modulated by the time embedding."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.attn = Attention(width, config.num_heads, config.head_dim)
        self.conv = CausalConvBranch(width)
        self.mlp = Mlp(width, int(width * config.mlp_ratio))
        self.modulation = nn.Linear(width, 9 * width)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        mods = self.modulation(functional.silu(c)).chunk(9, dim=-1)
        attn, mlp, conv = mods[0:3], mods[3:6], mods[6:9]  # (shift, scale, gate) each
        x = x + attn[2] * self.attn(_norm_modulate(x, attn[0], attn[1]))
        x = x + conv[2] * self.conv(_norm_modulate(x, conv[0], conv[1]))
        return x + mlp[2] * self.mlp(_norm_modulate(x, mlp[0], mlp[1]))


class FinalLayer(nn.Module):
    """Modulated norm and the projection to mel channels."""

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.modulation = nn.Linear(width, 2 * width)
        self.linear = nn.Linear(width, out_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(functional.silu(c)).chunk(2, dim=-1)
        return self.linear(_norm_modulate(x, shift, scale))


class DiT(nn.Module):
    """Predicts the flow velocity from ``[x, mu, spk, cond]`` and the time ``t``."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.time_embed = TimeEmbed(config.hidden_size)
        self.in_proj = nn.Linear(config.in_channels, config.hidden_size)
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final_layer = FinalLayer(config.hidden_size, config.out_channels)

    def forward(
        self,
        x: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spk: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """One velocity evaluation.

        Args:
            x: ``(B, 80, T)`` current sample.
            mu: ``(B, 80, T)`` encoder output.
            t: ``(B,)`` times in [0, 1].
            spk: ``(B, 80)`` projected speaker vector.
            cond: ``(B, 80, T)`` prompt mel (zeros past the prompt).

        Returns:
            ``(B, 80, T)`` velocity.
        """
        c = self.time_embed(t).unsqueeze(1)
        spk_frames = spk.unsqueeze(-1).expand(-1, -1, x.shape[-1])
        h = self.in_proj(torch.cat([x, mu, spk_frames, cond], dim=1).transpose(1, 2))
        for block in self.blocks:
            h = block(h, c)
        return self.final_layer(h, c).transpose(1, 2)
