"""Step1's position signal: causal ALiBi with a square-root distance penalty."""

from __future__ import annotations

import math

import torch

__all__ = ["alibi_bias", "alibi_slopes"]


def alibi_slopes(num_heads: int) -> list[float]:
    """Per-head slopes for ``num_heads`` heads (spec §4.1).

    With n the largest power of two not above ``num_heads``, the first n heads get
    ``2^(-8(h+1)/n)`` and the remaining ``num_heads - n`` heads take every other slope of
    the 2n-head series, ``2^(-4(2j+1)/n)``.
    """
    n = 2 ** math.floor(math.log2(num_heads))
    slopes = [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]
    slopes += [2.0 ** (-4.0 * (2 * j + 1) / n) for j in range(num_heads - n)]
    return slopes


def alibi_bias(
    slopes: torch.Tensor, query_start: int, num_queries: int, num_keys: int
) -> torch.Tensor:
    """Additive attention bias for a block of query rows against all keys so far.

    ``bias[h, i, j] = -slope_h * sqrt(q_i - j)`` for ``j <= q_i`` and ``-inf`` for later
    keys, where ``q_i = query_start + i`` is the absolute position. Only the rows being
    computed are built, so a decode step costs ``O(heads * num_keys)``.

    Args:
        slopes: ``(heads,)`` float32 slopes on the target device.
        query_start: Absolute position of the first query row.
        num_queries: Rows in the block.
        num_keys: Keys visible to the block (positions ``0 .. num_keys - 1``).

    Returns:
        ``(heads, num_queries, num_keys)`` float32 bias.
    """
    device = slopes.device
    rows = torch.arange(query_start, query_start + num_queries, device=device)
    cols = torch.arange(num_keys, device=device)
    distance = (rows[:, None] - cols[None, :]).to(torch.float32)
    bias = -slopes[:, None, None] * distance.clamp(min=0).sqrt()
    return bias.masked_fill(distance < 0, float("-inf"))
