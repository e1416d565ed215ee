"""Per-frame targets of a recipe on the source timeline: F0, durations, gains, breath."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis
from engine.backends.cpu.recipes import Recipe
from engine.dsp import smooth

__all__ = ["RenderPlan", "plan"]

# Length (s) of the phrase-final pitch movement, phrase-final lengthening, breathy onsets
# and the creaky stretch at full strength.
_FINAL_PITCH_S, _FINAL_LENGTH_S, _ONSET_S, _CREAK_S = 0.3, 0.25, 0.15, 0.15
_TRAIL_S = 0.5


@dataclass
class RenderPlan:
    """Per-frame targets on the source timeline, shared by both renderers.

    Attributes:
        f0: Target F0 per frame (Hz, 0 = unvoiced).
        durations: Duration factor per frame (2 = that frame lasts twice as long).
        gain_db: Level change per frame (emphasis, tremor, soft onsets, trailing off).
        breath: Aperiodicity offset per frame (breathiness, breathy onsets, creak).
    """

    f0: np.ndarray
    durations: np.ndarray
    gain_db: np.ndarray
    breath: np.ndarray

    @property
    def _cumulative(self) -> np.ndarray:
        """Output frame count at the start of each source frame (one more entry than frames)."""
        return np.concatenate([[0.0], np.cumsum(self.durations)])

    @property
    def output_frames(self) -> int:
        """Length of the rendered audio in frames."""
        return int(self._cumulative[-1])

    def output_time(self, source_time: float) -> float:
        """Where a moment of the source lands in the rendered audio (seconds)."""
        frames = np.arange(len(self.durations) + 1)
        return float(np.interp(source_time / FRAME_PERIOD, frames, self._cumulative * FRAME_PERIOD))

    def source_position(self, output_times: np.ndarray) -> np.ndarray:
        """Fractional source frame index (centre-based) shown at each output time (s)."""
        frames = np.arange(len(self.durations) + 1)
        position = np.interp(np.asarray(output_times) / FRAME_PERIOD, self._cumulative, frames)
        return np.clip(position - 0.5, 0, len(self.durations) - 1)


def _span_semitones(f0: np.ndarray) -> float:
    """5-95 % span of the voiced F0 values in semitones (0 with fewer than 10 frames)."""
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        return 0.0
    low, high = np.percentile(voiced, [5, 95])
    return float(12 * np.log2(high / low))


def _ramp(count: int) -> np.ndarray:
    """Raised-cosine rise from 0 to 1 over ``count`` frames."""
    return 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, max(count, 1)))


def _final_voiced(analysis: Analysis, phrase: tuple[int, int]) -> int:
    voiced = np.flatnonzero(analysis.voiced[phrase[0] : phrase[1]])
    return phrase[0] + int(voiced[-1]) + 1 if voiced.size else phrase[1]


def _contour_st(analysis: Analysis, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """Pitch shape added to the F0 (semitones): declination, final movement, tremor, jitter."""
    shape = np.zeros(len(analysis.f0))
    final = round(_FINAL_PITCH_S / FRAME_PERIOD)
    for start, end in analysis.phrases():
        if recipe.declination_st:
            shape[start:end] += recipe.declination_st * np.linspace(0.5, -0.5, end - start)
        if recipe.final_st:
            stop = _final_voiced(analysis, (start, end))
            begin = max(start, stop - final)
            shape[begin:stop] += recipe.final_st * _ramp(stop - begin)
    if recipe.tremor_depth:
        wobble = 1 + recipe.tremor_depth * np.sin(2 * np.pi * recipe.tremor_hz * analysis.times)
        shape += 12 * np.log2(wobble)
    if recipe.jitter:
        shape += 12 * np.log2(np.clip(1 + recipe.jitter * rng.standard_normal(len(shape)), 0.5, 2))
    return shape


def _weighted_percentiles(
    values: np.ndarray, weights: np.ndarray, percents: list[float]
) -> list[float]:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    cut = np.searchsorted(cumulative, np.array(percents) / 100 * cumulative[-1])
    return [float(v) for v in values[order][np.minimum(cut, len(values) - 1)]]


def _creaky_frames(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    """The last ``creak x 150 ms`` of voicing in each phrase."""
    creaky = np.zeros(len(analysis.f0), dtype=bool)
    if recipe.creak:
        length = round(recipe.creak * _CREAK_S / FRAME_PERIOD)
        for phrase in analysis.phrases():
            stop = _final_voiced(analysis, phrase)
            creaky[max(phrase[0], stop - length) : stop] = True
    return creaky & analysis.voiced


def _target_f0(
    analysis: Analysis,
    recipe: Recipe,
    durations: np.ndarray,
    creaky: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Maps the F0 track: shape, then span to ``f0_range`` x the original, then level.

    Median and span are taken over the *rendered* frames (each source frame weighted by its
    duration factor), so the heard median lands on ``(1 + f0_shift)`` x the original and the
    heard span on ``f0_range`` x the original: lengthening stressed, high syllables must not
    raise or widen the pitch by itself.
    """
    f0 = analysis.f0
    voiced = analysis.voiced
    out = np.zeros_like(f0)
    if recipe.whisper or voiced.sum() < 10:
        return out
    median = analysis.median_f0
    shaped = 12 * np.log2(f0[voiced] / median) + _contour_st(analysis, recipe, rng)[voiced]
    modal = ~creaky[voiced]
    weights = durations[voiced][modal]
    low, centre, high = _weighted_percentiles(shaped[modal], weights, [5, 50, 95])
    scale = recipe.f0_range * _span_semitones(f0) / max(high - low, 0.1)
    relative = (shaped - centre) * scale + 12 * np.log2(1 + recipe.f0_shift)
    out[voiced] = median * 2 ** (relative / 12)
    # Creak: about half the F0, irregular; left out of the span above, as listeners (and
    # pitch trackers) hear it as a different phonation, not as a lower note.
    irregular = 0.5 * (1 + 0.12 * rng.standard_normal(int(creaky.sum())))
    out[creaky] *= irregular
    floor = 0.5 * analysis.pitch_floor
    return np.where(out > 0, np.maximum(out, floor), 0.0)


def _durations(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    """Duration factor per frame: speech and pauses apart, stress contrast, final lengthening."""
    speech = analysis.speech
    d = np.ones(len(speech))
    if speech.any() and recipe.stress_contrast:
        contrast = 1 + recipe.stress_contrast * (2 * analysis.prominence() - 1)
        d[speech] = contrast[speech] / contrast[speech].mean()
    d[speech] *= recipe.speech_duration_factor
    for start, end in analysis.pauses():
        d[start:end] = recipe.pause_duration_factor
    if recipe.final_lengthening:
        final = round(_FINAL_LENGTH_S / FRAME_PERIOD)
        for start, end in analysis.phrases():
            begin = max(start, end - final)
            d[begin:end] *= 1 + recipe.final_lengthening * _ramp(end - begin)
    return np.maximum(smooth(d, 3), 0.05)


def _gain_db(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    """Level change per frame: stressed syllables, tremor, soft onsets, trailing off."""
    gain = np.zeros(len(analysis.times))
    if recipe.emphasis_db:
        # Weak syllables go softer, their consonants do not: softening the fricatives too
        # took 2.9 dB/octave off the long-term spectrum of an angry render (issue 13).
        emphasis = recipe.emphasis_db * (2 * analysis.prominence() - 1) * analysis.speech
        voiced = smooth(analysis.voiced.astype(float), 3)
        gain += np.maximum(emphasis, 0.0) + np.minimum(emphasis, 0.0) * voiced
    if recipe.tremor_db:
        gain += recipe.tremor_db * np.sin(2 * np.pi * recipe.tremor_hz * analysis.times)
    phrases = analysis.phrases()
    if recipe.soft_onset_ms:
        onset = round(recipe.soft_onset_ms / 1000 / FRAME_PERIOD)
        for start, end in phrases:
            stop = min(end, start + onset)
            gain[start:stop] += 20 * np.log10(np.maximum(_ramp(stop - start), 0.05))
    if recipe.trail_off_db and phrases:
        end = phrases[-1][1]
        begin = max(0, end - round(_TRAIL_S / FRAME_PERIOD))
        gain[begin:end] -= recipe.trail_off_db * _ramp(end - begin)
        gain[end:] -= recipe.trail_off_db
    return gain


def _breath(analysis: Analysis, recipe: Recipe, creaky: np.ndarray) -> np.ndarray:
    breath = np.full(len(analysis.times), float(recipe.breathiness))
    onset = round(_ONSET_S / FRAME_PERIOD)
    for start, end in analysis.phrases():
        stop = min(end, start + onset)
        breath[start:stop] += recipe.onset_breathiness * (1 - _ramp(stop - start))
    breath[creaky] += 0.2
    return breath


def plan(analysis: Analysis, recipe: Recipe, seed: int = 0) -> RenderPlan:
    """Computes the per-frame targets of ``recipe`` for this clip (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    durations = _durations(analysis, recipe)
    creaky = _creaky_frames(analysis, recipe)
    return RenderPlan(
        f0=_target_f0(analysis, recipe, durations, creaky, rng),
        durations=durations,
        gain_db=_gain_db(analysis, recipe),
        breath=_breath(analysis, recipe, creaky),
    )
