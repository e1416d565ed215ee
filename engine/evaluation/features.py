"""Spectral features in numpy: power spectrogram and MFCC."""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

from engine.dsp import slaney_mel_filters

__all__ = ["mfcc", "power_spectrogram"]


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


def mfcc(x: np.ndarray, sample_rate: int, n_mfcc: int = 20, hop_s: float = 0.01) -> np.ndarray:
    """MFCCs ``(frames, n_mfcc - 1)`` without c0, mean-normalised over the clip.

    Dropping c0 and the clip mean makes the features insensitive to level and to a fixed
    spectral colouring (EQ, tilt), so they follow *what* is said rather than how loudly.
    """
    n_fft = 1 << int(np.ceil(np.log2(0.025 * sample_rate)))
    power = power_spectrogram(x, n_fft, round(hop_s * sample_rate), round(0.025 * sample_rate))
    mel = power @ slaney_mel_filters(sample_rate, n_fft, 40, 60.0, min(7600.0, sample_rate / 2)).T
    ceps = dct(np.log(mel + 1e-10), type=2, axis=1, norm="ortho")[:, 1:n_mfcc]
    return ceps - ceps.mean(axis=0)
