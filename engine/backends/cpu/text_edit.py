"""Text edits on the CPU: a word plan (``engine.text.diff``) rendered as cuts, masks, splices
and tags at word boundaries.

Every boundary between two words gets a *gap*: its cut point, the quietest 5 ms frame within
50 ms of the aligned boundary (so a tag lands within 50 ms of it), and the pause around it,
the quiet frames on either side of the cut (quiet as in ``analysis``: under the higher of
30 dB below the loud frames and 10 dB above the floor), reaching at most 80 ms (and never
past the middle) into either word.

- A kept stretch runs from gap to gap. Where words go, the two stretches meet in their
  pauses: deleted words leave the longer of the two pauses there (never their sum), fillers
  the shorter one, at most the speaker's median pause, so their hesitation goes too. The
  join is a 10 ms equal-power cross-fade of quiet audio, never louder than the speech
  around it.
- Masked words are overwritten from the end of the pause before them to the start of the
  pause after them (the length stays exact): room tone (the take's quietest 0.25 s, looped
  with cross-fades), silence, or a 1 kHz tone at the take's speech loudness; 5 ms
  equal-power ramps at both ends.
- Moved or reused words are copied from where they were said, gap to gap, and spliced in
  like any other stretch.
- Tags are synthesised in the speaker's voice (``nonverbal``) and spliced at the cut point,
  faded against silence so the sound itself is untouched.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from engine.audio import crossfade_concat, integrated_loudness, match_loudness, resample, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.cpu.analysis import analyse
from engine.backends.cpu.nonverbal import SOUNDS, VoiceSample, synthesise
from engine.dsp import frame_rms_db
from engine.edits import MASK_SOUNDS, EditSpec
from engine.errors import BackendError, EditError, UnsupportedEditError
from engine.text.diff import Step, TextPlan, Unit, plan_fillers, plan_text
from engine.text.transcript import Transcript

__all__ = ["render_fillers", "render_text"]

_LOG = logging.getLogger(__name__)

_HOP_S = 0.005
# A cut lies within this of the aligned boundary (the bound for tags).
_SNAP_S = 0.050
# A pause never reaches further than this into a word (nor past the word's middle).
_WORD_GUARD_S = 0.080
# Quiet: this far under the loud frames (95th percentile), or this near the floor (5th).
_QUIET_BELOW_LOUD_DB, _QUIET_ABOVE_FLOOR_DB = 30.0, 10.0
# Silences shorter than this are not pauses (stop closures) when taking the median pause.
_MIN_PAUSE_S = 0.04
_FADE_S = 0.010
_RAMP_S = 0.005
_ROOM_TONE_S = 0.25
_BLEEP_HZ = 1000.0
# Nonverbal sounds are analysed and synthesised at most at this rate.
_VOICE_RATE_CAP = 32000
# Seconds of the take on each side of a tag whose loudness the tag is matched against.
_TAG_CONTEXT_S = 1.5


def _transcript(edit: EditSpec) -> Transcript:
    if edit.transcript is None:
        raise BackendError(
            f"a {edit.type} edit reached the cpu backend without the slice's words; the engine "
            "must transcribe the slice and set EditSpec.transcript before rendering"
        )
    return edit.transcript


def _new_words_error(words: tuple[str, ...]) -> UnsupportedEditError:
    """Names the registered backends that can say words in the speaker's voice (clone)."""
    from engine.backends import BACKEND_NAMES, backend_class
    from engine.capabilities import renders

    saying = EditSpec("clone", target_text=" ".join(words))
    able = [n for n in BACKEND_NAMES if n != "cpu" and renders(backend_class(n), saying)]
    where = (
        f"backends that can say them in the speaker's voice: {', '.join(able)}"
        if able
        else "no installed backend can say new words yet"
    )
    quoted = ", ".join(repr(w) for w in words)
    return UnsupportedEditError(
        f"the cpu backend cannot say new words ({quoted}): it cuts, moves and masks only words "
        f"the take holds; {where}"
    )


def render_text(
    audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """Renders a ``text`` edit: ``edit.target_text`` against ``edit.transcript``.

    Raises:
        BackendError: when the engine did not supply the transcript.
        UnsupportedEditError: for words the take does not hold, naming the backends that
            can say them.
        EditError: for a target text that leaves nothing, or bad brackets.
    """
    transcript = _transcript(edit)
    if not transcript.words:
        raise EditError("no words were found in the slice, so there is nothing to edit as text")
    plan = plan_text(transcript, edit.target_text, edit.text)
    if plan.new_words:
        raise _new_words_error(plan.new_words)
    return _render_plan(
        audio, sample_rate, plan, progress, mask_sound=edit.option or MASK_SOUNDS[0]
    )


def render_fillers(
    audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """Renders a ``fillers`` edit: words marked as fillers, and words of ``edit.fillers`` (by
    default the language's list), go with their hesitation pauses.

    Raises:
        BackendError: when the engine did not supply the transcript.
    """
    plan = plan_fillers(_transcript(edit), edit.language, edit.fillers)
    if not plan.deleted:
        return _unchanged(audio, sample_rate, plan)
    return _render_plan(audio, sample_rate, plan, progress, hesitation=True)


@dataclass(frozen=True)
class _Gap:
    """The quiet at one word boundary (seconds in the input): the pause and its cut point."""

    start: float
    cut: float
    end: float

    @property
    def width(self) -> float:
        return self.end - self.start


class _Take:
    """Frame levels of a take and the gap at every boundary of its units.

    ``gap(k)`` is the boundary after unit ``k``; ``gap(-1)`` is the silence before the first
    word and ``gap(n - 1)`` the silence after the last.
    """

    def __init__(self, mono: np.ndarray, sample_rate: int, units: tuple[Unit, ...]) -> None:
        self.rate = sample_rate
        self.duration = len(mono) / sample_rate
        self.levels = frame_rms_db(mono, sample_rate, hop=_HOP_S, window=0.02)
        floor, loud = np.percentile(self.levels, [5, 95])
        self.quiet = self.levels < max(loud - _QUIET_BELOW_LOUD_DB, floor + _QUIET_ABOVE_FLOOR_DB)
        self.units = units
        self._gaps = [self._find_gap(k) for k in range(-1, len(units))]
        widths = [g.width for g in self._gaps[1:-1] if g.width >= _MIN_PAUSE_S]
        self.median_pause = float(np.median(widths)) if widths else 0.0

    def gap(self, k: int) -> _Gap:
        return self._gaps[k + 1]

    def _frame(self, t: float) -> int:
        return min(max(round(t / _HOP_S), 0), len(self.levels) - 1)

    def _find_gap(self, k: int) -> _Gap:
        units, n = self.units, len(self.units)
        left = units[k] if k >= 0 else None
        right = units[k + 1] if k + 1 < n else None
        lo = left.start + min(_WORD_GUARD_S, (left.end - left.start) / 2) if left else 0.0
        hi = self.duration
        if right is not None:
            hi = max(right.end - min(_WORD_GUARD_S, (right.end - right.start) / 2), lo)
        if left is None:
            cut = 0.0
        elif right is None:
            cut = self.duration
        else:
            a, b = left.end, right.start
            if a > b:
                a = b = (a + b) / 2
            cut = self._quietest(max(a - _SNAP_S, lo), min(b + _SNAP_S, hi), (a + b) / 2)
        first = last = self._frame(cut)
        if self.quiet[first]:
            while first > self._frame(lo) and self.quiet[first - 1]:
                first -= 1
            while last < self._frame(hi) and self.quiet[last + 1]:
                last += 1
            start, end = first * _HOP_S, min(last * _HOP_S, self.duration)
        else:
            start = end = cut
        if left is None:
            start = 0.0
        if right is None:
            end = self.duration
        return _Gap(min(start, cut), cut, max(end, cut))

    def _quietest(self, lo: float, hi: float, target: float) -> float:
        """Among the frames in ``[lo, hi]`` within 3 dB of the quietest, the one nearest
        ``target`` (``low_energy_point``'s rule on a one-sided window)."""
        if hi < lo:
            return min(max(target, hi), lo)
        frames = np.arange(self._frame(lo), self._frame(hi) + 1)
        levels = self.levels[frames]
        candidates = frames[levels <= levels.min() + 3.0]
        best = candidates[np.argmin(np.abs(candidates * _HOP_S - target))]
        return float(min(max(best * _HOP_S, lo), hi))


@dataclass
class _Piece:
    """A stretch of the input, contiguous in its units, placed in the output."""

    steps: list[Step]
    left: float = 0.0
    right: float = 0.0

    @property
    def first(self) -> int:
        assert self.steps[0].unit is not None
        return self.steps[0].unit

    @property
    def last(self) -> int:
        assert self.steps[-1].unit is not None
        return self.steps[-1].unit


@dataclass
class _Layout:
    """The output in order: pieces of the input and tags (by name)."""

    items: list[_Piece | str] = field(default_factory=list)

    @property
    def pieces(self) -> list[_Piece]:
        return [item for item in self.items if isinstance(item, _Piece)]


def _pause(left: float, right: float, median: float, hesitation: bool) -> float:
    """The pause left where words were cut out, between pauses ``left`` and ``right`` (s).

    Words deleted from a text leave the longer of the two pauses (a sentence's end keeps
    its pause, and the two pauses never add up). Fillers take their hesitation with them:
    the shorter of the two is left, at most the speaker's median pause.
    """
    if hesitation:
        return min(left, right, median)
    return max(left, right)


def _layout(plan: TextPlan, take: _Take, hesitation: bool) -> _Layout:
    """Groups the plan's steps into pieces and places each piece's edges in a gap."""
    layout = _Layout()
    for step in plan.steps:
        last = layout.items[-1] if layout.items else None
        if step.action == "inserted":
            layout.items.append(step.text)
        elif isinstance(last, _Piece) and step.unit == last.last + 1:
            last.steps.append(step)
        else:
            layout.items.append(_Piece([step]))
    pieces = layout.pieces
    if not pieces:
        raise EditError("the edit removes every word of the take; nothing would remain")
    n = len(plan.units)
    head, tail = pieces[0], pieces[-1]
    lead, trail = take.gap(-1).width, take.gap(n - 1).width
    before = take.gap(head.first - 1)
    head.left = 0.0 if head.first == 0 else before.end - min(before.width, lead)
    after = take.gap(tail.last)
    tail.right = take.duration if tail.last == n - 1 else after.start + min(after.width, trail)
    fade = _FADE_S
    for p, q in pairwise(pieces):
        end, start = take.gap(p.last), take.gap(q.first - 1)
        if q.first == p.last + 1:  # split by a tag only
            p.right = q.left = end.cut
            continue
        budget = _pause(end.width, start.width, take.median_pause, hesitation) + fade
        right_part = min(start.width, budget / 2)
        left_part = min(end.width, budget - right_part)
        right_part = min(start.width, budget - left_part)
        p.right, q.left = end.start + left_part, start.end - right_part
    return layout


def _room_tone(audio: np.ndarray, take: _Take, length: int) -> np.ndarray:
    """``length`` samples of the take's quietest stretch, looped with cross-fades."""
    frames = max(1, min(round(_ROOM_TONE_S / _HOP_S), len(take.levels)))
    power = np.convolve(10 ** (take.levels / 10), np.ones(frames), mode="valid")
    start = int(np.argmin(power)) * round(_HOP_S * take.rate)
    stretch = audio[:, start : start + round(_ROOM_TONE_S * take.rate)]
    if stretch.shape[-1] < 4:
        return np.zeros((audio.shape[0], length), dtype=np.float32)
    fade = min(round(_FADE_S * take.rate), stretch.shape[-1] // 4)
    out, k = stretch, 1
    while out.shape[-1] < length:  # forwards and backwards in turn: no audible loop
        out = crossfade_concat([out, stretch[:, ::-1] if k % 2 else stretch], fade)
        k += 1
    return out[:, :length]


def _bleep(channels: int, length: int, rate: int, loudness: float) -> np.ndarray:
    tone = np.sin(2 * np.pi * _BLEEP_HZ * np.arange(length) / rate).astype(np.float32)
    tone = np.tile(tone, (channels, 1))
    if math.isfinite(loudness) and length:
        tone = match_loudness(tone, rate, loudness)
    return tone


def _mask(piece: np.ndarray, start: int, end: int, fill: np.ndarray, ramp: int) -> None:
    """Overwrites ``piece[:, start:end]`` with ``fill``, with equal-power ramps inside."""
    ramp = min(ramp, (end - start) // 4)
    original = piece[:, start:end].copy()
    piece[:, start:end] = fill
    if ramp > 0:
        w = np.sin(np.linspace(0.0, np.pi / 2, ramp, dtype=np.float32))
        piece[:, start : start + ramp] = original[:, :ramp] * w[::-1] + fill[:, :ramp] * w
        piece[:, end - ramp : end] = original[:, -ramp:] * w + fill[:, -ramp:] * w[::-1]


def _masked_runs(piece: _Piece) -> list[tuple[int, int]]:
    """First and last unit of each run of masked units in a piece."""
    runs: list[tuple[int, int]] = []
    for step in piece.steps:
        masked = step.action == "masked" or (step.action == "moved" and step.masked)
        if masked and step.unit is not None:
            if runs and runs[-1][1] == step.unit - 1:
                runs[-1] = (runs[-1][0], step.unit)
            else:
                runs.append((step.unit, step.unit))
    return runs


class _Voice:
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
        centre, reach = round(at * self._rate), round(_TAG_CONTEXT_S * self._rate)
        context = self._mono[max(0, centre - reach) : centre + reach]
        target = integrated_loudness(context[np.newaxis, :], self._rate) + SOUNDS[tag][1]
        sound = match_loudness(sound[np.newaxis, :], self._rate, target)[0]
        return np.tile(sound, (channels, 1))


def _piece_audio(
    audio: np.ndarray, piece: _Piece, take: _Take, mask_sound: str, speech_loudness: float
) -> np.ndarray:
    """A piece's samples, its masked words overwritten (from the end of the pause before
    them to the start of the pause after them)."""
    rate, channels = take.rate, audio.shape[0]
    a = round(piece.left * rate)
    b = max(round(piece.right * rate), a + 1)
    out = audio[:, a:b].copy()
    for first, last in _masked_runs(piece):
        m0 = min(max(round(take.gap(first - 1).end * rate) - a, 0), b - a)
        m1 = min(max(round(take.gap(last).start * rate) - a, m0), b - a)
        if mask_sound == "silence":
            fill = np.zeros((channels, m1 - m0), dtype=np.float32)
        elif mask_sound == "bleep":
            fill = _bleep(channels, m1 - m0, rate, speech_loudness)
        else:
            fill = _room_tone(audio, take, m1 - m0)
        _mask(out, m0, m1, fill, round(_RAMP_S * rate))
    return out


def _entry(
    text: str, action: str, start: float, end: float, unit: Unit | None = None
) -> dict[str, Any]:
    """One element of ``info["words"]``: output times (s), and input times from ``unit``."""
    entry: dict[str, Any] = {
        "word": text,
        "action": action,
        "start": round(float(start), 3),
        "end": round(float(end), 3),
    }
    if unit is not None:
        entry["from_start"] = round(float(unit.start), 3)
        entry["from_end"] = round(float(unit.end), 3)
    return entry


def _unchanged(audio: np.ndarray, sample_rate: int, plan: TextPlan) -> Rendered:
    """The take as it is, with its words reported as kept."""
    words = [_entry(u.text, "kept", u.start, u.end, u) for u in plan.units]
    return Rendered(np.array(audio, dtype=np.float32), sample_rate, info={"words": words})


def _render_plan(
    audio: np.ndarray,
    sample_rate: int,
    plan: TextPlan,
    progress: Progress,
    mask_sound: str = MASK_SOUNDS[0],
    hesitation: bool = False,
) -> Rendered:
    progress(0.0, "analysis")
    audio = np.asarray(audio, dtype=np.float32)
    mono = to_mono(audio)
    take = _Take(mono, sample_rate, plan.units)
    layout = _layout(plan, take, hesitation)
    progress(0.3, "splice")
    rate, channels = sample_rate, audio.shape[0]
    fade, ramp = round(_FADE_S * rate), round(_RAMP_S * rate)
    speech_loudness = integrated_loudness(audio, rate)
    voice = _Voice(mono, rate)
    arrays: list[np.ndarray] = []
    places: list[tuple[_Piece | str, int]] = []  # each item and its first sample in the input
    for k, item in enumerate(layout.items):
        if isinstance(item, str):
            earlier = [i for i in layout.items[:k] if isinstance(i, _Piece)]
            at = earlier[-1].right if earlier else 0.0
            sound = voice.sound(item, at, channels)
            arrays.append(np.pad(sound, ((0, 0), (fade, fade))))
            places.append((item, 0))
            continue
        a = round(item.left * rate)
        piece = _piece_audio(audio, item, take, mask_sound, speech_loudness)
        if k == 0 and a > 0:
            piece[:, :ramp] *= np.linspace(0.0, 1.0, min(ramp, piece.shape[-1]))
        if k == len(layout.items) - 1 and a + piece.shape[-1] < audio.shape[-1]:
            r = min(ramp, piece.shape[-1])
            piece[:, piece.shape[-1] - r :] *= np.linspace(1.0, 0.0, r)
        arrays.append(piece)
        places.append((item, a))
    out = crossfade_concat(arrays, fade)
    progress(0.9, "splice")
    offsets, length = [], 0
    for k, array in enumerate(arrays):
        overlap = min(fade, length, array.shape[-1]) if k else 0
        offsets.append(length - overlap)
        length = offsets[-1] + array.shape[-1]
    words = _word_report(plan, places, offsets, arrays, fade, rate)
    change = integrated_loudness(out, rate) - speech_loudness
    info: dict[str, Any] = {"words": words}
    if plan.mismatch:
        info["text_mismatch"] = [
            {"client": m.client, "engine": m.engine, "at": round(m.at, 3)} for m in plan.mismatch
        ]
    _LOG.debug("text edit: %d pieces, %.2f s -> %.2f s", len(arrays), take.duration, length / rate)
    progress(1.0, "splice")
    return Rendered(
        out, rate, loudness_offset_db=change if math.isfinite(change) else 0.0, info=info
    )


def _word_report(
    plan: TextPlan,
    places: list[tuple[_Piece | str, int]],
    offsets: list[int],
    arrays: list[np.ndarray],
    fade: int,
    rate: int,
) -> list[dict[str, Any]]:
    """``info["words"]`` as docs/protocol.md describes it, in output order."""
    in_place = sorted(
        s.unit for s in plan.steps if s.action in ("kept", "masked") and s.unit is not None
    )
    after: dict[int, list[int]] = {}  # deleted units by the in-place unit before them
    for d in plan.deleted:
        anchor = max((u for u in in_place if u < d), default=-1)
        after.setdefault(anchor, []).append(d)
    total = offsets[-1] + arrays[-1].shape[-1]

    def seconds(sample: float) -> float:
        return min(max(sample, 0.0), total) / rate

    def removed(units: list[int], at: float) -> list[dict[str, Any]]:
        return [
            _entry(plan.units[d].text, "deleted", seconds(at), seconds(at), plan.units[d])
            for d in units
        ]

    words = removed(after.get(-1, []), 0)
    for (item, first), offset, array in zip(places, offsets, arrays, strict=True):
        if isinstance(item, str):
            start, stop = seconds(offset + fade), seconds(offset + array.shape[-1] - fade)
            words.append(_entry(f"[{item}]", "inserted", start, stop))
            continue
        end = offset + array.shape[-1]
        for step in item.steps:
            assert step.unit is not None
            unit = plan.units[step.unit]
            start = seconds(min(max(offset + unit.start * rate - first, offset), end))
            stop = seconds(min(max(offset + unit.end * rate - first, offset), end))
            words.append(_entry(unit.text, step.action, start, stop, unit))
        if item.steps[-1].action in ("kept", "masked"):
            words += removed(after.get(item.last, []), end - fade / 2)
    return words
