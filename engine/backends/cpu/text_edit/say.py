"""New words: said by a backend in the take's voice, then fitted to the take.

New words need a backend that can say them (a :class:`Say`). Each run of new words is
re-said with the smallest span of whole words around it (in Mandarin, the rest of a word
the change cuts into), in the voice of the take itself (at most 30 s around the span, the
official guidance for clone prompts, with its transcript); the result is trimmed of its
silence, moved to the median F0 of the neighbouring words (PSOLA) and to their
loudness, and spliced where the replaced words were: from the end of the pause before them
to the start of the pause after them (for words only added, at the cut point between two
words), so the take's own pauses stay.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import parselmouth

from engine.audio import crossfade_concat, integrated_loudness, match_loudness, resample, to_mono
from engine.backends.base import Progress
from engine.backends.cpu.analysis import analyse
from engine.backends.cpu.psola import Psola
from engine.backends.cpu.targets import RenderPlan
from engine.backends.cpu.text_edit.layout import Layout, Said
from engine.backends.cpu.text_edit.masks import RAMP_S
from engine.backends.cpu.text_edit.take import (
    CONTEXT_S,
    HOP_S,
    MIN_PAUSE_S,
    QUIET_ABOVE_FLOOR_DB,
    QUIET_BELOW_LOUD_DB,
    Take,
)
from engine.dsp import frame_rms_db, runs
from engine.errors import BackendError
from engine.text.diff import TextPlan
from engine.text.transcript import join_words

__all__ = ["SAID_MARGIN_S", "SAY_END", "Say", "said_audio", "say_runs"]

_LOG = logging.getLogger(__name__)

# Longest clone prompt: the official README's advice (spec step-audio-editx.md §2.3).
_PROMPT_MAX_S = 30.0
# Said audio keeps this much of its own quiet around the speech when trimmed; it is silent
# when its loud frames are under _SILENT_DB, and steady when they are within _STEADY_DB of
# its floor.
SAID_MARGIN_S = 0.02
_SILENT_DB, _STEADY_DB = -90.0, 6.0
# Median F0 of said words is moved to the neighbours' when it is further off than this
# (semitones), by at most _MAX_SHIFT_ST.
_F0_TOLERANCE_ST, _MAX_SHIFT_ST = 0.5, 12.0
# PSOLA runs at most at this rate.
_PSOLA_MAX_RATE = 48000
# Share of the progress bar for the analysis, then saying new words, then splicing.
_SAY_START, SAY_END = 0.1, 0.85


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


def said_audio(audio: np.ndarray, said: Said, rate: int, fade: int) -> tuple[np.ndarray, int]:
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


def say_runs(
    layout: Layout, plan: TextPlan, take: Take, mono: np.ndarray, say: Say, progress: Progress
) -> None:
    """Has ``say`` say each run of new words in the take's voice and fits the result."""
    rate = take.rate
    languages = "".join(p for p in plan.passthrough if p.startswith("["))
    said_runs = layout.said
    for i, said in enumerate(said_runs):
        lo = _SAY_START + (SAY_END - _SAY_START) * i / len(said_runs)
        hi = _SAY_START + (SAY_END - _SAY_START) * (i + 1) / len(said_runs)

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


def _prompt(take: Take, said: Said) -> tuple[float, float, str]:
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


def _fit(raw: np.ndarray, mono: np.ndarray, said: Said, rate: int, text: str) -> np.ndarray:
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
    reach = round(CONTEXT_S * rate)
    left, right = round(said.left_edge * rate), round(said.right_edge * rate)
    context = np.concatenate([mono[max(0, left - reach) : left], mono[right : right + reach]])
    if context.size:
        y = _move_f0(y, rate, context)
        target = integrated_loudness(context[np.newaxis, :], rate)
        y = match_loudness(y[np.newaxis, :], rate, target)[0]
    ramp = min(round(RAMP_S * rate), y.size // 4)
    if ramp:
        y[:ramp] *= np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        y[y.size - ramp :] *= np.linspace(1.0, 0.0, ramp, dtype=np.float32)
    return y


def _trim(y: np.ndarray, rate: int, text: str) -> np.ndarray:
    """``y`` from its first to its last sounding stretch, with ``SAID_MARGIN_S`` around.

    Sounding: above the higher of 30 dB below its loud frames and 10 dB above its floor (or
    within 6 dB of the loud frames, for sound without quiet, such as steady noise), for at
    least ``MIN_PAUSE_S`` (shorter blips are clicks).
    """
    levels = frame_rms_db(y, rate, hop=HOP_S, window=0.02)
    floor, loud = np.percentile(levels, [5, 95])
    threshold = max(loud - QUIET_BELOW_LOUD_DB, floor + QUIET_ABOVE_FLOOR_DB)
    sounding = levels >= min(threshold, loud - _STEADY_DB)
    stretches = [(a, b) for a, b in runs(sounding) if (b - a) * HOP_S >= MIN_PAUSE_S]
    if loud < _SILENT_DB or not stretches:
        raise BackendError(f"saying {text!r} gave silence; try again (another seed)")
    margin = SAID_MARGIN_S * rate
    start = max(0, round(stretches[0][0] * HOP_S * rate - margin))
    end = min(y.size, round(stretches[-1][1] * HOP_S * rate + margin))
    return y[start:end].copy()


def _move_f0(y: np.ndarray, rate: int, context: np.ndarray) -> np.ndarray:
    """``y`` with its median F0 moved to the context's (PSOLA), when both are voiced
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
        moved = Psola(analysis).render(pitch)
    except parselmouth.PraatError as e:  # too short or too irregular to find pulses in
        _LOG.warning("said words kept at their own pitch: %s", e)
        return y
    _LOG.debug("said words moved %.1f semitones (%.0f -> %.0f Hz)", shift, own, target)
    return resample(moved, work, rate)
