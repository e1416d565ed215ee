"""The Step1 decoder-only LLM: RMSNorm, sqrt-ALiBi grouped-query attention, SwiGLU.

Module and parameter names match the checkpoint's keys, so its safetensors load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from engine.backends.stepaudio.llm.alibi import alibi_bias, alibi_slopes
from engine.backends.stepaudio.llm.config import Step1Config

__all__ = ["KVCache", "Step1ForCausalLM"]


class KVCache:
    """Keys and values of every layer for the positions seen so far.

    Buffers grow by doubling, so appending one token is amortised O(1) copies.
    """

    def __init__(self, num_layers: int) -> None:
        self._keys: list[torch.Tensor | None] = [None] * num_layers
        self._values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0

    def update(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stores ``(1, groups, new, head_dim)`` keys/values after position ``length``.

        Returns:
            Keys and values of all positions up to and including the new ones.
        """
        start, end = self.length, self.length + keys.shape[2]
        stored_k, stored_v = self._keys[layer], self._values[layer]
        if stored_k is None or stored_v is None or stored_k.shape[2] < end:
            capacity = max(end, 256, 2 * (stored_k.shape[2] if stored_k is not None else 0))
            shape = (*keys.shape[:2], capacity, keys.shape[3])
            new_k, new_v = keys.new_empty(shape), values.new_empty(shape)
            if stored_k is not None and stored_v is not None:
                new_k[:, :, :start] = stored_k[:, :, :start]
                new_v[:, :, :start] = stored_v[:, :, :start]
            self._keys[layer], self._values[layer] = stored_k, stored_v = new_k, new_v
        stored_k[:, :, start:end] = keys
        stored_v[:, :, start:end] = values
        return stored_k[:, :, :end], stored_v[:, :, :end]

    def advance(self, count: int) -> None:
        """Marks ``count`` more positions as stored (after every layer has seen them)."""
        self.length += count


class RMSNorm(nn.Module):
    """Root-mean-square norm; the statistics are taken in float32."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


class Step1Attention(nn.Module):
    """Causal attention with grouped key/value heads and an additive ALiBi bias."""

    def __init__(self, config: Step1Config) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.groups = config.num_attention_groups
        self.head_dim = config.head_dim
        self.scale = config.attention_scale or config.head_dim**-0.5
        self.interleaved = config.kv_group_layout == "interleaved"
        width = config.hidden_size
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, config.kv_width, bias=False)
        self.v_proj = nn.Linear(width, config.kv_width, bias=False)
        self.o_proj = nn.Linear(width, width, bias=False)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        per_group = self.heads // self.groups
        q = self.q_proj(x).view(batch, length, self.heads, self.head_dim)
        if self.interleaved:  # head r * groups + g -> position g * per_group + r
            q = q.view(batch, length, per_group, self.groups, self.head_dim).transpose(2, 3)
        q = q.reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.groups, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.groups, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        # Scores, bias and softmax in float32 whatever the weights' dtype; query position h
        # reads key/value group h // per_group (enable_gqa). The bias rows follow the same
        # head order.
        out = functional.scaled_dot_product_attention(
            q.float(),
            k.float(),
            v.float(),
            attn_mask=bias.unsqueeze(0),
            scale=self.scale,
            enable_gqa=True,
        ).to(x.dtype)
        if self.interleaved:
            shape = (batch, self.groups, per_group, length, self.head_dim)
            out = out.view(shape).transpose(1, 2)
        out = out.reshape(batch, self.heads, length, self.head_dim).transpose(1, 2)
        return self.o_proj(out.reshape(batch, length, self.heads * self.head_dim))


class Step1MLP(nn.Module):
    """SwiGLU feed-forward block."""

    def __init__(self, config: Step1Config) -> None:
        super().__init__()
        width, inner = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(width, inner, bias=False)
        self.up_proj = nn.Linear(width, inner, bias=False)
        self.down_proj = nn.Linear(inner, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Step1Layer(nn.Module):
    """Pre-norm decoder layer."""

    def __init__(self, config: Step1Config) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Step1Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = Step1MLP(config)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), bias, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Step1Model(nn.Module):
    """Embedding, decoder layers and the final norm."""

    def __init__(self, config: Step1Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Step1Layer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class Step1ForCausalLM(nn.Module):
    """Step1 with its untied output head."""

    def __init__(self, config: Step1Config) -> None:
        super().__init__()
        self.config = config
        self.model = Step1Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        slopes = alibi_slopes(config.num_attention_heads)
        if config.kv_group_layout == "interleaved":  # in the attention's head order
            per_group = config.num_attention_heads // config.num_attention_groups
            groups = config.num_attention_groups
            slopes = [slopes[r * groups + g] for g in range(groups) for r in range(per_group)]
        self._slopes = slopes
        self._slope_tensors: dict[torch.device, torch.Tensor] = {}

    def _slope_tensor(self, device: torch.device) -> torch.Tensor:
        if device not in self._slope_tensors:
            self._slope_tensors[device] = torch.tensor(
                self._slopes, dtype=torch.float32, device=device
            )
        return self._slope_tensors[device]

    def forward(
        self, input_ids: torch.Tensor, cache: KVCache | None = None, all_logits: bool = False
    ) -> torch.Tensor:
        """Runs new tokens through the model.

        Args:
            input_ids: ``(1, new)`` ids that follow the ``cache.length`` cached positions
                (or start at position 0 without a cache).
            cache: Keys/values of earlier positions; extended in place.
            all_logits: Return logits for every new position instead of only the last.

        Returns:
            float32 logits ``(1, new or 1, vocab)``.
        """
        start = cache.length if cache is not None else 0
        length = input_ids.shape[1]
        x = self.model.embed_tokens(input_ids)
        # The bias depends only on positions, so every layer shares it.
        bias = alibi_bias(self._slope_tensor(x.device), start, length, start + length)
        for index, layer in enumerate(self.model.layers):
            x = layer(x, bias, cache, index)
        if cache is not None:
            cache.advance(length)
        x = self.model.norm(x if all_logits else x[:, -1:])
        return self.lm_head(x).float()
