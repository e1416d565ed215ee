"""Time alignment of an edited clip to its original (DTW on MFCCs), for tempo and pauses.

Counting silences in the edited clip confuses loudness changes with timing (compression
fills pauses, a louder stressed syllable makes a weak one "silent"). Aligning the edit to
the original instead tells where each stretch of the original went, so speech time and
pause time of the edit are measured over the very same stretches.
"""

from __future__ import annotations

import numpy as np

from engine.evaluation.features import mfcc

__all__ = ["HOP_S", "align", "mapped_durations"]

HOP_S = 0.01
# Step pattern (di, dj, weight): local slopes 1/3..3, each step weighted by its length in
# i + j so paths of any shape are charged the same per unit of alignment.
_STEPS = ((1, 1, 2.0), (1, 2, 3.0), (2, 1, 3.0), (1, 3, 4.0), (3, 1, 4.0))


def align(before: np.ndarray, after: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Aligns two mono signals at ``sample_rate``.

    Returns:
        ``(before_times, after_times)``: matching times in seconds along the DTW path,
        both increasing, from ``(0, 0)`` to the two ends.
    """
    a, b = mfcc(before, sample_rate, hop_s=HOP_S), mfcc(after, sample_rate, hop_s=HOP_S)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-9
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-9
    cost = (1.0 - a @ b.T).astype(np.float32)
    n, m = cost.shape
    total = np.full((n, m), np.inf, dtype=np.float32)
    choice = np.zeros((n, m), dtype=np.int8)
    total[0, 0] = cost[0, 0]
    for i in range(1, n):
        best = np.full(m, np.inf, dtype=np.float32)
        for k, (di, dj, weight) in enumerate(_STEPS):
            if i - di < 0:
                continue
            candidate = np.full(m, np.inf, dtype=np.float32)
            candidate[dj:] = total[i - di, : m - dj] + weight * cost[i, dj:]
            better = candidate < best
            best[better] = candidate[better]
            choice[i, better] = k
        total[i] = best
    if not np.isfinite(total[-1, -1]):
        # Lengths too different for the slope limits: fall back to a straight line.
        return np.array([0.0, n * HOP_S]), np.array([0.0, m * HOP_S])
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:
        di, dj, _ = _STEPS[choice[i, j]]
        i, j = i - di, j - dj
        path.append((i, j))
    steps = np.array(path[::-1], dtype=np.float64)
    return steps[:, 0] * HOP_S, steps[:, 1] * HOP_S


def mapped_durations(
    intervals: list[tuple[float, float]], before_times: np.ndarray, after_times: np.ndarray
) -> float:
    """Total length, in the edited clip, of the original's ``(start, end)`` intervals."""
    return float(
        sum(
            np.interp(end, before_times, after_times) - np.interp(start, before_times, after_times)
            for start, end in intervals
        )
    )
