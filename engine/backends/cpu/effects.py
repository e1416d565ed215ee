"""Post-processing of rendered speech: named pedalboard chains and the delivered level."""

from __future__ import annotations

import logging

import numpy as np
import pedalboard as pb
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from engine.audio import PEAK_CEILING_DBFS, integrated_loudness, match_loudness

__all__ = ["apply_chain", "limit_peaks", "set_loudness"]

_LOG = logging.getLogger(__name__)

# Levels the effect chains are driven at, so their thresholds mean the same on every clip.
_CHAIN_INPUT_LUFS = -23.0
# The most gain reduction (dB) a limiter may apply to get a louder delivery under the
# engine's peak ceiling.
_MAX_LIMITING_DB = 6.0
# The limiter's gain is held and smoothed over this long (s): it moves at under 20 Hz, so
# it does not distort, and it is down before each peak arrives. pedalboard's Limiter (80 ms
# release) cost 0.2-0.6 DNSMOS OVRL for +6 dB on clean clips (issue 13).
_LIMITER_WINDOW_S = 0.05


def apply_chain(y: np.ndarray, sample_rate: int, chain: str) -> np.ndarray:
    """Runs a named pedalboard chain (broadcast EQ/compression, limiter, reverb)."""
    if not chain:
        return y
    # Compressors attack in 10 ms and release in 150 ms: faster ones (3-5 ms, 60-100 ms)
    # pumped the noise floor between syllables: up to 0.1 DNSMOS OVRL on noisy takes (issue 13).
    chains: dict[str, list[pb.Plugin]] = {
        "radio": [
            pb.HighpassFilter(80.0),
            pb.LowShelfFilter(120.0, gain_db=2.0),
            pb.PeakFilter(3500.0, gain_db=3.0, q=0.8),
            pb.Compressor(threshold_db=-26.0, ratio=2.0, attack_ms=10.0, release_ms=150.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "news": [
            pb.HighpassFilter(70.0),
            pb.Compressor(threshold_db=-26.0, ratio=2.0, attack_ms=10.0, release_ms=150.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "shout": [
            pb.Compressor(threshold_db=-26.0, ratio=2.5, attack_ms=10.0, release_ms=150.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "ethereal": [
            pb.HighpassFilter(120.0),
            # A small, damped room: the long one (0.8, wet 0.15) cost 0.9 DNSMOS OVRL on
            # clean clips, this one about 0.3 (issue 13).
            pb.Reverb(room_size=0.4, damping=0.6, wet_level=0.07, dry_level=0.9, width=1.0),
        ],
    }
    if chain not in chains:
        raise ValueError(f"unknown effect chain {chain!r}; known: {', '.join(chains)}")
    driven = match_loudness(y[np.newaxis, :], sample_rate, _CHAIN_INPUT_LUFS)
    return pb.Pedalboard(chains[chain])(driven, sample_rate)[0].astype(np.float32)


def set_loudness(y: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Brings ``y`` to ``target_lufs``, limiting peaks (by at most 6 dB) to make room.

    The engine keeps peaks under -1 dBFS, so a louder delivery of an already loud take is
    only possible with a limiter, as vocal effort is in life (spec §4.3: "into a limiter").
    The limiter is smooth (:func:`limit_peaks`), so a take with sharp peaks may end a little
    under the target rather than squashed: limiting again to reach it cost up to 0.5 more
    DNSMOS OVRL at +6 dB on a clean Mandarin clip (issue 13).
    """
    out = y[np.newaxis, :].astype(np.float32)
    current = integrated_loudness(out, sample_rate)
    if not (np.isfinite(current) and np.isfinite(target_lufs)):
        return out
    out = out * np.float32(10 ** ((target_lufs - current) / 20))
    peak_db = 20 * np.log10(float(np.max(np.abs(out))) + 1e-12)
    excess = peak_db - PEAK_CEILING_DBFS
    if excess > 0:
        out = out * np.float32(10 ** (-max(excess - _MAX_LIMITING_DB, 0.0) / 20))
        out = limit_peaks(out, sample_rate, PEAK_CEILING_DBFS - 0.5)
        _LOG.debug("limited %.1f dB of peaks to reach %.1f LUFS", excess, target_lufs)
    return match_loudness(out, sample_rate, target_lufs)


def limit_peaks(y: np.ndarray, sample_rate: int, ceiling_db: float) -> np.ndarray:
    """``(channels, n)`` audio with its peaks brought under ``ceiling_db`` by a smooth gain.

    The gain each sample needs is held over :data:`_LIMITER_WINDOW_S` and averaged over the
    same length: every average then includes only values at or below the need of the sample
    it lands on, so no peak passes, and the gain ramps over 50 ms instead of snapping.
    Channels share one gain (the image does not move).
    """
    ceiling = 10 ** (ceiling_db / 20)
    magnitude = np.max(np.abs(y), axis=0)
    needed = np.minimum(1.0, ceiling / np.maximum(magnitude, 1e-12))
    size = 2 * round(_LIMITER_WINDOW_S * sample_rate / 2) + 1
    held = minimum_filter1d(needed, size, mode="nearest")
    gain = np.minimum(uniform_filter1d(held, size, mode="nearest"), needed)
    return (y * gain).astype(np.float32)
