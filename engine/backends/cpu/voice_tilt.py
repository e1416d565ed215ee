"""A recipe's spectral tilt, given to the voice rather than to the room.

More vocal effort makes a voice brighter; the room it was recorded in stays as it was. A
plain tilt filter brightened both, so the hiss under the words rose by up to 12 dB (angry's
+4 dB/oct at 8 kHz) over the room tone that the pauses keep (restored from the source), and
DNSMOS heard a background that pumps with the speech. Here each time-frequency bin gets
the boost in the proportion its power stands above the room's noise spectrum (a Wiener
weight, with a margin), so bins of noise alone keep their level. A cut (a darker voice)
applies to every bin, noise included: noise filled back under a quieter voice cost more
DNSMOS than the dip (issue 13).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter

from engine.audio import fit_length
from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis
from engine.dsp import tilt_gain_db

__all__ = ["apply_voice_tilt", "room_spectrum"]

# Analysis window (s, rounded up to a power of two in samples), hopped by a quarter.
_WINDOW_S = 0.032
# Bins (frequency, time) over which power is averaged before it is weighed against the
# room (at 16 kHz: 160 Hz by 40 ms): single bins of noise rise over its mean by chance, and
# boosting them alone would leave tonal blips ("musical noise").
_SMOOTH_BINS = (5, 5)
# A bin counts as all room until its power is this many times the room's (3 dB). Noise
# alone varies around its mean: angry's +4 dB/oct (10.8 dB at 5.5-7.5 kHz with a plain
# filter) raised a room's noise there by 4.6 dB with no margin and 3 x 3 bins, by 0.9 dB
# with this margin, by 0.1 dB with both.
_ROOM_MARGIN = 2.0
# Room-tone frames needed for a mean spectrum; with fewer, each bin's 10th percentile over
# the clip stands in (speech leaves most bins near the noise most of the time), divided by
# what that percentile is of the mean for noise (power of one bin: exponential).
_MIN_ROOM_FRAMES = 10
_ROOM_PERCENTILE = 10.0
_PERCENTILE_OF_MEAN = -math.log(1 - _ROOM_PERCENTILE / 100)


def _window(sample_rate: int) -> int:
    return 2 ** int(np.ceil(np.log2(_WINDOW_S * sample_rate)))


def _stft(y: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    window = _window(sample_rate)
    return signal.stft(y.astype(np.float64), sample_rate, nperseg=window, noverlap=3 * window // 4)


def room_spectrum(analysis: Analysis) -> np.ndarray:
    """Power spectrum of the clip's room tone, per bin of :func:`apply_voice_tilt`'s STFT.

    Args:
        analysis: The clip; its room-tone frames (``Analysis.room_tone``) are averaged.

    Returns:
        Mean power per frequency bin (the STFT's scaling).
    """
    _, times, spectrum = _stft(analysis.signal, analysis.sample_rate)
    power = np.abs(spectrum) ** 2
    tone = analysis.room_tone
    quiet = tone[np.clip(np.round(times / FRAME_PERIOD).astype(int), 0, len(tone) - 1)]
    if quiet.sum() >= _MIN_ROOM_FRAMES:
        return power[:, quiet].mean(axis=1)
    return np.percentile(power, _ROOM_PERCENTILE, axis=1) / _PERCENTILE_OF_MEAN


def apply_voice_tilt(
    y: np.ndarray, sample_rate: int, db_per_octave: float, room: np.ndarray | None = None
) -> np.ndarray:
    """Tilts the voice in ``y`` by ``db_per_octave`` (:func:`~engine.dsp.tilt_gain_db`):
    a boost reaches each bin in proportion to how far it stands above ``room``, a cut
    reaches every bin.

    Args:
        y: Mono speech at ``sample_rate``.
        sample_rate: Its rate in Hz.
        db_per_octave: Slope change above 1 kHz (+ = brighter).
        room: The room's noise (:func:`room_spectrum` of the source, same rate); ``None``
            gives every bin the full change (a plain filter).

    Returns:
        ``float32`` samples, as long as ``y`` and aligned with it.
    """
    if db_per_octave == 0:
        return y.astype(np.float32, copy=False)
    window = _window(sample_rate)
    freqs, _, spectrum = _stft(y, sample_rate)
    gain = 10 ** (tilt_gain_db(freqs, db_per_octave, sample_rate)[:, np.newaxis] / 20)
    if room is not None:
        power = uniform_filter(np.abs(spectrum) ** 2, _SMOOTH_BINS, mode="nearest")
        voice = np.clip(1 - _ROOM_MARGIN * room[:, np.newaxis] / np.maximum(power, 1e-30), 0, 1)
        gain = np.where(gain > 1, 1 + (gain - 1) * voice, gain)
    _, out = signal.istft(spectrum * gain, sample_rate, nperseg=window, noverlap=3 * window // 4)
    return fit_length(out[np.newaxis, :], len(y))[0].astype(np.float32)
