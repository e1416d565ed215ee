"""A take's recorded bandwidth, and renders held inside it.

Takes are often band-limited below their sample rate: an archive or MP3 transfer stops at
16 kHz, a 22 kHz or 16 kHz recording placed in a 48 kHz session is empty above 11 or 8 kHz.
An expressive render must not put sound where the take has none: a brighter voice, breath
noise, a compressor's distortion or a formant warp up all reach into that empty band, and
the new take then sounds brighter and hissier than the one beside it. (The engine does not
filter every result: text edits keep the take sample for sample outside the words they
change.)
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["limit_bandwidth", "recorded_bandwidth"]

# The spectrum is read in bands this wide (Hz), each of 8 or more analysis bins (a Hann
# window's leakage 8 bins away is ~75 dB down, under any cliff it has to find).
_BAND_HZ = 250.0
_BINS_PER_BAND = 8
# A recorded band ends in a cliff: its top band stands this far (dB) above every band past
# the next one (the filter's transition). A resampler's or codec's low-pass drops 45-120 dB
# there (JFK's archive transfer: 45 dB at 16 kHz), 16-bit rounding of a quiet take leaves
# 30-40; a voice's own spectrum falls by ~10 dB per kHz at most, and a recording's noise
# floor runs on to its anti-alias filter.
_CLIFF_DB = 30.0
# Edges under this are not a recording's bandwidth (telephone speech reaches 3.4 kHz): a slice
# of hum or silence would otherwise low-pass whatever the edit adds.
_MIN_EDGE_HZ = 3000.0
# Low-pass: flat to this far (Hz) under the edge, stopped from the edge on, this deep (dB): a
# codec's or resampler's own transition can be steeper than one band.
_TRANSITION_HZ = 250.0
_STOP_DB = 90.0


def recorded_bandwidth(samples: np.ndarray, sample_rate: int) -> float | None:
    """The frequency (Hz) where the take's recorded band ends, or ``None`` when it reaches
    (close to) the rate's Nyquist frequency or the take is too short or silent to tell.

    Args:
        samples: ``float32 (channels, samples)`` or mono.
        sample_rate: Their rate in Hz.
    """
    mono = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    segment = int(2 ** np.ceil(np.log2(_BINS_PER_BAND * sample_rate / _BAND_HZ)))
    if mono.shape[-1] < segment:
        return None
    freqs, power = signal.welch(mono, sample_rate, nperseg=segment, axis=-1)
    power = power.mean(axis=0)
    if not np.any(power > 0):
        return None
    edges = np.arange(0.0, sample_rate / 2, _BAND_HZ)
    band_db = np.array(
        [10 * np.log10(power[(freqs >= a) & (freqs < a + _BAND_HZ)].mean() + 1e-300) for a in edges]
    )
    # Highest edge first: band ``index - 1`` is the last one recorded, ``index`` the
    # transition, and every band above is floor.
    for index in range(len(edges) - 2, 0, -1):
        edge = edges[index]
        if edge < _MIN_EDGE_HZ:
            break
        if band_db[index - 1] - band_db[index + 1 :].max() >= _CLIFF_DB:
            return float(edge)
    return None


def limit_bandwidth(audio: np.ndarray, sample_rate: int, edge_hz: float) -> np.ndarray:
    """``audio`` (``(channels, samples)``) low-passed at ``edge_hz`` with a linear-phase FIR,
    centred, so nothing moves in time; ``float32``.
    """
    nyquist = sample_rate / 2
    if edge_hz >= nyquist:
        return np.asarray(audio, dtype=np.float32)
    taps, beta = signal.kaiserord(_STOP_DB, _TRANSITION_HZ / nyquist)
    taps |= 1  # odd: a whole-sample delay, removed by the centred convolution
    cutoff = edge_hz - _TRANSITION_HZ / 2
    kernel = signal.firwin(taps, cutoff, window=("kaiser", beta), fs=sample_rate)
    out = signal.oaconvolve(audio, kernel[np.newaxis, :], mode="same", axes=-1)
    return out.astype(np.float32)
