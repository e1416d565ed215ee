"""Spectral features in numpy: power spectrogram, librosa-compatible mel filterbank, MFCC."""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

__all__ = ["mel_filterbank", "mfcc", "power_spectrogram"]


def power_spectrogram(
    x: np.ndarray, n_fft: int, hop: int, window: int | None = None, center: bool = True
) -> np.ndarray:
    """``|STFT|^2`` with a periodic Hann window, shaped ``(frames, n_fft // 2 + 1)``.

    Matches ``librosa.stft(center=True, pad_mode="constant")`` framing: frame ``i`` is
    centred on sample ``i * hop``.
    """
    window = window or n_fft
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = np.pad(x, (n_fft // 2, n_fft // 2))
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    count = 1 + (len(x) - n_fft) // hop
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    taper = np.zeros(n_fft)
    offset = (n_fft - window) // 2
    taper[offset : offset + window] = hann
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(count, n_fft), strides=(x.strides[0] * hop, x.strides[0])
    )
    return np.abs(np.fft.rfft(frames * taper, axis=1)) ** 2


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    f = np.asarray(f, dtype=np.float64)
    linear = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, linear)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    linear = m * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log_part, linear)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``(n_mels, n_fft // 2 + 1)``.

    Same construction as ``librosa.filters.mel`` with its defaults (``htk=False``,
    ``norm="slaney"``), so models trained on librosa features get the input they expect.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, np.newaxis] - fft_freqs[np.newaxis, :]
    lower = -ramps[:-2] / widths[:-1, np.newaxis]
    upper = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, np.newaxis]
    return weights


def mfcc(x: np.ndarray, sample_rate: int, n_mfcc: int = 20, hop_s: float = 0.01) -> np.ndarray:
    """MFCCs ``(frames, n_mfcc - 1)`` without c0, mean-normalised over the clip.

    Dropping c0 and the clip mean makes the features insensitive to level and to a fixed
    spectral colouring (EQ, tilt), so they follow *what* is said rather than how loudly.
    """
    n_fft = 1 << int(np.ceil(np.log2(0.025 * sample_rate)))
    power = power_spectrogram(x, n_fft, round(hop_s * sample_rate), round(0.025 * sample_rate))
    mel = power @ mel_filterbank(sample_rate, n_fft, 40, 60.0, min(7600.0, sample_rate / 2)).T
    ceps = dct(np.log(mel + 1e-10), type=2, axis=1, norm="ortho")[:, 1:n_mfcc]
    return ceps - ceps.mean(axis=0)
