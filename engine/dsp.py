"""DSP helpers shared by the backends: frame energies, gain envelopes, tilt, cut points."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = [
    "broaden_envelope",
    "frame_rms_db",
    "low_energy_point",
    "pauses",
    "runs",
    "slaney_mel_filters",
    "smooth",
    "tilt_gain_db",
    "zero_crossing_near",
]


# Floor for level measures (dBFS): digital silence reads as this, not -inf.
_FLOOR_DB = -120.0


def frame_rms_db(
    x: np.ndarray, sample_rate: int, hop: float = 0.005, window: float = 0.025
) -> np.ndarray:
    """Short-time RMS level of a mono signal in dBFS, one value per ``hop`` seconds.

    Frame ``i`` is centred on ``i * hop`` seconds (the signal is zero-padded at both ends).

    Args:
        x: Mono samples.
        sample_rate: Rate of ``x`` in Hz.
        hop: Frame step in seconds.
        window: Frame length in seconds.

    Returns:
        ``ceil(len(x) / hop_samples)`` levels in dBFS, floored at -120.
    """
    step = max(1, round(hop * sample_rate))
    width = max(step, round(window * sample_rate))
    count = -(-len(x) // step)
    padded = np.pad(np.asarray(x, dtype=np.float64) ** 2, (width // 2, width))
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    starts = np.arange(count) * step
    power = (cumulative[starts + width] - cumulative[starts]) / width
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), _FLOOR_DB)


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` frames (edges use the frames available)."""
    if width <= 1 or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    kernel = np.ones(width)
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(np.ones(len(values)), kernel, mode="same")
    return total / count


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index pairs of the runs of ``True`` in a boolean array."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


# A pause: 10 ms frames at least _PAUSE_BELOW_LOUD_DB under the loud frames (95th percentile)
# or within _PAUSE_ABOVE_FLOOR_DB of the floor (10th percentile).
_PAUSE_BELOW_LOUD_DB, _PAUSE_ABOVE_FLOOR_DB = 30.0, 10.0
_PAUSE_HOP_S = 0.01


def pauses(x: np.ndarray, sample_rate: int, min_seconds: float) -> list[tuple[int, int]]:
    """``[start, end)`` sample ranges of the pauses of a mono signal that last at least
    ``min_seconds``: 10 ms frames 30 dB under its loud frames (95th percentile) or within
    10 dB of its floor (10th percentile)."""
    level = frame_rms_db(x, sample_rate, hop=_PAUSE_HOP_S, window=0.02)
    if len(level) == 0:
        return []
    loud, floor = np.percentile(level, [95, 10])
    quiet = level < max(loud - _PAUSE_BELOW_LOUD_DB, floor + _PAUSE_ABOVE_FLOOR_DB)
    step = round(_PAUSE_HOP_S * sample_rate)
    return [
        (a * step, min(b * step, len(x)))
        for a, b in runs(quiet)
        if (b - a) * _PAUSE_HOP_S >= min_seconds
    ]


def tilt_gain_db(
    freqs: np.ndarray,
    db_per_octave: float,
    sample_rate: int,
    corner_hz: float = 1000.0,
    top_hz: float = 8000.0,
) -> np.ndarray:
    """Gain (dB) at ``freqs`` (Hz) of a spectral tilt of ``db_per_octave`` from ``corner_hz``.

    Below the corner the gain is 0 dB; above ``top_hz`` (or just under Nyquist) it stays at
    the value reached there, so high-rate material does not get its noise floor boosted
    without bound.

    Args:
        freqs: Frequencies in Hz.
        db_per_octave: Slope change; positive brightens (more vocal effort).
        sample_rate: Rate in Hz of the audio the gain is for.
        corner_hz: Where the slope starts.
        top_hz: Where it stops.

    Returns:
        Gains in dB, the shape of ``freqs``.
    """
    top = min(top_hz, sample_rate / 2 * 0.95)
    return db_per_octave * np.log2(np.clip(freqs, corner_hz, top) / corner_hz)


def broaden_envelope(envelope: np.ndarray, sample_rate: int, width_hz: float) -> np.ndarray:
    """Smooths power spectral envelopes (rows over ``0..sample_rate/2``) in the log domain.

    A Gaussian of ``width_hz`` standard deviation across frequency widens formant peaks, as
    an open glottis damps them in whisper and breath; noise through narrow peaks would ring
    like a voice.
    """
    bins = envelope.shape[-1]
    sigma = width_hz / (sample_rate / 2 / (bins - 1))
    log_envelope = np.log(np.maximum(envelope, 1e-16))
    return np.exp(gaussian_filter1d(log_envelope, sigma, axis=-1))


def low_energy_point(x: np.ndarray, sample_rate: int, target: float, search: float = 0.4) -> float:
    """The quietest moment within ``search`` seconds of ``target`` (seconds).

    Levels are taken over 30 ms windows every 5 ms; among frames within 3 dB of the quietest
    one, the frame closest to ``target`` wins, so the cut lands in a pause or between words
    rather than inside one.

    Args:
        x: Mono samples.
        sample_rate: Rate in Hz.
        target: Wanted time in seconds.
        search: Half-width of the window searched, in seconds.

    Returns:
        The chosen time in seconds, clipped to the signal.
    """
    duration = len(x) / sample_rate
    target = min(max(target, 0.0), duration)
    levels = frame_rms_db(x, sample_rate, hop=0.005, window=0.03)
    times = np.arange(len(levels)) * 0.005
    near = np.flatnonzero(np.abs(times - target) <= search)
    if near.size == 0:
        return target
    quietest = levels[near].min()
    candidates = near[levels[near] <= quietest + 3.0]
    best = candidates[np.argmin(np.abs(times[candidates] - target))]
    return float(min(times[best], duration))


def zero_crossing_near(x: np.ndarray, index: int, reach: int) -> int:
    """The sample index of the zero crossing closest to ``index`` within ``reach`` samples.

    Returns ``index`` itself (clipped to the signal) when there is none.
    """
    index = min(max(index, 0), len(x))
    lo, hi = max(index - reach, 1), min(index + reach, len(x) - 1)
    if hi <= lo:
        return index
    segment = x[lo - 1 : hi]
    crossings = np.flatnonzero(np.signbit(segment[:-1]) != np.signbit(segment[1:])) + lo
    if crossings.size == 0:
        return index
    return int(crossings[np.argmin(np.abs(crossings - index))])


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    log_mel = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(log_region, log_mel, mel)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = (200.0 / 3) * mel
    log_region = mel >= 15.0
    return np.where(log_region, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


def slaney_mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Slaney-style mel filterbank, area-normalised (librosa ``filters.mel`` defaults).

    Triangles are spaced evenly on the Slaney mel scale (linear below 1 kHz, logarithmic
    above), evaluated at the ``n_fft // 2 + 1`` FFT bin frequencies and scaled by
    ``2 / (upper edge - lower edge)``. Computed in float64, returned as float32.

    Args:
        sample_rate: Rate in Hz.
        n_fft: FFT size.
        n_mels: Number of filters.
        fmin: Lowest edge in Hz.
        fmax: Highest edge in Hz; ``None`` means Nyquist.

    Returns:
        Float32 ``(n_mels, n_fft // 2 + 1)``.
    """
    if fmax is None:
        fmax = sample_rate / 2.0
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    low, high = _hz_to_slaney_mel(np.array(fmin)), _hz_to_slaney_mel(np.array(fmax))
    edges = _slaney_mel_to_hz(np.linspace(low, high, n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    # Rounded to float32 before and after the area normalisation, as librosa stores them.
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    norm = 2.0 / (edges[2 : n_mels + 2] - edges[:n_mels])
    return (weights * norm[:, None]).astype(np.float32)
