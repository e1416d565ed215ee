"""Long takes: split at pauses into segments a model edits well, each edited, stitched back
in the pauses.

A model trained on short clips (Step-Audio-EditX: under 30 s) edits a longer take in
segments. Each cut lies in the middle of a pause (``engine.dsp.pauses``) that no word spans,
chosen so that the segments come out about equally long; each segment carries the words
whose middle lies in it. The edited segments are joined with equal-power cross-fades that
lie in the quiet ends of the pieces, so a join is a fade between two pauses, not a seam.
``LongTake`` renders an edit that way; how one piece is rendered (passes, guard) is the
caller's (``engine.pipeline``).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine import audio
from engine.backends.base import Progress, Rendered, scaled_progress
from engine.dsp import frame_rms_db, pauses
from engine.edits import EditSpec
from engine.errors import EditError
from engine.keep_length import fit_to_source, speech_spans
from engine.text.transcript import Word, join_words

__all__ = ["LongTake", "PieceRenderer", "Segment", "needs_segments", "plan_segments", "stitch"]

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


# Renders an edit of one piece of a take (``float32 (channels, samples)`` at the take's rate):
# its result and its earlier passes decoded (``EditSpec.decode_passes``; else none).
PieceRenderer = Callable[[np.ndarray, EditSpec, Progress], tuple[Rendered, list[Rendered]]]


def needs_segments(duration: float, edit: EditSpec, max_seconds: float) -> bool:
    """Whether a slice of ``duration`` seconds is longer than ``max_seconds``: edited in
    segments, or for clone (new text in the slice's voice) cut to its first segment, its
    voice prompt.

    Raises:
        EditError: for a paralinguistic ``target_text`` on such a slice (its tags cannot be
            shared out among the segments; ``option`` and ``position`` can).
    """
    if duration <= max_seconds:
        return False
    if edit.type == "paralinguistic" and not edit.option:
        raise EditError(
            f"the slice ({duration:.1f} s) is edited in segments of at most "
            f"{max_seconds:g} s, which cannot share out a target_text: send "
            "'option' and 'position' instead, or a shorter slice"
        )
    return True


@dataclass(frozen=True)
class LongTake:
    """A slice longer than a model edits in one piece, and how one piece is rendered.

    Attributes:
        samples: ``float32 (channels, samples)``.
        sample_rate: Their rate in Hz.
        max_seconds: Longest piece edited at once.
        render_piece: Renders an edit of one piece (the backend's passes, checked).
    """

    samples: np.ndarray
    sample_rate: int
    max_seconds: float
    render_piece: PieceRenderer

    def render(self, edit: EditSpec, progress: Progress) -> tuple[Rendered, list[Rendered]]:
        """Renders ``edit``: per segment, or for clone on the first segment only.

        Args:
            edit: The edit, with the slice's words in ``transcript`` when known (they give
                each segment its text).
            progress: Receives (fraction 0..1, stage); raises ``JobCancelled`` to stop.

        Returns:
            The result and its earlier passes as ``render_piece`` decoded them (stitched
            pass by pass, an unedited segment as it is in each).
        """
        if edit.type == "clone":
            return self._clone_from_first_segment(edit, progress)
        return self._run_segments(edit, progress)

    def _plan(self, edit: EditSpec) -> list[Segment]:
        words = edit.transcript.words if edit.transcript is not None else ()
        speech = speech_spans(self.samples, self.sample_rate)
        return plan_segments(self.samples, self.sample_rate, self.max_seconds, words, speech)

    def _run_segments(self, edit: EditSpec, progress: Progress) -> tuple[Rendered, list[Rendered]]:
        """Edits the slice in segments cut at pauses (outside its words and, where it can,
        outside the speech the silence remover finds) and stitches them in the pauses.

        Each segment is edited with its own words (and its insertion positions; a
        paralinguistic segment without one is kept as it is) and fitted to its own loudness.
        The result's ``info["segments"]`` holds, per segment, its ``start`` and ``end`` in
        the slice, ``output_start`` (where it begins in the result, before ``keep_length``)
        and the backend's fields for it; the stage names say which segment is running.
        """
        samples, rate = self.samples, self.sample_rate
        segments = self._plan(edit)
        count = len(segments)
        ceiling = audio.peak_ceiling_db(samples)
        # Per segment: its result, then its earlier passes, each fitted to its loudness.
        pieces: list[list[np.ndarray]] = []
        reports: list[dict[str, Any]] = []
        for index, segment in enumerate(segments):
            part = samples[:, segment.start : segment.end]
            step = _segment_progress(progress, index, count)
            step(0.0, "segment")
            sub = _segment_edit(edit, segment, rate, last=index == count - 1)
            report: dict[str, Any] = {
                "start": round(segment.start / rate, 3),
                "end": round(segment.end / rate, 3),
            }
            if sub is None:
                pieces.append([part])
                reports.append({**report, "edited": False})
                continue
            rendered, earlier = self.render_piece(part, sub, step)
            loudness = audio.integrated_loudness(part, rate)
            fitted = [
                fit_to_source(r, rate, samples.shape[0], loudness, ceiling)
                for r in (rendered, *earlier)
            ]
            pieces.append(fitted)
            reports.append({**report, **rendered.info})
        rendered, starts = self._joined([p[0] for p in pieces])
        for report, start in zip(reports, [0, *starts], strict=True):
            report["output_start"] = round(start / rate, 3)
        rendered.info = {"segments": reports}
        earlier = [
            self._joined([p[k] if len(p) > k else p[0] for p in pieces])[0]
            for k in range(1, max(len(p) for p in pieces))
        ]
        return rendered, earlier

    def _joined(self, pieces: list[np.ndarray]) -> tuple[Rendered, list[int]]:
        """The pieces stitched (see ``stitch``), keeping their own loudness: reported as the
        change against the take."""
        out, starts = stitch(pieces, self.sample_rate)
        change = audio.integrated_loudness(out, self.sample_rate) - audio.integrated_loudness(
            self.samples, self.sample_rate
        )
        offset = change if np.isfinite(change) else 0.0
        return Rendered(out, self.sample_rate, float(offset)), starts

    def _clone_from_first_segment(
        self, edit: EditSpec, progress: Progress
    ) -> tuple[Rendered, list[Rendered]]:
        """Clones in the voice of the slice's first segment, with its words: a voice prompt
        as long as the model edits well (the official guidance: under 30 s). The result's
        ``info["voice_prompt"]`` gives its ``start`` and ``end`` in the slice."""
        first = self._plan(edit)[0]
        prompt = self.samples[:, : first.end]
        sub = replace(edit, text=first.text, transcript=None)
        rendered, earlier = self.render_piece(prompt, sub, progress)
        voice = {"start": 0.0, "end": round(first.end / self.sample_rate, 3)}
        rendered.info = {**rendered.info, "voice_prompt": voice}
        return rendered, earlier


def _segment_progress(progress: Progress, index: int, count: int) -> Progress:
    """Segment ``index``'s share of the bar, its stages named ``"<stage> <n>/<count>"``."""
    share = scaled_progress(progress, index / count, (index + 1) / count)
    return lambda f, stage: share(f, f"{stage} {index + 1}/{count}")


def _segment_edit(
    edit: EditSpec, segment: Segment, sample_rate: int, last: bool
) -> EditSpec | None:
    """The edit of one segment: its words, its insertion positions (in segment time); ``None``
    for a paralinguistic segment without an insertion (it stays as it is)."""
    start, end = segment.start / sample_rate, segment.end / sample_rate
    positions = tuple(p - start for p in edit.positions if start <= p < end or (last and p == end))
    if edit.type == "paralinguistic" and not positions:
        return None
    return replace(edit, text=segment.text, positions=positions, transcript=None)
