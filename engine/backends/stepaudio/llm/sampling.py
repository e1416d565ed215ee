"""The official sampling rule set: repetition ban, temperature, top-k, top-p (spec §4.5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.backends.stepaudio.options import SamplingConfig

__all__ = ["ban_repetition", "sample_next"]


def ban_repetition(
    logits: torch.Tensor, history: Sequence[int], window: int = 10, threshold: float = 0.1
) -> bool:
    """Applies the repetition-aware rule in place.

    Over the whole sequence so far (prompt included): when at least ``window`` ids exist and
    the last id makes up more than ``threshold`` of the last ``window`` ids, the last id's
    logit becomes ``-inf``. Only the immediately previous id is ever banned.

    Args:
        logits: ``(vocab,)`` logits of the next position.
        history: Every id so far.
        window: Look-back length.
        threshold: Share that triggers the ban.

    Returns:
        Whether a ban was applied.
    """
    if len(history) < window:
        return False
    recent = history[-window:]
    last = recent[-1]
    if recent.count(last) / window > threshold:
        logits[last] = float("-inf")
        return True
    return False


def sample_next(
    logits: torch.Tensor,
    history: Sequence[int],
    config: SamplingConfig,
    generator: torch.Generator,
) -> int:
    """Draws the next id, processing the logits in transformers' order.

    Repetition ban, then temperature, then top-k (ties with the k-th logit are kept), then
    top-p, then a draw from the softmax.

    Args:
        logits: ``(vocab,)`` float32 logits on the generator's device.
        history: Every id so far.
        config: The settings.
        generator: The random source; seed it for reproducible output.
    """
    scores = logits.clone()
    ban_repetition(scores, history, config.repetition_window, config.repetition_threshold)
    scores = scores / config.temperature
    if 0 < config.top_k < scores.numel():
        kth = torch.topk(scores, config.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if config.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=False)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative <= 1 - config.top_p
        drop[-1] = False
        scores = scores.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())
