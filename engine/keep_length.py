"""Fitting a render to its source slice: rate, channels and loudness (``fit_to_source``)
and, for edits that keep the length (``EditSpec.keep_length``), its duration
(``fit_duration``: pauses next to added sound shortened first, then a time-scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine import audio
from engine.backends.base import Rendered
from engine.dsp import pauses
from engine.errors import BackendError

__all__ = ["added_spans", "fit_duration", "fit_to_source", "speech_spans"]


def fit_to_source(
    rendered: Rendered,
    source_rate: int,
    channels: int,
    target_lufs: float,
    ceiling_db: float = audio.PEAK_CEILING_DBFS,
) -> np.ndarray:
    """Brings the backend's output to the source's rate, channels and loudness.

    Args:
        rendered: What the backend returned.
        source_rate: Rate of the source slice in Hz.
        channels: Channel count of the source.
        target_lufs: Loudness of the source slice; the result gets this plus the
            backend's ``loudness_offset_db``.
        ceiling_db: Highest peak allowed (dBFS), the source's
            (:func:`~engine.audio.peak_ceiling_db`); peaks over it are limited smoothly.

    Returns:
        ``float32 (channels, samples)`` at ``source_rate``.

    Raises:
        BackendError: when the backend returned no samples, a bad shape, or NaN/inf.
    """
    out = np.asarray(rendered.audio, dtype=np.float32)
    if out.ndim == 1:
        out = out[np.newaxis, :]
    if out.ndim != 2 or out.shape[-1] == 0:
        raise BackendError(f"backend returned audio of shape {out.shape}; expected (channels, n)")
    if not np.all(np.isfinite(out)):
        raise BackendError("backend returned NaN or infinite samples")
    out = audio.resample(out, rendered.sample_rate, source_rate)
    out = audio.fit_channels(out, channels)
    return audio.fit_loudness(
        out, source_rate, target_lufs + rendered.loudness_offset_db, ceiling_db
    )


# Keep length (``EditSpec.keep_length``): pauses are shortened first, those nearest the added
# sound first, each to no less than _MIN_PAUSE_S; the rest is time-scaled.
_MIN_PAUSE_S = 0.15
_JOIN_FADE_S = 0.01
# Result words whose sound the edit added (``words`` of text edits).
_ADDED_WORDS = frozenset({"inserted", "new", "replaced"})


def added_spans(info: dict[str, Any], sample_rate: int) -> list[tuple[int, int]]:
    """Sample ranges of the result that an edit added, as the backend reported them.

    ``insertions`` (nonverbal sounds: input position and duration, each shifting the later
    ones) and ``words`` of text edits whose action is ``inserted``, ``new`` or ``replaced``
    (start and end in the result). Backends that report neither (a model re-saying the
    whole slice) give none.
    """
    spans, shift = [], 0.0
    for insertion in info.get("insertions", ()):
        start = insertion["position"] + shift
        spans.append((start, start + insertion["duration"]))
        shift += insertion["duration"]
    spans += [(w["start"], w["end"]) for w in info.get("words", ()) if w["action"] in _ADDED_WORDS]
    return sorted((round(a * sample_rate), round(b * sample_rate)) for a, b in spans)


def _outside(pause: tuple[int, int], spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``pause`` that no span covers (an added sound starts and ends quietly,
    so the pause next to it may reach into it; so may a word's quiet edge)."""
    parts = [pause]
    for s, e in spans:
        parts = [p for a, b in parts for p in ((a, min(b, s)), (max(a, e), b)) if p[1] > p[0]]
    return parts


def _silences(out: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
    """Pauses that are quiet (``engine.dsp.pauses``) and hold no speech: outside the
    silence remover's speech, whose word edges are found on the audio, by its cut guard.

    The level rule alone took quiet word endings for pauses (LJ050: 0.6 s inside the last
    word, "thereunder").
    """
    speech = speech_spans(out, sample_rate)
    return [
        part
        for pause in pauses(audio.to_mono(out), sample_rate, _MIN_PAUSE_S)
        for part in _outside(pause, speech)
    ]


def speech_spans(out: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
    """Sample ranges of speech as the silence remover finds it, widened by its cut guard.

    Args:
        out: ``float32 (channels, samples)``.
        sample_rate: Its rate in Hz.

    Returns:
        ``(start, end)`` sample ranges, possibly reaching past either end of ``out``.
    """
    from engine.backends.cpu.vad import CUT_GUARD_S, SilenceRemover  # Silero on first use

    guard = round(CUT_GUARD_S * sample_rate)
    return [(a - guard, b + guard) for a, b in SilenceRemover().speech_samples(out, sample_rate)]


def _shorten_pauses(
    out: np.ndarray, sample_rate: int, excess: int, spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Removes up to ``excess`` samples from the pauses, those nearest ``spans`` first.

    Each pause keeps ``_MIN_PAUSE_S``, half on each side, and loses the middle (joined with
    a 10 ms cross-fade); the added sound itself is never cut.
    """
    keep = round(_MIN_PAUSE_S * sample_rate)
    fade = round(_JOIN_FADE_S * sample_rate)
    candidates = sorted(
        (min(a - e if a >= e else s - b for s, e in spans), a, b)
        for pause in _silences(out, sample_rate)
        for a, b in _outside(pause, spans)
    )
    cuts = []
    for _nearness, a, b in candidates:
        if excess <= 0:
            break
        take = min(b - a - keep, excess)
        if take > fade:
            cuts.append(((a + b) // 2 - take // 2, take))
            excess -= take
    pieces, previous = [], 0
    for start, take in sorted(cuts):
        # The piece ends `fade` samples into the removed stretch, which the cross-fade
        # overlaps with the next piece: each cut shortens the audio by exactly `take`.
        pieces.append(out[:, previous : start + fade])
        previous = start + take
    pieces.append(out[:, previous:])
    return audio.crossfade_concat(pieces, fade)


def fit_duration(
    out: np.ndarray, sample_rate: int, length: int, spans: Sequence[tuple[int, int]] = ()
) -> tuple[np.ndarray, float]:
    """Fits ``(channels, samples)`` audio to exactly ``length`` samples.

    A result longer than ``length`` with added sound (``spans``, sample ranges) first loses
    pause (down to ``_MIN_PAUSE_S`` per pause, those nearest the sound first); whatever
    difference remains is time-scaled with Rubber Band, which keeps pitch and formants (the
    CPU backend's speed change: F0 within 0.5 %, speaker similarity 0.97 at x0.8).

    Returns:
        The fitted audio and the time-scale factor used: the duration after the time-scale
        over the duration before it (1.0 when none was needed, < 1 when compressed).
    """
    if out.shape[-1] > length and spans:
        out = _shorten_pauses(out, sample_rate, out.shape[-1] - length, spans)
    if out.shape[-1] == length:
        return out, 1.0
    from engine.backends.cpu.speed import change_speed  # pedalboard loads on first use

    factor = length / out.shape[-1]
    return change_speed(out, sample_rate, 1 / factor), factor
