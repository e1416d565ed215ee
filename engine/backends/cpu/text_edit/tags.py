"""Tags: nonverbal sounds synthesised in the speaker's voice, as loud as the take around them.

Tags are synthesised in the speaker's voice (``nonverbal``) and spliced at the cut point,
faded against silence so the sound itself is untouched.
"""

from __future__ import annotations

import zlib

import numpy as np

from engine.audio import integrated_loudness, match_loudness, resample
from engine.backends.cpu.analysis import analyse
from engine.backends.cpu.nonverbal import SOUNDS, VoiceSample, synthesise
from engine.backends.cpu.text_edit.take import CONTEXT_S

__all__ = ["Voice"]

# Nonverbal sounds are analysed and synthesised at most at this rate.
_VOICE_RATE_CAP = 32000


class Voice:
    """The speaker's voice for tags, analysed on first use."""

    def __init__(self, mono: np.ndarray, sample_rate: int) -> None:
        self._mono, self._rate = mono, sample_rate
        self._sample: VoiceSample | None = None

    def sound(self, tag: str, at: float, channels: int) -> np.ndarray:
        """The tag in the speaker's voice, as loud as the take around ``at`` (s) plus the
        tag's own level."""
        if self._sample is None:
            rate = min(self._rate, _VOICE_RATE_CAP)
            self._sample = VoiceSample.from_analysis(
                analyse(resample(self._mono, self._rate, rate), rate)
            )
        seed = zlib.crc32(f"{tag}:{at:.3f}".encode())
        sound = resample(
            synthesise(tag, self._sample, seed=seed), self._sample.sample_rate, self._rate
        )
        centre, reach = round(at * self._rate), round(CONTEXT_S * self._rate)
        context = self._mono[max(0, centre - reach) : centre + reach]
        target = integrated_loudness(context[np.newaxis, :], self._rate) + SOUNDS[tag][1]
        sound = match_loudness(sound[np.newaxis, :], self._rate, target)[0]
        return np.tile(sound, (channels, 1))
