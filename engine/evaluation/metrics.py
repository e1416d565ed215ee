"""Acoustic measures of a clip and of the change an edit made (Praat-based, at 16 kHz).

These are deliberately independent of the CPU backend's own analysis (Praat's silence
detector and harmonicity instead of the backend's level gate and WORLD), so an edit is not
judged by the code that made it.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import parselmouth
from parselmouth.praat import call
from scipy.special import ndtr

from engine.audio import integrated_loudness, resample, to_mono
from engine.evaluation.alignment import align, mapped_durations

__all__ = [
    "MEASURE_RATE",
    "Measures",
    "changes",
    "compare",
    "measure",
    "pitch_contour",
    "smoothed_median",
]

_LOG = logging.getLogger(__name__)

# Everything but loudness is measured on a 16 kHz mono copy; F0 on an 8 kHz copy with a low
# silence threshold, so brightening, breath noise or louder stresses elsewhere in the
# spectrum do not switch frames to "unvoiced" and bias the median.
MEASURE_RATE = 16000
_PITCH_RATE = 8000
_PITCH_SILENCE = 0.01
# Width (semitones) of the kernel the F0 distribution is smoothed with before its median is
# taken: speech F0 is often bimodal with few frames at the plain median, where a handful of
# frames changing voicing would move the plain median by a semitone.
_MEDIAN_KERNEL_ST = 1.0
# Autocorrelation strength a frame needs to count as voiced in ``voiced_fraction``: Praat's
# own threshold (0.45) lets whispered vowels through (noise through a narrow F1 reaches
# 0.5-0.6), while modal and breathy voicing stays well above.
_CLEAR_VOICING = 0.55
# Below this clearly-voiced share of speech frames, F0 level and range are not reported.
_MIN_VOICED_FOR_PITCH = 0.15
# Pitch step (s), silence detector threshold (dB below the loudest frame), shortest pause (s).
_PITCH_STEP = 0.01
_SILENCE_DB = -25.0
_MIN_PAUSE_S = 0.15
# Syllable nuclei (de Jong & Wempe 2009): a peak must rise this many dB above the dip before it.
_NUCLEUS_DIP_DB = 2.0
# DTW memory grows with the product of the lengths (100 frames/s each, 9 bytes a cell):
# beyond 60 s x 60 s (about 0.3 GB) timing falls back to silence detection.
_MAX_ALIGN_SECONDS_SQUARED = 60.0 * 60.0
# Spectral tilt is the slope of the long-term spectrum between these frequencies (Hz).
_TILT_BAND = (1000.0, 7500.0)


@dataclass(frozen=True)
class Measures:
    """What one clip sounds like, in numbers.

    Attributes:
        duration_s: Length.
        median_f0_hz: Median F0 of the voiced frames, from the distribution smoothed with a
            1-semitone kernel (NaN when under 15 % of the speech is clearly voiced).
        f0_range_st: 5-95 % span of F0 in semitones (NaN likewise).
        speech_time_s: Time from the first to the last sound, internal pauses excluded.
        pause_time_s: Total internal pause time (silences of 0.15 s or more).
        speech_rate_syl_s: Syllable nuclei per second of speech time.
        loudness_lufs: BS.1770 integrated loudness (all channels, original rate).
        tilt_db_per_oct: Slope of the long-term speech spectrum from 1 to 7.5 kHz.
        voiced_fraction: Share of speech frames that are clearly voiced (autocorrelation
            strength 0.55 or more).
        hnr_db: Mean harmonics-to-noise ratio over voiced frames (NaN if none).
        formants_hz: Median F1, F2, F3 over voiced frames (Burg, 5.5 kHz ceiling).
        contour: ``(times, f0)`` pitch track (F0 0 = unvoiced), for plots.
        sounding: ``(start, end)`` of the sounding stretches (s).
        pauses: ``(start, end)`` of the internal pauses (s).
    """

    duration_s: float
    median_f0_hz: float
    f0_range_st: float
    speech_time_s: float
    pause_time_s: float
    speech_rate_syl_s: float
    loudness_lufs: float
    tilt_db_per_oct: float
    voiced_fraction: float
    hnr_db: float
    formants_hz: tuple[float, float, float]
    contour: tuple[np.ndarray, np.ndarray] = field(repr=False, compare=False)
    sounding: tuple[tuple[float, float], ...] = field(default=(), repr=False, compare=False)
    pauses: tuple[tuple[float, float], ...] = field(default=(), repr=False, compare=False)


def _pitch(sound: parselmouth.Sound) -> tuple[parselmouth.Pitch, float]:
    """Two-pass autocorrelation pitch with a floor low enough for lowered voices (gotcha 8)."""
    narrow = sound.resample(_PITCH_RATE)
    settings = {"time_step": _PITCH_STEP, "silence_threshold": _PITCH_SILENCE}
    pitch = narrow.to_pitch_ac(pitch_floor=40.0, pitch_ceiling=800.0, **settings)
    values = pitch.selected_array["frequency"]
    clear = values[_clearly_voiced(pitch)]
    floor = 40.0
    # Adapt the range only to clear voicing: in whisper, noise through a narrow F1 reads as
    # a 400-600 Hz "voice" and a range fitted to those frames would find more of them.
    if clear.size >= max(10, 0.05 * values.size):
        q15, q85 = np.percentile(clear, [15, 85])
        floor, ceiling = max(35.0, 0.6 * q15), min(1000.0, 2.2 * q85)
        pitch = narrow.to_pitch_ac(pitch_floor=floor, pitch_ceiling=ceiling, **settings)
    return pitch, floor


def _clearly_voiced(pitch: parselmouth.Pitch) -> np.ndarray:
    """Frames with F0 whose autocorrelation peak reaches ``_CLEAR_VOICING``."""
    frames = pitch.selected_array
    return (frames["frequency"] > 0) & (frames["strength"] >= _CLEAR_VOICING)


def smoothed_median(f0: np.ndarray) -> float:
    """Median (Hz) of the voiced F0 values' distribution smoothed with a Gaussian kernel of
    ``_MEDIAN_KERNEL_ST`` semitones; a shift of all values shifts it by exactly as much."""
    voiced = f0[f0 > 0]
    if voiced.size == 0:
        return 0.0
    st = 12 * np.log2(voiced / 100.0)
    grid = np.arange(st.min() - 4, st.max() + 4, 0.01)
    cdf = np.mean(ndtr((grid[:, np.newaxis] - st[np.newaxis, :]) / _MEDIAN_KERNEL_ST), axis=1)
    return float(100.0 * 2 ** (np.interp(0.5, cdf, grid) / 12))


def _mono16(audio: np.ndarray, sample_rate: int) -> parselmouth.Sound:
    mono = resample(to_mono(np.atleast_2d(audio)), sample_rate, MEASURE_RATE)
    return parselmouth.Sound(mono.astype(np.float64), sampling_frequency=MEASURE_RATE)


def pitch_contour(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(times, f0)`` of a clip, F0 in Hz with 0 where unvoiced."""
    pitch, _ = _pitch(_mono16(audio, sample_rate))
    return pitch.xs(), pitch.selected_array["frequency"]


def _intervals(sound: parselmouth.Sound) -> list[tuple[bool, float, float]]:
    """``(sounding, start, end)`` intervals from Praat's silence detector."""
    with warnings.catch_warnings():
        # Praat warns when a clip has no quiet part at all; one "sounding" interval is right.
        warnings.simplefilter("ignore", parselmouth.PraatWarning)
        grid = call(
            sound,
            "To TextGrid (silences)",
            100,
            0.0,
            _SILENCE_DB,
            _MIN_PAUSE_S,
            0.05,
            "silent",
            "sounding",
        )
    count = call(grid, "Get number of intervals", 1)
    return [
        (
            call(grid, "Get label of interval", 1, i) == "sounding",
            call(grid, "Get start time of interval", 1, i),
            call(grid, "Get end time of interval", 1, i),
        )
        for i in range(1, count + 1)
    ]


def _syllable_nuclei(
    sound: parselmouth.Sound,
    pitch: parselmouth.Pitch,
    inside: list[tuple[float, float]],
    need_voicing: bool,
) -> int:
    """Counts intensity peaks that stand out from their dips (de Jong & Wempe 2009)."""
    intensity = sound.to_intensity(minimum_pitch=50.0, time_step=0.01)
    level = intensity.values[0]
    times = intensity.xs()
    if level.size < 3:
        return 0
    threshold = max(float(np.median(level)), float(level.max()) - 25.0)
    peaks = np.flatnonzero((level[1:-1] > level[:-2]) & (level[1:-1] >= level[2:])) + 1
    count, anchor = 0, 0
    for p in peaks:
        if level[p] < threshold or level[p] - level[anchor : p + 1].min() < _NUCLEUS_DIP_DB:
            continue
        t = times[p]
        if not any(a <= t <= b for a, b in inside):
            continue
        if need_voicing and not pitch.get_value_at_time(t) > 0:
            continue
        count += 1
        anchor = int(p)
    return count


def _tilt(samples: np.ndarray, inside: list[tuple[float, float]]) -> float:
    """Slope (dB/octave) of the long-term spectrum of the sounding parts, 1-7.5 kHz."""
    n_fft, hop = 1024, 256
    frames = []
    for a, b in inside:
        segment = samples[int(a * MEASURE_RATE) : int(b * MEASURE_RATE)]
        for start in range(0, len(segment) - n_fft, hop):
            frames.append(segment[start : start + n_fft])
    if not frames:
        return math.nan
    spectrum = np.mean(np.abs(np.fft.rfft(np.array(frames) * np.hanning(n_fft))) ** 2, axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1 / MEASURE_RATE)
    band = (freqs >= _TILT_BAND[0]) & (freqs <= _TILT_BAND[1])
    slope, _ = np.polyfit(np.log2(freqs[band]), 10 * np.log10(spectrum[band] + 1e-20), 1)
    return float(slope)


def measure(audio: np.ndarray, sample_rate: int) -> Measures:
    """Measures a clip.

    Args:
        audio: ``(channels, samples)`` or 1-D audio.
        sample_rate: Its rate in Hz.

    Returns:
        The clip's :class:`Measures`.
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    sound = _mono16(audio, sample_rate)
    pitch, floor = _pitch(sound)
    f0 = pitch.selected_array["frequency"]
    times = pitch.xs()
    voiced = f0[f0 > 0]
    median, span = smoothed_median(f0), 0.0
    if voiced.size >= 10:
        span = float(12 * np.log2(np.divide(*np.percentile(voiced, [95, 5]))))

    intervals = _intervals(sound)
    sounding = [(a, b) for is_sound, a, b in intervals if is_sound]
    pauses: list[tuple[float, float]] = []
    speech_time = 0.0
    if sounding:
        first, last = sounding[0][0], sounding[-1][1]
        pauses = [(a, b) for is_sound, a, b in intervals if not is_sound and first <= a < last]
        speech_time = last - first - sum(b - a for a, b in pauses)
    in_speech = np.array([any(a <= t <= b for a, b in sounding) for t in times], dtype=bool)
    clear = _clearly_voiced(pitch)
    voiced_fraction = float(np.mean(clear[in_speech])) if in_speech.any() else 0.0
    if voiced_fraction < _MIN_VOICED_FOR_PITCH:
        median = span = math.nan  # whisper or noise: the few "F0" frames are not a voice
    nuclei = _syllable_nuclei(sound, pitch, sounding, need_voicing=voiced_fraction >= 0.2)

    harmonicity = sound.to_harmonicity_cc(time_step=_PITCH_STEP, minimum_pitch=max(floor, 50.0))
    hnr_values = harmonicity.values[0]
    hnr_values = hnr_values[hnr_values > -200]
    formant = sound.to_formant_burg(
        time_step=_PITCH_STEP, max_number_of_formants=5, maximum_formant=5500.0
    )
    voiced_times = times[f0 > 0]
    formants = tuple(
        float(np.nanmedian([formant.get_value_at_time(i, t) for t in voiced_times]))
        if voiced_times.size
        else math.nan
        for i in (1, 2, 3)
    )
    return Measures(
        duration_s=audio.shape[-1] / sample_rate,
        median_f0_hz=median,
        f0_range_st=span,
        speech_time_s=float(speech_time),
        pause_time_s=float(sum(b - a for a, b in pauses)),
        speech_rate_syl_s=nuclei / speech_time if speech_time > 0 else 0.0,
        loudness_lufs=integrated_loudness(audio, sample_rate),
        tilt_db_per_oct=_tilt(sound.values[0], sounding),
        voiced_fraction=voiced_fraction,
        hnr_db=float(np.mean(hnr_values)) if hnr_values.size else math.nan,
        formants_hz=formants,  # type: ignore[arg-type]
        contour=(times, f0),
        sounding=tuple(sounding),
        pauses=tuple(pauses),
    )


def _ratio(after: float, before: float) -> float:
    return after / before if before > 0 else math.nan


def changes(
    before: Measures, after: Measures, aligned: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, float]:
    """What an edit changed, in the units of the recipe table.

    Args:
        before: Measures of the original.
        after: Measures of the edit.
        aligned: ``(before_times, after_times)`` from :func:`align`; when given, speech and
            pause time of the edit are those of the original's stretches mapped through the
            alignment, otherwise they come from the edit's own silence detection.

    Returns:
        ``f0_change`` (relative, +0.15 = 15 % higher), ``f0_range_ratio`` (ratio of
        semitone spans), ``tempo_change`` (relative speech-rate change from the speech time,
        +0.1 = 10 % faster), ``pause_ratio``, ``loudness_db``, ``tilt_db_per_oct``,
        ``voiced_fraction`` (after), ``hnr_db`` (difference), ``formant_ratio`` (mean of the
        F1-F3 ratios) and ``duration_ratio``.
    """
    speech_after, pause_after = after.speech_time_s, after.pause_time_s
    if aligned is not None and before.sounding:
        first, last = before.sounding[0][0], before.sounding[-1][1]
        pause_after = mapped_durations(list(before.pauses), *aligned)
        speech_after = mapped_durations([(first, last)], *aligned) - pause_after
    formant_ratios = [
        _ratio(a, b) for a, b in zip(after.formants_hz, before.formants_hz, strict=True)
    ]
    return {
        "f0_change": _ratio(after.median_f0_hz, before.median_f0_hz) - 1,
        "f0_range_ratio": _ratio(after.f0_range_st, before.f0_range_st),
        "tempo_change": _ratio(before.speech_time_s, speech_after) - 1,
        "pause_ratio": _ratio(pause_after, before.pause_time_s),
        "loudness_db": after.loudness_lufs - before.loudness_lufs,
        "tilt_db_per_oct": after.tilt_db_per_oct - before.tilt_db_per_oct,
        "voiced_fraction": after.voiced_fraction,
        "hnr_db": after.hnr_db - before.hnr_db,
        "formant_ratio": float(np.nanmean(formant_ratios)),
        "duration_ratio": _ratio(after.duration_s, before.duration_s),
    }


def compare(
    original: np.ndarray,
    original_rate: int,
    edited: np.ndarray,
    edited_rate: int,
    before: Measures | None = None,
) -> tuple[Measures, dict[str, float]]:
    """Measures an edit and what it changed against its original.

    Args:
        original: The original ``(channels, samples)`` audio.
        original_rate: Its rate.
        edited: The edited audio.
        edited_rate: Its rate.
        before: The original's measures, if already known.

    Returns:
        The edit's :class:`Measures` and :func:`changes` (timing from DTW alignment).
    """
    before = before or measure(original, original_rate)
    after = measure(edited, edited_rate)
    if before.duration_s * after.duration_s > _MAX_ALIGN_SECONDS_SQUARED:
        _LOG.warning(
            "clips too long to align (%.0f s x %.0f s): tempo and pauses from silences",
            before.duration_s,
            after.duration_s,
        )
        return after, changes(before, after)
    a = resample(to_mono(np.atleast_2d(original)), original_rate, MEASURE_RATE)
    b = resample(to_mono(np.atleast_2d(edited)), edited_rate, MEASURE_RATE)
    return after, changes(before, after, align(a, b, MEASURE_RATE))
