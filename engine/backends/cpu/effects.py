"""Post-processing of rendered speech: named pedalboard chains and the delivered level."""

from __future__ import annotations

import logging

import numpy as np
import pedalboard as pb

from engine.audio import PEAK_CEILING_DBFS, integrated_loudness, match_loudness

__all__ = ["apply_chain", "set_loudness"]

_LOG = logging.getLogger(__name__)

# Levels the effect chains are driven at, so their thresholds mean the same on every clip.
_CHAIN_INPUT_LUFS = -23.0
# The most gain reduction (dB) a limiter may apply to get a louder delivery under the
# engine's peak ceiling.
_MAX_LIMITING_DB = 6.0


def apply_chain(y: np.ndarray, sample_rate: int, chain: str) -> np.ndarray:
    """Runs a named pedalboard chain (broadcast EQ/compression, limiter, reverb)."""
    if not chain:
        return y
    chains: dict[str, list[pb.Plugin]] = {
        "radio": [
            pb.HighpassFilter(80.0),
            pb.LowShelfFilter(120.0, gain_db=2.0),
            pb.PeakFilter(3500.0, gain_db=3.0, q=0.8),
            pb.Compressor(threshold_db=-26.0, ratio=3.0, attack_ms=5.0, release_ms=80.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "news": [
            pb.HighpassFilter(70.0),
            pb.Compressor(threshold_db=-26.0, ratio=2.0, attack_ms=5.0, release_ms=100.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "loud": [
            pb.Compressor(threshold_db=-28.0, ratio=2.5, attack_ms=3.0, release_ms=60.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "shout": [
            pb.Compressor(threshold_db=-26.0, ratio=3.0, attack_ms=3.0, release_ms=60.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "ethereal": [
            pb.HighpassFilter(120.0),
            pb.Reverb(room_size=0.8, damping=0.4, wet_level=0.15, dry_level=0.9, width=1.0),
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
        limiter = pb.Limiter(threshold_db=PEAK_CEILING_DBFS - 0.5, release_ms=80.0)
        out = limiter(out, sample_rate)
        _LOG.debug("limited %.1f dB of peaks to reach %.1f LUFS", excess, target_lufs)
    return match_loudness(out, sample_rate, target_lufs)
