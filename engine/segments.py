"""Long takes: split at pauses into segments a model edits well, stitched back in the pauses.

A model trained on short clips (Step-Audio-EditX: under 30 s) edits a longer take in
segments. Each cut lies in the middle of a pause (``engine.dsp.pauses``) that no word spans,
chosen so that the segments come out about equally long; each segment carries the words
whose middle lies in it. The edited segments are joined with equal-power cross-fades that
lie in the quiet ends of the pieces, so a join is a fade between two pauses, not a seam.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import audio
from engine.dsp import frame_rms_db, pauses
from engine.text.transcript import Word, join_words

__all__ = ["Segment", "plan_segments", "stitch"]

_LOG = logging.getLogger(__name__)

# Pauses a cut may lie in.
_MIN_PAUSE_S = 0.1
# Shortest segment a cut may leave (the model needs some speech to edit).
_MIN_SEGMENT_S = 2.0
# Score of a pause: seconds from the ideal cut, less this many per second of pause (a long
# pause a little off the ideal beats a short one on it).
_PAUSE_WEIGHT = 5.0
# Cross-fade at a join: as long as the quiet ends of both pieces allow, within these bounds.
_MIN_FADE_S, _MAX_FADE_S = 0.005, 0.1


@dataclass(frozen=True)
class Segment:
    """One part of a long take.

    Attributes:
        start: First sample in the take.
        end: Sample after the last.
        text: The words whose middle lies in ``[start, end)``, joined.
    """

    start: int
    end: int
    text: str = ""


def plan_segments(
    samples: np.ndarray,
    sample_rate: int,
    max_seconds: float,
    words: Sequence[Word] = (),
    speech: Sequence[tuple[int, int]] = (),
) -> list[Segment]:
    """Splits a take into segments of at most ``max_seconds``, cut in pauses.

    Each cut is the middle of a pause of at least 0.1 s that no word of ``words`` spans and
    that lies outside ``speech``, picked near the point that would make the remaining
    segments equally long. Where a stretch of ``max_seconds`` holds no such pause, a pause
    inside ``speech`` is taken, else the stretch's quietest 10 ms in its second half (both
    logged).

    Args:
        samples: ``(channels, samples)`` or mono audio.
        sample_rate: Its rate in Hz.
        max_seconds: Longest segment.
        words: The take's words with times, when known; they give each segment its text.
        speech: Sample ranges of speech (a voice activity detector's), when known: the
            level alone takes a quiet word ending for a pause.

    Returns:
        The segments in order, covering the take; one when it is short enough.

    Raises:
        ValueError: for ``max_seconds`` under 1.
    """
    if max_seconds < 1:
        raise ValueError(f"segments must be allowed 1 s or more, got {max_seconds} s")
    mono = audio.to_mono(np.atleast_2d(samples))
    total = mono.shape[-1]
    longest = math.floor(max_seconds * sample_rate)
    spans = [(round(w.start * sample_rate), round(w.end * sample_rate)) for w in words]
    # (middle, seconds) of each pause no word spans; those outside the speech come first
    loose = [
        ((a + b) // 2, (b - a) / sample_rate)
        for a, b in pauses(mono, sample_rate, _MIN_PAUSE_S)
        if not any(s < (a + b) // 2 < e for s, e in spans)
    ]
    strict = [c for c in loose if not any(s <= c[0] < e for s, e in speech)]
    shortest = min(round(_MIN_SEGMENT_S * sample_rate), longest // 2)
    cuts: list[int] = []
    start = 0
    while total - start > longest:
        left = total - start
        ideal = start + left / math.ceil(left / longest)
        window = (start + shortest, start + longest)
        outside = _within(strict, window)
        fitting = outside or _within(loose, window)
        if fitting:
            if not outside:
                _LOG.info("a segment is cut in a pause the voice detector took for speech")
            # distance from the ideal cut less the pause's length, weighted
            cut = min(
                fitting, key=lambda c: abs(c[0] - ideal) / sample_rate - _PAUSE_WEIGHT * c[1]
            )[0]
        else:
            cut = _quietest(mono, sample_rate, start + longest // 2, start + longest)
            _LOG.warning(
                "no pause between %.1f s and %.1f s: a segment is cut at its quietest point",
                start / sample_rate,
                (start + longest) / sample_rate,
            )
        cuts.append(cut)
        start = cut
    bounds = [0, *cuts, total]
    return [
        Segment(a, b, _text_between(words, a / sample_rate, b / sample_rate))
        for a, b in itertools.pairwise(bounds)
    ]


def _within(
    candidates: Sequence[tuple[int, float]], window: tuple[int, int]
) -> list[tuple[int, float]]:
    return [c for c in candidates if window[0] <= c[0] <= window[1]]


def _quietest(mono: np.ndarray, sample_rate: int, lo: int, hi: int) -> int:
    """The middle of the quietest 10 ms frame of ``mono[lo:hi]``."""
    hop = 0.01
    level = frame_rms_db(mono[lo:hi], sample_rate, hop=hop, window=hop)
    return lo + int(np.argmin(level)) * round(hop * sample_rate)


def _text_between(words: Sequence[Word], start: float, end: float) -> str:
    return join_words(w.text for w in words if start <= (w.start + w.end) / 2 < end)


def stitch(pieces: Sequence[np.ndarray], sample_rate: int) -> tuple[np.ndarray, list[int]]:
    """Joins edited segments, each cross-fade lying in the quiet ends of the two pieces.

    A fade lasts as long as the shorter of the quiet run ending one piece and the quiet run
    starting the next, between 5 and 100 ms (a piece that ends in sound gets the 5 ms).

    Args:
        pieces: ``float32 (channels, samples)`` pieces at one rate and channel count.
        sample_rate: Their rate in Hz.

    Returns:
        The joined audio and the sample of the result where each piece after the first
        begins (the start of its cross-fade).
    """
    parts: list[np.ndarray] = []
    starts: list[int] = []
    position = 0  # samples in ``parts``
    carry = np.asarray(pieces[0], dtype=np.float32)  # what is left of the previous piece
    for before, piece in itertools.pairwise(pieces):
        piece = np.asarray(piece, dtype=np.float32)
        quiet = min(_quiet_end(before, sample_rate, last=True), _quiet_end(piece, sample_rate))
        fade = round(min(max(quiet, _MIN_FADE_S), _MAX_FADE_S) * sample_rate)
        fade = min(fade, carry.shape[-1], piece.shape[-1])
        parts.append(carry[:, : carry.shape[-1] - fade])
        position += parts[-1].shape[-1]
        starts.append(position)
        parts.append(
            audio.crossfade_concat([carry[:, carry.shape[-1] - fade :], piece[:, :fade]], fade)
        )
        position += fade
        carry = piece[:, fade:]
    parts.append(carry)
    return np.concatenate(parts, axis=-1), starts


def _quiet_end(piece: np.ndarray, sample_rate: int, last: bool = False) -> float:
    """Seconds of pause at the start of ``piece`` (or at its end, with ``last``), judged
    against the piece's own levels."""
    mono = audio.to_mono(piece)
    for a, b in pauses(mono, sample_rate, 0.0):
        if (b == len(mono)) if last else (a == 0):
            return (b - a) / sample_rate
    return 0.0
