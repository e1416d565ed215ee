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
- New words need a backend that can say them (a :class:`Say`). Each run of new words is
  re-said with the smallest span of whole words around it (in Mandarin, the rest of a word
  the change cuts into), in the voice of the take itself (at most 30 s around the span, the
  official guidance for clone prompts, with its transcript); the result is trimmed of its
  silence, moved to the median F0 of the neighbouring words (Praat PSOLA) and to their
  loudness, and spliced where the replaced words were: from the end of the pause before them
  to the start of the pause after them (for words only added, at the cut point between two
  words), so the take's own pauses stay.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
import parselmouth

from engine.audio import crossfade_concat, integrated_loudness, match_loudness, resample, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.cpu.analysis import analyse
from engine.backends.cpu.nonverbal import SOUNDS, VoiceSample, synthesise
from engine.backends.cpu.synthesis import psola_render
from engine.backends.cpu.targets import RenderPlan
from engine.dsp import frame_rms_db, runs
from engine.edits import MASK_SOUNDS, EditSpec
from engine.errors import BackendError, EditError, UnsupportedEditError
from engine.text.diff import Step, TextPlan, Unit, normalise, plan_fillers, plan_text
from engine.text.transcript import Transcript, join_words

__all__ = ["Say", "render_fillers", "render_text", "render_words"]

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
# Seconds of the take on each side of a tag or a re-said span whose loudness (and, for
# re-said words, median F0) it is matched to.
_CONTEXT_S = 1.5
# Longest clone prompt: the official README's advice (spec step-audio-editx.md §2.3).
_PROMPT_MAX_S = 30.0
# Said audio keeps this much of its own quiet around the speech when trimmed; it is silent
# when its loud frames are under _SILENT_DB, and steady when they are within _STEADY_DB of
# its floor.
_SAID_MARGIN_S = 0.02
_SILENT_DB, _STEADY_DB = -90.0, 6.0
# Median F0 of said words is moved to the neighbours' when it is further off than this
# (semitones), by at most _MAX_SHIFT_ST.
_F0_TOLERANCE_ST, _MAX_SHIFT_ST = 0.5, 12.0
# Praat PSOLA runs at most at this rate.
_PSOLA_MAX_RATE = 48000
# Share of the progress bar for the analysis, then saying new words, then splicing.
_SAY_START, _SAY_END = 0.1, 0.85


class Say(Protocol):
    """A backend's voice: says words in the voice of a prompt (clone).

    Args:
        text: What to say: the words as the target text writes them (pinyin as written),
            language tags such as ``[Cantonese]`` in front.
        prompt: Mono ``float32`` samples of the speaker: the take itself, at most 30 s.
        sample_rate: Rate of ``prompt`` in Hz; the result is at this rate too.
        prompt_text: What ``prompt`` says.
        progress: Receives (fraction 0..1 of this call, stage); raises ``JobCancelled``.

    Returns:
        Mono ``float32`` samples at ``sample_rate``. Silence around the words is fine (it is
        trimmed); level and pitch are fitted to the take afterwards.
    """

    def __call__(
        self,
        text: str,
        prompt: np.ndarray,
        sample_rate: int,
        prompt_text: str,
        progress: Progress,
    ) -> np.ndarray: ...


def _transcript(edit: EditSpec) -> Transcript:
    if edit.transcript is None:
        raise BackendError(
            f"a {edit.type} edit reached the cpu backend without the slice's words; the engine "
            "must transcribe the slice and set EditSpec.transcript before rendering"
        )
    return edit.transcript


def _new_words_error(words: tuple[str, ...]) -> UnsupportedEditError:
    """Names the registered backends that can say new words in the speaker's voice: those
    that declare both text edits and voice cloning."""
    from engine.backends import BACKEND_NAMES, backend_class
    from engine.capabilities import renders

    text = " ".join(words)
    wanted = (
        EditSpec("text", MASK_SOUNDS[0], target_text=text),
        EditSpec("clone", target_text=text),
    )
    able = [
        n for n in BACKEND_NAMES if n != "cpu" and all(renders(backend_class(n), e) for e in wanted)
    ]
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


def render_words(
    audio: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    say: Say | None = None,
) -> Rendered:
    """Renders an edit on words (``text`` or ``fillers``); ``say`` says new words."""
    if edit.type == "text":
        return render_text(audio, sample_rate, edit, progress, say=say)
    if edit.type == "fillers":
        return render_fillers(audio, sample_rate, edit, progress)
    raise BackendError(f"{edit.type!r} is not an edit on words (text, fillers)")


def render_text(
    audio: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    say: Say | None = None,
) -> Rendered:
    """Renders a ``text`` edit: ``edit.target_text`` against ``edit.transcript``.

    Args:
        audio: ``float32 (channels, samples)``.
        sample_rate: Its rate in Hz.
        edit: The edit, with the slice's words in ``edit.transcript``.
        progress: Progress callback.
        say: Says new words in the take's voice (a backend's clone); without it, new words
            are unsupported.

    Raises:
        BackendError: when the engine did not supply the transcript, or ``say`` returned
            nothing usable.
        UnsupportedEditError: for words the take does not hold and no ``say``, naming the
            backends that can say them.
        EditError: for a target text that leaves nothing, or bad brackets.
    """
    transcript = _transcript(edit)
    if not transcript.words:
        raise EditError("no words were found in the slice, so there is nothing to edit as text")
    plan = plan_text(transcript, edit.target_text, edit.text)
    if plan.new_words and say is None:
        raise _new_words_error(plan.new_words)
    return _render_plan(
        audio, sample_rate, plan, progress, mask_sound=edit.option or MASK_SOUNDS[0], say=say
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
class _Said:
    """A run of new words, re-said with the smallest span of whole words around them.

    Attributes:
        steps: The new words' steps, in order.
        before: In-place units re-said before them (the rest of a word the change cuts into).
        after: In-place units re-said after them.
        replaced: Units of the take the run stands for: the deleted units between its
            in-place neighbours, then ``before`` and ``after``.
        left: The take's boundary before the span (``_Take.gap`` index: the unit before it).
        right: The boundary after the span (the last unit the span stands for).
        left_edge: Where the take is left, in the input (s): the end of the pause before the
            replaced words, or the cut point where words are only added.
        right_edge: Where the take resumes (s).
        lead: The take's leading silence goes before the said words (a span at the start).
        trail: The take's trailing silence goes after them (a span at the end).
        audio: The said words, fitted (mono, at the take's rate).
    """

    steps: list[Step]
    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    left: int = -1
    right: int = -1
    left_edge: float = 0.0
    right_edge: float = 0.0
    lead: bool = False
    trail: bool = False
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def words(self, units: tuple[Unit, ...]) -> list[str]:
        """The words to say, as written."""
        return [
            *(units[u].text for u in self.before),
            *(s.written or s.text for s in self.steps),
            *(units[u].text for u in self.after),
        ]


@dataclass
class _Layout:
    """The output in order: pieces of the input, tags (by name) and re-said words."""

    items: list[_Piece | str | _Said] = field(default_factory=list)

    @property
    def pieces(self) -> list[_Piece]:
        return [item for item in self.items if isinstance(item, _Piece)]

    @property
    def said(self) -> list[_Said]:
        return [item for item in self.items if isinstance(item, _Said)]


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
    """Groups the plan's steps into pieces (and runs of new words) and places each piece's
    edges in a gap."""
    layout = _Layout()
    for step in plan.steps:
        last = layout.items[-1] if layout.items else None
        if step.action == "inserted":
            layout.items.append(step.text)
        elif step.action == "new":
            if isinstance(last, _Said):
                last.steps.append(step)
            else:
                layout.items.append(_Said([step]))
        elif isinstance(last, _Piece) and step.unit == last.last + 1:
            last.steps.append(step)
        else:
            layout.items.append(_Piece([step]))
    if layout.said:
        _place_said(layout, plan, take)
    pieces = layout.pieces
    if not pieces and not layout.said:
        raise EditError("the edit removes every word of the take; nothing would remain")
    n = len(plan.units)
    solid = [item for item in layout.items if not isinstance(item, str)]
    head, tail = solid[0], solid[-1]
    lead, trail = take.gap(-1).width, take.gap(n - 1).width
    if isinstance(head, _Piece):
        before = take.gap(head.first - 1)
        head.left = 0.0 if head.first == 0 else before.end - min(before.width, lead)
    if isinstance(tail, _Piece):
        after = take.gap(tail.last)
        tail.right = take.duration if tail.last == n - 1 else after.start + min(after.width, trail)
    fade = _FADE_S
    for x, y in pairwise(solid):
        if isinstance(x, _Said) or isinstance(y, _Said):
            _edges_beside_said(x, y, take)
            continue
        p, q = x, y
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


def _place_said(layout: _Layout, plan: TextPlan, take: _Take) -> None:
    """Finds what each run of new words stands for and where it goes in the take.

    A run stands for the deleted units between its in-place neighbours (each unit for the
    first run that claims it), widened to whole words: kept units of a word the change cuts
    into (a Mandarin word split per character) are re-said with it.
    """
    units, n = plan.units, len(plan.units)

    def same_word(a: int, b: int) -> bool:
        return 0 <= a < n and 0 <= b < n and units[a].word == units[b].word

    claimed: set[int] = set()
    items = layout.items
    for k, said in enumerate(items):
        if not isinstance(said, _Said):
            continue
        p = next((i for i in reversed(items[:k]) if isinstance(i, _Piece) and i.steps), None)
        q = next((i for i in items[k + 1 :] if isinstance(i, _Piece) and i.steps), None)
        gone = sorted({u for s in said.steps for u in s.replaces} - claimed)
        claimed.update(gone)
        if gone:
            lo, hi = gone[0], gone[-1]
        else:  # added only: at the boundary after the piece before, or before the next
            hi = p.last if p is not None else (q.first - 1 if q is not None else -1)
            lo = hi + 1
        # Widened over kept units only: a masked or moved neighbour stays what it is.
        while (
            p is not None
            and p.steps
            and p.steps[-1].action == "kept"
            and p.last == lo - 1
            and same_word(lo - 1, lo)
        ):
            said.before.insert(0, p.last)
            p.steps.pop()
            lo -= 1
        while (
            q is not None
            and q.steps
            and q.steps[0].action == "kept"
            and q.first == hi + 1
            and same_word(hi, hi + 1)
        ):
            said.after.append(q.first)
            q.steps.pop(0)
            hi += 1
        said.replaced = [*gone, *said.before, *said.after]
        said.left, said.right = lo - 1, hi
        if said.replaced:
            said.left_edge, said.right_edge = take.gap(lo - 1).end, take.gap(hi).start
        else:
            gap = take.gap(hi)
            # At the take's ends, the silence there stays at the end of the result.
            at = gap.end if hi == -1 else gap.start if hi == n - 1 else gap.cut
            said.left_edge = said.right_edge = at
    layout.items = [i for i in items if not (isinstance(i, _Piece) and not i.steps)]
    solid = [i for i in layout.items if not isinstance(i, str)]
    for said in layout.said:
        said.lead = said is solid[0] and said.left == -1
        said.trail = said is solid[-1] and said.right == n - 1


def _edges_beside_said(x: _Piece | _Said, y: _Piece | _Said, take: _Take) -> None:
    """Places the edge of a piece next to re-said words: where the replaced words were when
    the piece is their neighbour in the take (so the pauses around them stay), else in the
    piece's own pause, at most the speaker's median pause."""
    if isinstance(x, _Piece) and isinstance(y, _Said):
        gap = take.gap(x.last)
        x.right = y.left_edge if x.last == y.left else gap.start + min(gap.width, take.median_pause)
    elif isinstance(x, _Said) and isinstance(y, _Piece):
        gap = take.gap(y.first - 1)
        y.left = (
            x.right_edge if y.first - 1 == x.right else gap.end - min(gap.width, take.median_pause)
        )


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
        centre, reach = round(at * self._rate), round(_CONTEXT_S * self._rate)
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
    say: Say | None = None,
) -> Rendered:
    progress(0.0, "analysis")
    audio = np.asarray(audio, dtype=np.float32)
    mono = to_mono(audio)
    take = _Take(mono, sample_rate, plan.units)
    layout = _layout(plan, take, hesitation)
    if layout.said:
        assert say is not None
        _say_runs(layout, plan, take, mono, say, progress)
    progress(_SAY_END if layout.said else 0.3, "splice")
    rate, channels = sample_rate, audio.shape[0]
    fade, ramp = round(_FADE_S * rate), round(_RAMP_S * rate)
    speech_loudness = integrated_loudness(audio, rate)
    voice = _Voice(mono, rate)
    arrays: list[np.ndarray] = []
    # Each item and its first sample: in the input for pieces, in its array for said words.
    places: list[tuple[_Piece | str | _Said, int]] = []
    for k, item in enumerate(layout.items):
        if isinstance(item, str):
            earlier = [i for i in layout.items[:k] if isinstance(i, _Piece)]
            at = earlier[-1].right if earlier else 0.0
            sound = voice.sound(item, at, channels)
            arrays.append(np.pad(sound, ((0, 0), (fade, fade))))
            places.append((item, 0))
            continue
        if isinstance(item, _Said):
            array, first = _said_audio(audio, item, rate, fade)
            arrays.append(array)
            places.append((item, first))
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


def _said_audio(audio: np.ndarray, said: _Said, rate: int, fade: int) -> tuple[np.ndarray, int]:
    """The said words on every channel, after the take's leading silence or before its
    trailing silence where the span is at an end; and where the words start in it."""
    words = np.tile(said.audio, (audio.shape[0], 1))
    parts, first = [words], 0
    if said.lead and said.left_edge > 0:
        lead = audio[:, : round(said.left_edge * rate)]
        parts.insert(0, lead)
        first = lead.shape[-1] - min(fade, lead.shape[-1], words.shape[-1])
    if said.trail and round(said.right_edge * rate) < audio.shape[-1]:
        parts.append(audio[:, round(said.right_edge * rate) :])
    return crossfade_concat(parts, fade), first


def _say_runs(
    layout: _Layout, plan: TextPlan, take: _Take, mono: np.ndarray, say: Say, progress: Progress
) -> None:
    """Has ``say`` say each run of new words in the take's voice and fits the result."""
    rate = take.rate
    languages = "".join(p for p in plan.passthrough if p.startswith("["))
    said_runs = layout.said
    for i, said in enumerate(said_runs):
        lo = _SAY_START + (_SAY_END - _SAY_START) * i / len(said_runs)
        hi = _SAY_START + (_SAY_END - _SAY_START) * (i + 1) / len(said_runs)

        def step(fraction: float, stage: str, lo: float = lo, hi: float = hi) -> None:
            progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), stage)

        text = languages + join_words(said.words(plan.units))
        start, end, prompt_text = _prompt(take, said)
        prompt = mono[round(start * rate) : round(end * rate)]
        raw = say(text, prompt, rate, prompt_text, step)
        said.audio = _fit(raw, mono, said, rate, text)
        _LOG.debug(
            "said %r (%.2f s) for %s, prompt %.1f-%.1f s",
            text,
            len(said.audio) / rate,
            [plan.units[u].text for u in said.replaced],
            start,
            end,
        )


def _prompt(take: _Take, said: _Said) -> tuple[float, float, str]:
    """The clone prompt for a span: the take between two word boundaries, at most 30 s,
    centred on the span as far as the take allows; its start and end (s) and its text."""
    units, n = take.units, len(take.units)
    cuts = [take.gap(k).cut for k in range(-1, n)]  # cuts[i]: the boundary before unit i
    centre = (said.left_edge + said.right_edge) / 2
    a = min(max(centre - _PROMPT_MAX_S / 2, 0.0), max(take.duration - _PROMPT_MAX_S, 0.0))
    b = a + _PROMPT_MAX_S
    inside = [i for i, cut in enumerate(cuts) if a <= cut <= b]
    if len(inside) >= 2:
        first, last = inside[0], inside[-1]
        start, end = cuts[first], cuts[last]
        chosen = range(first, last)
    else:  # words longer than the window: the window as it is
        start, end = a, min(b, take.duration)
        chosen = range(n)
    text = join_words(units[i].text for i in chosen if start <= units[i].start <= end)
    return start, end, text


def _fit(raw: np.ndarray, mono: np.ndarray, said: _Said, rate: int, text: str) -> np.ndarray:
    """Trims the said words' silence and moves their median F0 and loudness to those of the
    take's words around the span."""
    y = np.asarray(raw, dtype=np.float32)
    if y.ndim == 2:
        y = to_mono(y)
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)):
        raise BackendError(
            f"saying {text!r} gave no usable audio (shape {y.shape}); expected mono samples"
        )
    y = _trim(y, rate, text)
    reach = round(_CONTEXT_S * rate)
    left, right = round(said.left_edge * rate), round(said.right_edge * rate)
    context = np.concatenate([mono[max(0, left - reach) : left], mono[right : right + reach]])
    if context.size:
        y = _move_f0(y, rate, context)
        target = integrated_loudness(context[np.newaxis, :], rate)
        y = match_loudness(y[np.newaxis, :], rate, target)[0]
    ramp = min(round(_RAMP_S * rate), y.size // 4)
    if ramp:
        y[:ramp] *= np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        y[y.size - ramp :] *= np.linspace(1.0, 0.0, ramp, dtype=np.float32)
    return y


def _trim(y: np.ndarray, rate: int, text: str) -> np.ndarray:
    """``y`` from its first to its last sounding stretch, with ``_SAID_MARGIN_S`` around.

    Sounding: above the higher of 30 dB below its loud frames and 10 dB above its floor (or
    within 6 dB of the loud frames, for sound without quiet, such as steady noise), for at
    least ``_MIN_PAUSE_S`` (shorter blips are clicks).
    """
    levels = frame_rms_db(y, rate, hop=_HOP_S, window=0.02)
    floor, loud = np.percentile(levels, [5, 95])
    threshold = max(loud - _QUIET_BELOW_LOUD_DB, floor + _QUIET_ABOVE_FLOOR_DB)
    sounding = levels >= min(threshold, loud - _STEADY_DB)
    stretches = [(a, b) for a, b in runs(sounding) if (b - a) * _HOP_S >= _MIN_PAUSE_S]
    if loud < _SILENT_DB or not stretches:
        raise BackendError(f"saying {text!r} gave silence; try again (another seed)")
    margin = _SAID_MARGIN_S * rate
    start = max(0, round(stretches[0][0] * _HOP_S * rate - margin))
    end = min(y.size, round(stretches[-1][1] * _HOP_S * rate + margin))
    return y[start:end].copy()


def _move_f0(y: np.ndarray, rate: int, context: np.ndarray) -> np.ndarray:
    """``y`` with its median F0 moved to the context's (Praat PSOLA), when both are voiced
    and they differ by more than ``_F0_TOLERANCE_ST``."""
    work = min(rate, _PSOLA_MAX_RATE)
    target = analyse(resample(context, rate, work), work).median_f0
    analysis = analyse(resample(y, rate, work), work)
    own = analysis.median_f0
    if target <= 0 or own <= 0:
        return y
    shift = 12 * math.log2(target / own)
    if abs(shift) <= _F0_TOLERANCE_ST:
        return y
    shift = float(np.clip(shift, -_MAX_SHIFT_ST, _MAX_SHIFT_ST))
    frames = len(analysis.f0)
    pitch = RenderPlan(
        analysis.f0 * 2 ** (shift / 12), np.ones(frames), np.zeros(frames), np.zeros(frames)
    )
    try:
        moved = psola_render(analysis, pitch, seed=0)
    except parselmouth.PraatError as e:  # too short or too irregular to manipulate
        _LOG.warning("said words kept at their own pitch: %s", e)
        return y
    _LOG.debug("said words moved %.1f semitones (%.0f -> %.0f Hz)", shift, own, target)
    return resample(moved, work, rate)


def _word_report(
    plan: TextPlan,
    places: list[tuple[_Piece | str | _Said, int]],
    offsets: list[int],
    arrays: list[np.ndarray],
    fade: int,
    rate: int,
) -> list[dict[str, Any]]:
    """``info["words"]`` as docs/protocol.md describes it, in output order."""
    pieces = [item for item, _ in places if isinstance(item, _Piece)]
    resaid = {u for item, _ in places if isinstance(item, _Said) for u in item.replaced}
    in_place = sorted(
        s.unit
        for piece in pieces
        for s in piece.steps
        if s.action in ("kept", "masked") and s.unit is not None
    )
    after: dict[int, list[int]] = {}  # deleted units by the in-place unit before them
    for d in plan.deleted:
        if d in resaid:
            continue
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
        if isinstance(item, _Said):
            words += _said_report(plan, item, seconds(offset + first), rate, seconds)
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


def _said_report(
    plan: TextPlan, said: _Said, start: float, rate: int, seconds: Callable[[float], float]
) -> list[dict[str, Any]]:
    """The re-said words: ``replaced`` where each stands for a word of the take (in order),
    ``new`` beyond them; words the run replaced beyond its own count are ``deleted`` at its
    end. Times inside the span are shared out by letters (the words are not aligned)."""
    units = plan.units
    gone = said.replaced[: len(said.replaced) - len(said.before) - len(said.after)]
    stands_for: list[int | None] = [
        *said.before,
        *(gone[j] if j < len(gone) else None for j in range(len(said.steps))),
        *said.after,
    ]
    texts = said.words(units)
    margin = _SAID_MARGIN_S
    span = max(len(said.audio) / rate - 2 * margin, 0.0)
    weights = np.array([max(len(normalise(t)), 1) for t in texts], dtype=float)
    edges = start + margin + span * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    entries = []
    for text, unit, a, b in zip(texts, stands_for, edges[:-1], edges[1:], strict=True):
        if unit is None:
            entries.append(_entry(text, "new", seconds(a * rate), seconds(b * rate)))
        else:
            entries.append(
                _entry(text, "replaced", seconds(a * rate), seconds(b * rate), units[unit])
            )
    at = seconds(edges[-1] * rate + margin * rate)
    for d in gone[len(said.steps) :]:
        entries.append(_entry(units[d].text, "deleted", at, at, units[d]))
    return entries
