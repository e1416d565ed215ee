"""Time-domain PSOLA that gives back its input, sample for sample, when nothing changes.

Each analysis mark (a glottal pulse in voiced speech, every 10 ms elsewhere) owns the
stretch from its left neighbour to its right one under a raised-cosine window whose halves
are those two spacings, so the windows of consecutive marks add up to exactly one. Output
marks are laid out along the plan's time map, each spaced by its analysis mark's period
divided by the pitch factor, and each copies the analysis mark nearest to where it maps.
With no change every output mark lands on its own analysis mark and the sum is the source.
Where the pitch goes up, the window halves shrink to the output periods, so no more than two
copies overlap anywhere.

Praat's overlap-add, which this replaces, re-places every pulse from the pitch tier, so
even an unchanged render differed from its source by more than the signal itself (error
+1.3 dB relative on a VCTK take) and lost 0.3-0.7 DNSMOS OVRL on noisy and clean clips
(issue 13). Noise and room tone inside speech now survive a small change almost untouched.
"""

from __future__ import annotations

import math

import numpy as np
import parselmouth
from parselmouth.praat import call

from engine.audio import resample
from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis
from engine.backends.cpu.targets import RenderPlan

__all__ = ["Psola"]

# Mean mark spacing (s) in unvoiced stretches: short enough that a repeated or dropped piece
# of a fricative or of room tone is not heard as a stutter; each spacing is drawn from
# +-_UNVOICED_SPREAD of it, because evenly spaced copies of noise, repeated when the plan
# slows down, buzz at their rate (100 Hz read as pitch in the fricatives of a sad render).
# 5 ms rather than 10: a plain 14 % slow-down of the 18 shared clips lost 0.024 DNSMOS OVRL
# on average (worst clip 0.14) instead of 0.058 (worst 0.31, a noisy VCTK take). Renders
# that speed up gained nothing from 10 ms over the nine such recipes (angry's worst clip
# -0.59 -> -0.46, but news' -0.40 -> -0.62 and excited's -0.46 -> -0.59).
_UNVOICED_STEP_S = 0.005
_UNVOICED_SPREAD = 0.5
# A gap between pulses longer than this many of the longest periods is unvoiced.
_GAP_PERIODS = 1.25
# A pulse spacing within this share of the tracked period is one period.
_PERIOD_TOLERANCE = 0.2


class Psola:
    """TD-PSOLA of one clip: one mark analysis, any number of renders.

    Args:
        analysis: The clip and its analysis.
        warp: Formant (spectral envelope) scale: the source is first played ``warp`` times
            faster by resampling, which moves formants, F0 and timing alike; the renders
            then bring F0 to the targets and timing back (Praat's "Change gender" method).
    """

    def __init__(self, analysis: Analysis, warp: float = 1.0) -> None:
        self._analysis = analysis
        rate = analysis.sample_rate
        x = analysis.signal
        self._scale = 1.0
        if warp != 1.0:
            slow_rate = round(rate / warp)
            x = resample(x.astype(np.float32), rate, slow_rate).astype(np.float64)
            self._scale = rate / slow_rate
        self._signal = np.asarray(x, dtype=np.float64)
        self._marks, self._voiced = _marks(self._signal, analysis, self._scale)
        self._left = np.diff(self._marks, prepend=self._marks[0])
        self._right = np.diff(self._marks, append=self._marks[-1])

    def render(self, targets: RenderPlan) -> np.ndarray:
        """The plan's pitch and durations, then its gains.

        Returns:
            Mono ``float32`` samples at ``analysis.sample_rate``.
        """
        y = self._overlap_add(targets.f0, targets.durations)
        if np.any(targets.gain_db):
            rate = self._analysis.sample_rate
            frames = targets.source_position((np.arange(len(y)) + 0.5) / rate)
            gain_db = np.interp(frames, np.arange(len(targets.gain_db)), targets.gain_db)
            y = (y * 10 ** (gain_db / 20)).astype(np.float32)
        return y

    def retime(self, durations: np.ndarray) -> np.ndarray:
        """The source with only its timing changed (its own pitch and level)."""
        return self._overlap_add(self._analysis.f0 * self._scale, durations)

    def _overlap_add(self, output_f0: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """Output marks along the time map, each a windowed copy of its nearest source mark.

        A voiced mark's output period is its own spacing to the next mark over the pitch
        factor (so an unchanged plan reproduces the marks), or the plan's period where the
        spacing is not one period of the tracked F0 (a pulse Praat missed or added), which
        would otherwise be copied as a period twice or half as long: a subharmonic.

        Args:
            output_f0: Per source frame, the output F0 in Hz (0 where unvoiced).
            durations: Per source frame, its duration factor.
        """
        rate = self._analysis.sample_rate
        source_f0 = self._analysis.f0 * self._scale
        frame_samples = FRAME_PERIOD * rate
        starts = np.concatenate([[0.0], np.cumsum(durations)]) * frame_samples
        frames = np.arange(len(durations) + 1, dtype=float)
        # The frame grid runs a little past the signal: stop where the source's end lands.
        end_frame = len(self._signal) * self._scale / frame_samples
        length = round(float(np.interp(end_frame, frames, starts)))
        marks, left, right = self._marks, self._left, self._right
        pad = int(left.max() + right.max()) + 1
        out = np.zeros(length + 2 * pad)
        weight = np.zeros(length + 2 * pad)
        position = 0.0
        last_step = 0.0  # the step into this mark from a voiced one; 0 after an unvoiced one
        while position <= length:
            frame = float(np.interp(position, starts, frames))
            source = frame * frame_samples / self._scale
            j = int(np.searchsorted(marks, source))
            if j == len(marks) or (j > 0 and source - marks[j - 1] <= marks[j] - source):
                j -= 1
            step = max(self._period(j, frame, source_f0, output_f0), 1.0)
            lead, lag = int(left[j]), int(right[j])
            if self._voiced[j]:
                # Raised pitch: the window halves shrink to the output periods, so no more
                # than two windows overlap (three or more overlapping copies of the
                # incoherent upper band read as noise: 0.1 DNSMOS OVRL median on excited).
                lag = min(lag, math.ceil(step))
                if last_step:
                    lead = min(lead, math.ceil(last_step))
            window = _window(lead, lag)
            piece = self._signal[marks[j] - lead : marks[j] + lag]
            at = pad + round(position) - lead
            out[at : at + len(piece)] += window[: len(piece)] * piece
            weight[at : at + len(piece)] += window[: len(piece)]
            position += step
            last_step = step if self._voiced[j] else 0.0
        # Windows of unequal neighbours overlap unevenly: normalised; lowered pitch is left
        # with its dips between pulses, as in any PSOLA.
        y = out[pad : pad + length] / np.maximum(weight[pad : pad + length], 1.0)
        return y.astype(np.float32)

    def _period(self, j: int, frame: float, source_f0: np.ndarray, output_f0: np.ndarray) -> float:
        """Samples from output mark ``j`` to the next one (see :meth:`_overlap_add`)."""
        spacing = float(self._right[j])
        index = min(int(frame), len(source_f0) - 1)
        own, wanted = source_f0[index], output_f0[index]
        if not self._voiced[j] or own <= 0 or wanted <= 0 or wanted == own:
            return spacing
        rate = self._analysis.sample_rate
        if abs(spacing * own / rate - 1) <= _PERIOD_TOLERANCE:
            return spacing * own / wanted
        return rate / wanted


def _window(lead: int, lag: int) -> np.ndarray:
    """Raised-cosine rise over ``lead`` samples up to the mark, fall over ``lag`` after it."""
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(lead) / max(lead, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * np.arange(lag) / max(lag, 1))
    return np.concatenate([rise, fall])


def _marks(x: np.ndarray, analysis: Analysis, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions of the analysis marks (from 0 to ``len(x)``) and which are pulses.

    Pulses are Praat's cross-correlation pulses inside frames the analysis found voiced;
    the gaps between them (and everything unvoiced) get marks about 10 ms apart, irregularly.
    """
    rate = analysis.sample_rate
    sound = parselmouth.Sound(x, sampling_frequency=rate)
    floor, ceiling = analysis.pitch_floor * scale, analysis.pitch_ceiling * scale
    points = call(sound, "To PointProcess (periodic, cc)", floor, ceiling)
    count = call(points, "Get number of points")
    pulses = np.array([call(points, "Get time from index", i + 1) for i in range(count)])
    if pulses.size:
        frame = np.rint(pulses * scale / FRAME_PERIOD).astype(int)
        pulses = pulses[analysis.f0[np.clip(frame, 0, len(analysis.f0) - 1)] > 0]
    pulse_samples = np.rint(pulses * rate).astype(int)
    longest_gap = _GAP_PERIODS * rate / floor
    step = _UNVOICED_STEP_S * rate
    rng = np.random.default_rng(len(x))  # the same marks for the same clip
    at: list[float] = [0.0]
    voiced: list[bool] = [False]
    for pulse in [*pulse_samples, len(x)]:
        gap = pulse - at[-1]
        if gap > longest_gap or not voiced[-1] or pulse == len(x):
            count = max(round(gap / step), 1)
            spacings = rng.uniform(1 - _UNVOICED_SPREAD, 1 + _UNVOICED_SPREAD, count)
            filled = np.cumsum(spacings)[:-1] / spacings.sum()
            at.extend(at[-1] + gap * filled)
            voiced.extend([False] * (count - 1))
        at.append(float(pulse))
        voiced.append(pulse != len(x))
    marks = np.rint(at).astype(int)
    keep = np.concatenate([[True], np.diff(marks) > 0])
    return marks[keep], np.asarray(voiced)[keep]
