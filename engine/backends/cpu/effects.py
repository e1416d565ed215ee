"""Post-processing of rendered speech: named pedalboard chains."""

from __future__ import annotations

import numpy as np
import pedalboard as pb

from engine.audio import match_loudness

__all__ = ["apply_chain"]

# Levels the effect chains are driven at, so their thresholds mean the same on every clip.
_CHAIN_INPUT_LUFS = -23.0


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
            # Only the louder syllables: at -26 dB the compressor lifted the gaps between
            # words too, and with them a noisy take's noise (VCTK p287_006: DNSMOS OVRL
            # -0.65, now -0.51; issue 13).
            pb.Compressor(threshold_db=-20.0, ratio=2.0, attack_ms=10.0, release_ms=150.0),
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
