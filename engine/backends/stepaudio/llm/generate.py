"""Autoregressive generation with a KV cache, a length bound and a reported stop reason."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.backends.stepaudio.llm.model import KVCache, Step1ForCausalLM
from engine.backends.stepaudio.llm.sampling import sample_next
from engine.backends.stepaudio.options import GenerationLimits, SamplingConfig
from engine.backends.stepaudio.vocab import AUDIO_ID_OFFSET, AUDIO_VALUES

__all__ = [
    "AUDIO_VALUES",
    "TOKENS_PER_SECOND",
    "Generation",
    "expected_clone_tokens",
    "generate",
]

# Five mixed tokens per 120 ms.
TOKENS_PER_SECOND = 5 / 0.12

# Rough speaking time per character, for bounding clone output by its target text.
_SECONDS_PER_CJK_CHAR = 0.3
_SECONDS_PER_OTHER_CHAR = 0.08


def expected_clone_tokens(text: str) -> int:
    """Estimated LLM tokens for speaking ``text``: CJK characters ~0.3 s, others ~0.08 s."""
    seconds = sum(
        _SECONDS_PER_CJK_CHAR
        if unicodedata.east_asian_width(ch) in "WF"
        else _SECONDS_PER_OTHER_CHAR
        for ch in text
        if not ch.isspace()
    )
    return math.ceil(round(seconds * TOKENS_PER_SECOND, 6))


@dataclass(frozen=True)
class Generation:
    """One pass's output.

    Attributes:
        values: Audio values ``id - 65536`` (each below 5120), in order.
        stop_reason: ``"eos"`` (end-of-turn drawn), ``"token_bound"`` (the length bound was
            reached) or ``"context_limit"`` (prompt + output reached ``max_length``).
        max_new_tokens: The bound that applied.
        drawn: Ids drawn, including a final end-of-turn.
        dropped: Drawn ids that were neither audio nor end-of-turn (discarded).
        prompt_length: Prompt ids.
        seed: The seed the sampler used.
    """

    values: list[int]
    stop_reason: str
    max_new_tokens: int
    drawn: int
    dropped: int
    prompt_length: int
    seed: int


@torch.inference_mode()
def generate(
    model: Step1ForCausalLM,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    *,
    sampling: SamplingConfig,
    limits: GenerationLimits,
    seed: int,
    on_token: Callable[[int], None] | None = None,
) -> Generation:
    """Samples audio tokens after ``prompt_ids`` until end-of-turn or a bound.

    Unlike the official code, which always drops the last generated id and keeps text ids,
    only a final end-of-turn is dropped and only audio ids are kept (spec §4.5).

    Args:
        model: The loaded LLM.
        prompt_ids: The prompt (see ``prompts.PromptBuilder``).
        max_new_tokens: The length bound for this pass.
        sampling: Sampling settings.
        limits: ``max_length`` and ``prefill_chunk`` are read from it.
        seed: Seeds the sampler (a CPU generator, so a seed means the same on any device).
        on_token: Called with the count of drawn ids after each draw (progress, cancel).

    Returns:
        The kept audio values and why generation stopped.

    Raises:
        ValueError: when the prompt alone fills ``limits.max_length``.
    """
    room = limits.max_length - len(prompt_ids)
    if room <= 0:
        raise ValueError(
            f"the prompt has {len(prompt_ids)} tokens, at or above the {limits.max_length}-token "
            "context limit; use a shorter input"
        )
    budget = min(max_new_tokens, room)
    device = next(model.parameters()).device
    eos = model.config.eos_token_id
    generator = torch.Generator(device="cpu").manual_seed(seed)
    cache = KVCache(model.config.num_hidden_layers)
    history = list(prompt_ids)
    ids = torch.tensor([history], dtype=torch.long, device=device)
    for start in range(0, ids.shape[1], limits.prefill_chunk):
        logits = model(ids[:, start : start + limits.prefill_chunk], cache)
    values: list[int] = []
    dropped = 0
    stop_reason = "token_bound" if budget == max_new_tokens else "context_limit"
    for drawn in range(1, budget + 1):
        token = sample_next(logits[0, -1].cpu(), history, sampling, generator)
        history.append(token)
        if on_token is not None:
            on_token(drawn)
        if token == eos:
            stop_reason = "eos"
            break
        if AUDIO_ID_OFFSET <= token < AUDIO_ID_OFFSET + AUDIO_VALUES:
            values.append(token - AUDIO_ID_OFFSET)
        else:
            dropped += 1
        if drawn < budget:
            logits = model(torch.tensor([[token]], dtype=torch.long, device=device), cache)
    return Generation(
        values=values,
        stop_reason=stop_reason,
        max_new_tokens=budget,
        drawn=len(history) - len(prompt_ids),
        dropped=dropped,
        prompt_length=len(prompt_ids),
        seed=seed,
    )
