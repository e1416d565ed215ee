"""Speaking-rate change that keeps pitch and timbre (Rubber Band via pedalboard).

Step-Audio-EditX's four speed options map to tempo factors, where the factor says how
much faster the result is (output duration = input duration / factor):

- ``faster``: 1.25 (duration x 0.8)
- ``slower``: 0.8 (duration x 1.25)
- ``more faster``: 1.5 (duration x 0.67)
- ``more slower``: 0.67 (duration x 1.49)

Each further iteration applies the option again, so factors compound (``faster`` twice =
1.5625), but the total is clamped to ``[MIN_FACTOR, MAX_FACTOR]`` = ``[0.5, 2.0]``: beyond
half or double speed speech stops sounding natural (the survey keeps single edits within
0.67 to 1.5; 0.5 to 2 is the outer limit for repeated requests).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pedalboard

from engine.audio import fit_length
from engine.edits import MAX_ITERATIONS
from engine.errors import EditError

__all__ = ["MAX_FACTOR", "MIN_FACTOR", "SPEED_FACTORS", "change_speed", "speed_factor"]

_LOG = logging.getLogger(__name__)

SPEED_FACTORS: dict[str, float] = {
    "faster": 1.25,
    "slower": 0.8,
    "more faster": 1.5,
    "more slower": 0.67,
}
MIN_FACTOR = 0.5
MAX_FACTOR = 2.0


def speed_factor(option: str, iterations: int) -> float:
    """Returns the tempo factor for ``iterations`` passes of a speed option.

    Args:
        option: One of ``SPEED_FACTORS``.
        iterations: Number of passes, 1 to ``MAX_ITERATIONS``; the factor compounds per pass.

    Returns:
        ``SPEED_FACTORS[option] ** iterations`` clamped to ``[MIN_FACTOR, MAX_FACTOR]``.

    Raises:
        EditError: for an unknown option or an iteration count out of range.
    """
    if option not in SPEED_FACTORS:
        raise EditError(f"unknown speed option {option!r}; allowed: {', '.join(SPEED_FACTORS)}")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise EditError(f"iterations must be 1 to {MAX_ITERATIONS}, got {iterations}")
    factor = SPEED_FACTORS[option] ** iterations
    return min(max(factor, MIN_FACTOR), MAX_FACTOR)


def change_speed(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Time-stretches speech by ``factor`` without changing its pitch or formants.

    All channels go through Rubber Band together, so stereo images stay aligned.

    Args:
        audio: ``float32 (channels, samples)``.
        sample_rate: Rate of ``audio`` in Hz; the output keeps it.
        factor: How much faster; the output has ``round(samples / factor)`` samples.

    Returns:
        The stretched audio, same channel count.

    Raises:
        ValueError: if ``factor`` is not a positive finite number or ``audio`` is not 2-D.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"speed factor must be a positive finite number, got {factor}")
    if audio.ndim != 2:
        raise ValueError(f"audio must be shaped (channels, samples), got {audio.shape}")
    length = round(audio.shape[-1] / factor)
    stretched = pedalboard.time_stretch(
        np.ascontiguousarray(audio, dtype=np.float32), float(sample_rate), factor
    )
    if stretched.shape[-1] != length:
        _LOG.debug("rubber band returned %d samples, fitting to %d", stretched.shape[-1], length)
    return fit_length(stretched, length)
