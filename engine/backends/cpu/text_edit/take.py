"""The take's word boundaries: the gap at each boundary, its cut point and its pause.

Every boundary between two words gets a *gap*: its cut point, the quietest 5 ms frame within
50 ms of the aligned boundary (so a tag lands within 50 ms of it), and the pause around it,
the quiet frames on either side of the cut (quiet as in ``analysis``: under the higher of
30 dB below the loud frames and 10 dB above the floor), reaching at most 80 ms (and never
past the middle) into either word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.dsp import frame_rms_db
from engine.text.diff import Unit

__all__ = [
    "CONTEXT_S",
    "HOP_S",
    "MIN_PAUSE_S",
    "QUIET_ABOVE_FLOOR_DB",
    "QUIET_BELOW_LOUD_DB",
    "Take",
]

HOP_S = 0.005
# A cut lies within this of the aligned boundary (the bound for tags).
_SNAP_S = 0.050
# A pause never reaches further than this into a word (nor past the word's middle).
_WORD_GUARD_S = 0.080
# Quiet: this far under the loud frames (95th percentile), or this near the floor (5th).
QUIET_BELOW_LOUD_DB, QUIET_ABOVE_FLOOR_DB = 30.0, 10.0
# Silences shorter than this are not pauses (stop closures) when taking the median pause.
MIN_PAUSE_S = 0.04
# Seconds of the take on each side of a tag or a re-said span whose loudness (and, for
# re-said words, median F0) it is matched to.
CONTEXT_S = 1.5


@dataclass(frozen=True)
class _Gap:
    """The quiet at one word boundary (seconds in the input): the pause and its cut point."""

    start: float
    cut: float
    end: float

    @property
    def width(self) -> float:
        return self.end - self.start


class Take:
    """Frame levels of a take and the gap at every boundary of its units.

    ``gap(k)`` is the boundary after unit ``k``; ``gap(-1)`` is the silence before the first
    word and ``gap(n - 1)`` the silence after the last.
    """

    def __init__(self, mono: np.ndarray, sample_rate: int, units: tuple[Unit, ...]) -> None:
        self.rate = sample_rate
        self.duration = len(mono) / sample_rate
        self.levels = frame_rms_db(mono, sample_rate, hop=HOP_S, window=0.02)
        floor, loud = np.percentile(self.levels, [5, 95])
        self.quiet = self.levels < max(loud - QUIET_BELOW_LOUD_DB, floor + QUIET_ABOVE_FLOOR_DB)
        self.units = units
        self._gaps = [self._find_gap(k) for k in range(-1, len(units))]
        widths = [g.width for g in self._gaps[1:-1] if g.width >= MIN_PAUSE_S]
        self.median_pause = float(np.median(widths)) if widths else 0.0

    def gap(self, k: int) -> _Gap:
        return self._gaps[k + 1]

    def _frame(self, t: float) -> int:
        return min(max(round(t / HOP_S), 0), len(self.levels) - 1)

    def _find_gap(self, k: int) -> _Gap:
        units, n = self.units, len(self.units)
        left = units[k] if k >= 0 else None
        right = units[k + 1] if k + 1 < n else None
        lo = left.start + min(_WORD_GUARD_S, (left.end - left.start) / 2) if left else 0.0
        hi = self.duration
        if right is not None:
            hi = max(right.end - min(_WORD_GUARD_S, (right.end - right.start) / 2), lo)
        if left is None:
            cut = 0.0
        elif right is None:
            cut = self.duration
        else:
            a, b = left.end, right.start
            if a > b:
                a = b = (a + b) / 2
            cut = self._quietest(max(a - _SNAP_S, lo), min(b + _SNAP_S, hi), (a + b) / 2)
        first = last = self._frame(cut)
        if self.quiet[first]:
            while first > self._frame(lo) and self.quiet[first - 1]:
                first -= 1
            while last < self._frame(hi) and self.quiet[last + 1]:
                last += 1
            start, end = first * HOP_S, min(last * HOP_S, self.duration)
        else:
            start = end = cut
        if left is None:
            start = 0.0
        if right is None:
            end = self.duration
        return _Gap(min(start, cut), cut, max(end, cut))

    def _quietest(self, lo: float, hi: float, target: float) -> float:
        """Among the frames in ``[lo, hi]`` within 3 dB of the quietest, the one nearest
        ``target`` (``low_energy_point``'s rule on a one-sided window)."""
        if hi < lo:
            return min(max(target, hi), lo)
        frames = np.arange(self._frame(lo), self._frame(hi) + 1)
        levels = self.levels[frames]
        candidates = frames[levels <= levels.min() + 3.0]
        best = candidates[np.argmin(np.abs(candidates * HOP_S - target))]
        return float(min(max(best * HOP_S, lo), hi))
