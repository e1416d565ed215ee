"""The Step1 LLM's configuration, read from the checkpoint's ``config.json``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Step1Config"]

_REQUIRED_INTS = (
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_attention_groups",
    "num_hidden_layers",
    "vocab_size",
)


@dataclass(frozen=True)
class Step1Config:
    """The numbers that shape the Step1 model.

    Attributes:
        hidden_size: Width of the residual stream (3072 in the release).
        intermediate_size: SwiGLU width (8192).
        num_attention_heads: Query heads (48).
        num_attention_groups: Key/value heads (4); query head ``h`` uses group
            ``h // (heads / groups)``.
        num_hidden_layers: Decoder layers (32).
        vocab_size: Rows of the embedding and the untied head (74752).
        rms_norm_eps: RMSNorm epsilon.
        bos_token_id: Begin-of-sequence id (1).
        eos_token_id: End-of-turn id that ends generation (3).
        pad_token_id: Padding id (0).
        max_seq_len: Context the config declares.
        kv_group_layout: Which query heads share a key/value group (spec §10.10, not in
            config.json): ``"contiguous"`` (head h uses group ``h // (heads / groups)``,
            as vLLM's Step1 and the spec's sources read it) or ``"interleaved"``
            (``h % groups``). Settled by comparing last-position logits with the official
            remote code once.
        attention_scale: Score scale; ``None`` is ``head_dim ** -0.5`` (1/8), the spec's
            reading (§10.10), settled the same way.
    """

    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_attention_groups: int
    num_hidden_layers: int
    vocab_size: int
    rms_norm_eps: float = 1e-5
    bos_token_id: int = 1
    eos_token_id: int = 3
    pad_token_id: int = 0
    max_seq_len: int = 32768
    kv_group_layout: str = "contiguous"
    attention_scale: float | None = None

    def __post_init__(self) -> None:
        if self.kv_group_layout not in ("contiguous", "interleaved"):
            raise ValueError(
                f"kv_group_layout must be 'contiguous' or 'interleaved', got "
                f"{self.kv_group_layout!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def kv_width(self) -> int:
        """Output width of ``k_proj`` and ``v_proj``."""
        return self.num_attention_groups * self.head_dim

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the checkpoint must hold, by its official key, with its shape."""
        d, kv, ff = self.hidden_size, self.kv_width, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "model.embed_tokens.weight": (self.vocab_size, d),
            "model.norm.weight": (d,),
            "lm_head.weight": (self.vocab_size, d),
        }
        for i in range(self.num_hidden_layers):
            p = f"model.layers.{i}."
            shapes |= {
                p + "self_attn.q_proj.weight": (d, d),
                p + "self_attn.k_proj.weight": (kv, d),
                p + "self_attn.v_proj.weight": (kv, d),
                p + "self_attn.o_proj.weight": (d, d),
                p + "mlp.gate_proj.weight": (ff, d),
                p + "mlp.up_proj.weight": (ff, d),
                p + "mlp.down_proj.weight": (d, ff),
                p + "input_layernorm.weight": (d,),
                p + "post_attention_layernorm.weight": (d,),
            }
        return shapes

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step1Config:
        """Validates a decoded ``config.json``.

        Raises:
            ValueError: naming each missing or contradictory key, with its value.
        """
        problems = [
            f"{key} is missing or not a positive whole number (got {data.get(key)!r})"
            for key in _REQUIRED_INTS
            if not isinstance(data.get(key), int)
            or isinstance(data.get(key), bool)
            or data[key] <= 0
        ]
        if data.get("model_type", "step1") != "step1":
            problems.append(f"model_type is {data['model_type']!r}, expected 'step1'")
        # Absent is fine (this loader never ties); true contradicts the separate lm_head.
        if data.get("tie_word_embeddings", False) is not False:
            problems.append(
                f"tie_word_embeddings is {data['tie_word_embeddings']!r}; the checkpoint "
                "has its own lm_head, so it must be false"
            )
        if problems:
            raise ValueError("; ".join(problems))
        config = cls(
            hidden_size=data["hidden_size"],
            intermediate_size=data["intermediate_size"],
            num_attention_heads=data["num_attention_heads"],
            num_attention_groups=data["num_attention_groups"],
            num_hidden_layers=data["num_hidden_layers"],
            vocab_size=data["vocab_size"],
            rms_norm_eps=float(data.get("rms_norm_eps", 1e-5)),
            bos_token_id=int(data.get("bos_token_id", 1)),
            eos_token_id=int(data.get("eos_token_id", 3)),
            pad_token_id=int(data.get("pad_token_id", 0)),
            max_seq_len=int(data.get("max_seq_len", data.get("max_position_embeddings", 32768))),
        )
        if config.hidden_size % config.num_attention_heads:
            problems.append(
                f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
                f"{config.num_attention_heads}"
            )
        if config.num_attention_heads % config.num_attention_groups:
            problems.append(
                f"num_attention_heads {config.num_attention_heads} is not a multiple of "
                f"num_attention_groups {config.num_attention_groups}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return config
