"""Settings of the stepaudio backend (plain data; importing this module loads no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.backends.stepaudio.prompts import PromptSwitches

__all__ = [
    "DTYPE_NAMES",
    "QUANTIZE_NAMES",
    "DecoderOptions",
    "GenerationLimits",
    "SamplingConfig",
    "StepAudioOptions",
]

# Accepted --dtype values (they apply to the LLM; the decoder always runs float32).
DTYPE_NAMES = ("fp32", "bf16", "fp16")
# Accepted --quantize values: "int8" keeps the LLM's decoder-layer Linear weights in int8
# (weight-only, per output channel; activations stay in the --dtype).
QUANTIZE_NAMES = ("none", "int8")


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings; the defaults are what the official ``generate`` call ends up using.

    Attributes:
        temperature: Logit divisor (0.7).
        top_k: Candidates kept after the ban (50, transformers' default, spec §10.4); 0 = off.
        top_p: Nucleus mass (1.0 = off).
        repetition_window: Ids the repetition rule looks back over (10).
        repetition_threshold: Share of the window above which the last id is banned (0.1).
    """

    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 1.0
    repetition_window: int = 10
    repetition_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class GenerationLimits:
    """How many tokens one pass may generate.

    The bound is ``max(min_tokens, ceil(length_multiple * expected))``, further capped so
    prompt plus output stay within ``max_length`` (the official cap), so a model that never
    emits end-of-audio stops early instead of running to 8,192 tokens.

    Attributes:
        length_multiple: Allowed output length relative to the expected length (the input's
            audio tokens for edits, the target text's estimate for clone).
        min_tokens: Floor of the bound, for very short inputs.
        max_length: Cap on prompt + output tokens.
        prefill_chunk: Prompt tokens per forward pass (bounds attention memory).
    """

    length_multiple: float = 3.0
    min_tokens: int = 75
    max_length: int = 8192
    prefill_chunk: int = 256

    def __post_init__(self) -> None:
        if self.length_multiple <= 0 or self.min_tokens < 1 or self.prefill_chunk < 1:
            raise ValueError(
                "length_multiple must be > 0 and min_tokens, prefill_chunk >= 1; got "
                f"{self.length_multiple}, {self.min_tokens}, {self.prefill_chunk}"
            )

    def bound(self, expected_tokens: int) -> int:
        """Token budget for an output expected to be ``expected_tokens`` long."""
        return max(self.min_tokens, math.ceil(self.length_multiple * expected_tokens))


@dataclass(frozen=True)
class DecoderOptions:
    """Decoder settings.

    Attributes:
        steps: Euler steps of the flow (official: 10).
        noise_seed: Seed of the fixed starting noise.
    """

    steps: int = 10
    noise_seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class StepAudioOptions:
    """Everything about the stepaudio backend that is not a file.

    Attributes:
        seed: Sampler and vocoder-noise seed; ``None`` draws a new one per pass (the official
            code is unseeded). The seed used is reported in the result.
        sampling: Sampling settings; ``None`` is the official call: temperature 0.7, the
            repetition rule, and top-k/top-p from ``generation_config.json`` when the
            checkpoint has one, else transformers' defaults 50 / 1.0 (spec §10.4).
        limits: Generation length bounds.
        decoder: Decoder settings.
        prompt: Prompt switches (spec §10.1, B.1); ``None`` takes ``bos_per_segment`` from
            ``tokenizer_config.json`` (``add_bos_token``, true when absent).
        kv_group_layout: Step1 query-head to key/value-group mapping, ``"contiguous"`` or
            ``"interleaved"`` (spec §10.10; see ``Step1Config``).
        attention_scale: Step1 score scale; ``None`` is ``head_dim ** -0.5`` (§10.10).
        dither: vq02 front-end dither; ``None`` is the official behaviour, 0 makes codes
            reproducible. With the tokenizer cache, a slice keeps the codes of its first
            tokenization either way.
        retokenize: Iterations as the official pipeline runs them: every pass decoded and
            its audio tokenized again. Off: pass k+1 edits pass k's tokens, in the input's
            voice, and only the last pass is decoded.
        cache_bytes: Bound on the tokenizer cache's size on disk (when it has a folder).
        segment_seconds: Longest slice edited in one piece (the official guidance keeps
            prompts under 30 s); the engine edits a longer one in segments cut at pauses.
    """

    seed: int | None = None
    sampling: SamplingConfig | None = None
    limits: GenerationLimits = field(default_factory=GenerationLimits)
    decoder: DecoderOptions = field(default_factory=DecoderOptions)
    prompt: PromptSwitches | None = None
    kv_group_layout: str = "contiguous"
    attention_scale: float | None = None
    dither: float | None = None
    retokenize: bool = False
    cache_bytes: int = 256 << 20
    segment_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.segment_seconds >= 1:
            raise ValueError(f"segment_seconds must be >= 1, got {self.segment_seconds}")
