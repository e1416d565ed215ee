"""Mixed LLM audio values -> the flow model's 25 Hz dual-codebook frames (spec §5.1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FRAMES_PER_GROUP", "VQ02_PAD", "flow_frames"]

# Every group of 5 mixed values (2 vq02 + 3 vq06) gives 3 frames of 40 ms.
FRAMES_PER_GROUP = 3
# Column 0 of every third frame, where vq02 (16.67 Hz) has no code.
VQ02_PAD = 1024
# Appended to a length that is not a multiple of 5: the tail ``-p:`` of this list. The pads
# decode as vq02 code 0 and vq06 code 0 (not PAD), as in the official code.
_TAIL_PAD = (0, 0, 0, 1024, 1024, 1024)


def flow_frames(values: Sequence[int]) -> np.ndarray:
    """Reshapes mixed values ``[a1, a2, b1, b2, b3, ...]`` into flow frames.

    ``a`` are vq02 codes (0-1023) and ``b`` are ``1024 + vq06 code``. Each group becomes the
    frames ``(a1, b1 + 1), (a2, b2 + 1), (1024, b3 + 1)``; a short final group is padded
    first.

    Args:
        values: LLM ids minus 65536.

    Returns:
        ``(3 * ceil(n / 5), 2)`` int64 array.
    """
    mixed = list(values)
    remainder = len(mixed) % 5
    if remainder:
        mixed += _TAIL_PAD[-(5 - remainder) :]
    groups = np.asarray(mixed, dtype=np.int64).reshape(-1, 5)
    frames = np.empty((groups.shape[0], FRAMES_PER_GROUP, 2), dtype=np.int64)
    frames[:, :2, 0] = groups[:, :2]
    frames[:, 2, 0] = VQ02_PAD
    frames[:, :, 1] = groups[:, 2:] + 1
    return frames.reshape(-1, 2)
