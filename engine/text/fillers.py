"""Filler words (hesitation sounds) per language, and fillers that recognition skipped.

Whisper is trained on transcripts that leave most disfluencies out, so a transcript can lack
an "um" the speaker clearly said. Two things bring them back (measured in
``tests/engine/text/test_fillers.py`` and the report of issue 8):

1. :data:`engine.text.asr.PROMPTS` starts decoding from a prompt full of fillers, which makes
   Whisper write them far more often (used for Mandarin; for English the second way alone
   measured better);
2. the remaining ones are found as **speech that no word covers**: the forced aligner (English)
   may place a hesitation model between two words, or Silero VAD (any language) finds speech
   between the words' times. Such a stretch is a candidate when it is short and voiced
   (:func:`hesitation_spans`); a longer or unvoiced one is left alone (a missed phrase, a
   cough, another speaker). :mod:`engine.text.transcribe` then has the recogniser hear each
   candidate alone and keeps those it writes as fillers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.dsp import frame_rms_db

__all__ = [
    "FILLERS",
    "MAX_FILLER_S",
    "MIN_FILLER_S",
    "MIN_VOICED",
    "Hesitation",
    "canonical",
    "hesitation_spans",
    "is_filler",
    "uncovered_spans",
    "voiced_fraction",
]

# Hesitation sounds per language (written forms, after `_canonical`). "Er"/"ah" are British
# spellings of "uh"; Mandarin 嗯/呃/额 are the usual filled pauses, 唔 its nasal variant.
FILLERS: Mapping[str, frozenset[str]] = {
    "en": frozenset({"um", "uh", "er", "ah", "hmm", "hm", "erm", "uhm", "mm", "eh"}),
    "zh": frozenset({"嗯", "呃", "额", "唔", "嗯嗯", "呃呃"}),
}

# A hesitation is a sustained, voiced vowel or nasal: at least this long (shorter stretches
# are clicks and plosive bursts) and at most this long (longer uncovered speech is a missed
# phrase, not a filler). AMI fillers measured 0.16-0.66 s.
MIN_FILLER_S = 0.12
MAX_FILLER_S = 1.0
# Share of loud 10 ms frames that must be periodic (60-400 Hz). Measured on AMI fillers
# (Whisper's own "um"/"uh" spans): 0.40-1.00.
MIN_VOICED = 0.35
_VOICING_R = 0.45  # normalised autocorrelation peak for a periodic frame


def canonical(word: str) -> str:
    """Lower case, no punctuation, letter runs shortened ("Ummm," -> "um", "Hmmm" -> "hmm")."""
    text = unicodedata.normalize("NFKC", word).lower()
    text = re.sub(r"[^\w]", "", text)
    text = re.sub(r"([a-z])\1{2,}", r"\1\1", text)  # hmmmm -> hmm
    if text in ("umm", "uhh", "ahh", "err", "ehh"):
        text = text[:-1]
    return text


def is_filler(word: str, language: str, fillers: Iterable[str] | None = None) -> bool:
    """Whether ``word`` is a hesitation sound in ``language``.

    Args:
        word: As written in a transcript (case and punctuation are ignored).
        language: ``en``, ``zh``, ...; languages without a list have no fillers.
        fillers: Replaces the built-in list (e.g. a client's ``edit.fillers``).
    """
    words = FILLERS.get(language, frozenset()) if fillers is None else fillers
    return canonical(word) in {canonical(w) for w in words}


def uncovered_spans(
    speech: Sequence[tuple[float, float]],
    covered: Iterable[tuple[float, float]],
    margin: float = 0.04,
) -> list[tuple[float, float]]:
    """Parts of the ``speech`` regions that no ``covered`` span (widened by ``margin``) touches.

    Args:
        speech: ``(start, end)`` seconds of detected speech, in order.
        covered: ``(start, end)`` of each word.
        margin: Seconds added on both sides of each word (word edges are approximate).
    """
    spans = sorted((max(0.0, a - margin), b + margin) for a, b in covered)
    out: list[tuple[float, float]] = []
    for start, end in speech:
        cursor = start
        for a, b in spans:
            if b <= cursor or a >= end:
                continue
            if a > cursor:
                out.append((cursor, a))
            cursor = max(cursor, b)
        if cursor < end:
            out.append((cursor, end))
    return out


def voiced_fraction(x: np.ndarray, sample_rate: int) -> float:
    """Share of the loud 10 ms frames of ``x`` (within 30 dB of its loudest) that are periodic.

    Periodic = the normalised autocorrelation of a 40 ms frame peaks above 0.45 at a lag
    of 2.5-16.7 ms (F0 60-400 Hz).
    """
    n = round(0.04 * sample_rate)
    hop = round(0.01 * sample_rate)
    if len(x) < n:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    power = np.abs(np.fft.rfft(frames * np.hanning(n), size)) ** 2
    ac = np.fft.irfft(power, size)[:, : n // 2]
    energy = ac[:, 0]
    level = 10 * np.log10(energy + 1e-20)
    loud = level > level.max() - 30
    lo, hi = round(sample_rate / 400), min(round(sample_rate / 60), n // 2 - 1)
    peak = ac[:, lo:hi].max(axis=1) / np.maximum(energy, 1e-20)
    if not loud.any():
        return 0.0
    return float(((peak > _VOICING_R) & loud).sum() / loud.sum())


@dataclass(frozen=True)
class Hesitation:
    """Uncovered speech that sounds like a hesitation.

    Attributes:
        start: Seconds in the slice.
        end: Seconds in the slice.
        voiced: Its voiced fraction (see :func:`voiced_fraction`).
    """

    start: float
    end: float
    voiced: float


def hesitation_spans(
    mono: np.ndarray,
    sample_rate: int,
    candidates: Iterable[tuple[float, float]],
    speech: Sequence[tuple[float, float]],
) -> list[Hesitation]:
    """Keeps the candidate stretches that sound like a hesitation.

    A candidate is kept when it lies mostly (at least half) inside detected speech, is
    ``MIN_FILLER_S``..``MAX_FILLER_S`` long after trimming quiet edges, is voiced
    (``MIN_VOICED``) and not much quieter than the slice's speech (within 30 dB).

    Args:
        mono: The slice, mono.
        sample_rate: Its rate.
        candidates: ``(start, end)`` of uncovered speech.
        speech: Speech regions of the slice.
    """
    levels = frame_rms_db(mono, sample_rate, hop=0.01, window=0.03)
    speech_level = _speech_level(levels, speech)
    out: list[Hesitation] = []
    for start, end in candidates:
        inside = sum(max(0.0, min(end, b) - max(start, a)) for a, b in speech)
        if end <= start or inside < 0.5 * (end - start):
            continue
        start, end = _trim_quiet(levels, start, end, speech_level)
        if not MIN_FILLER_S <= end - start <= MAX_FILLER_S:
            continue
        piece = mono[round(start * sample_rate) : round(end * sample_rate)]
        voiced = voiced_fraction(piece, sample_rate)
        if voiced >= MIN_VOICED:
            out.append(Hesitation(start, end, voiced))
    return out


def _speech_level(levels: np.ndarray, speech: Sequence[tuple[float, float]]) -> float:
    """Median frame level (dBFS) over the speech regions."""
    frames = [levels[round(a * 100) : round(b * 100)] for a, b in speech]
    joined = np.concatenate(frames) if frames else levels
    return float(np.median(joined)) if len(joined) else -120.0


def _trim_quiet(
    levels: np.ndarray, start: float, end: float, speech_level: float
) -> tuple[float, float]:
    """Shrinks ``start..end`` to the frames no more than 20 dB under the speech level."""
    a, b = round(start * 100), min(round(end * 100), len(levels))
    loud = np.flatnonzero(levels[a:b] > speech_level - 20)
    if not len(loud):
        return start, start
    return (a + loud[0]) / 100, (a + loud[-1] + 1) / 100
