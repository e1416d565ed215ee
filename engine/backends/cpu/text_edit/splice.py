"""Rendering a layout: its pieces, tags and said words spliced, and the per-word report."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.audio import crossfade_concat, integrated_loudness, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.cpu.text_edit.layout import FADE_S, Piece, Said, lay_out
from engine.backends.cpu.text_edit.masks import RAMP_S, piece_audio
from engine.backends.cpu.text_edit.say import SAID_MARGIN_S, SAY_END, Say, said_audio, say_runs
from engine.backends.cpu.text_edit.tags import Voice
from engine.backends.cpu.text_edit.take import Take
from engine.edits import MASK_SOUNDS
from engine.text.diff import TextPlan, Unit, normalise

__all__ = ["render_plan", "unchanged"]

_LOG = logging.getLogger(__name__)


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


def unchanged(audio: np.ndarray, sample_rate: int, plan: TextPlan) -> Rendered:
    """The take as it is, with its words reported as kept."""
    words = [_entry(u.text, "kept", u.start, u.end, u) for u in plan.units]
    return Rendered(np.array(audio, dtype=np.float32), sample_rate, info={"words": words})


def render_plan(
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
    take = Take(mono, sample_rate, plan.units)
    layout = lay_out(plan, take, hesitation)
    if layout.said:
        assert say is not None
        say_runs(layout, plan, take, mono, say, progress)
    progress(SAY_END if layout.said else 0.3, "splice")
    rate, channels = sample_rate, audio.shape[0]
    fade, ramp = round(FADE_S * rate), round(RAMP_S * rate)
    speech_loudness = integrated_loudness(audio, rate)
    voice = Voice(mono, rate)
    arrays: list[np.ndarray] = []
    # Each item and its first sample: in the input for pieces, in its array for said words.
    places: list[tuple[Piece | str | Said, int]] = []
    for k, item in enumerate(layout.items):
        if isinstance(item, str):
            earlier = [i for i in layout.items[:k] if isinstance(i, Piece)]
            at = earlier[-1].right if earlier else 0.0
            sound = voice.sound(item, at, channels)
            arrays.append(np.pad(sound, ((0, 0), (fade, fade))))
            places.append((item, 0))
            continue
        if isinstance(item, Said):
            array, first = said_audio(audio, item, rate, fade)
            arrays.append(array)
            places.append((item, first))
            continue
        a = round(item.left * rate)
        piece = piece_audio(audio, item, take, mask_sound, speech_loudness)
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
    places: list[tuple[Piece | str | Said, int]],
    offsets: list[int],
    arrays: list[np.ndarray],
    fade: int,
    rate: int,
) -> list[dict[str, Any]]:
    """``info["words"]`` as docs/protocol.md describes it, in output order."""
    pieces = [item for item, _ in places if isinstance(item, Piece)]
    resaid = {u for item, _ in places if isinstance(item, Said) for u in item.replaced}
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
        if isinstance(item, Said):
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
    plan: TextPlan, said: Said, start: float, rate: int, seconds: Callable[[float], float]
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
    margin = SAID_MARGIN_S
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
