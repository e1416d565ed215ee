"""Transcription of one slice: words with times in the slice, fillers marked, cached.

The steps, each in its own module:

1. speech regions (Silero VAD, :mod:`engine.text.speech`); a slice without speech has no
   words and is not sent to the recogniser (Whisper invents "Thank you." in silence);
2. recognition (:mod:`engine.text.asr`): Whisper tiny.en for English, the multilingual base
   model for Mandarin and ``auto``; Mandarin decoding starts from a prompt full of fillers;
3. word times:
   - known English text: pocketsphinx forced alignment of that text (:mod:`engine.text.align`);
   - known Mandarin text: the text's characters mapped onto the recognised ones by edit
     distance, times taken from the recognition;
   - no text, English: the recognised words are force-aligned too (tighter than Whisper's
     attention-based times, which stretch over pauses), kept when the two mostly agree;
   - otherwise Whisper's times, cut back to the speech they overlap;
4. fillers (:mod:`engine.text.fillers`): recognised words such as "um" are marked, and speech
   no word covers (aligner hesitation hits, VAD speech between words) becomes a filler word
   when it is a short voiced hesitation that the recogniser, hearing it alone, writes as a
   filler (a stretch it writes as "yeah" is a missed word, not a filler, and stays out).

Measured (five AMI meeting clips, nine fillers; report of issue 8): recognition alone wrote
1, with the prompt 7, the gap search alone found 9, both together 8 (plus 2 unconfirmed); no
filler was added to seven clips of read speech.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.audio import resample, to_mono
from engine.backends.base import Progress
from engine.errors import InputError
from engine.text import align, fillers
from engine.text.asr import (
    ASR_RATE,
    PROMPTS,
    RecognisedWord,
    detect_language,
    recognise,
    recognise_pieces,
)
from engine.text.cache import TranscriptCache, cache_key
from engine.text.diff import normalise
from engine.text.models import WhisperFiles, whisper_for
from engine.text.speech import fit_to_speech, speech_regions
from engine.text.transcript import LANGUAGES, Transcript, Word

__all__ = ["PROMPTED", "transcribe"]

_LOG = logging.getLogger(__name__)

# Self-alignment of the recognised words is kept when at least this share of words start
# within _AGREE_S of where Whisper put them; otherwise the text is too wrong to align.
_AGREE_S = 0.5
_AGREE_SHARE = 0.6
# Confidence of a known-text word the recogniser did not hear as such.
_UNCONFIRMED = 0.5
# A recognised word overlapping no speech (with this margin) is a hallucination when its
# probability is also below _HALLUCINATION_P.
_SPEECH_MARGIN_S = 0.2
_HALLUCINATION_P = 0.5
# A hesitation found this close to a written filler is that filler.
_NEAR_S = 0.6
# Languages recognised from the filler prompt by default. Measured: Mandarin CER 21 % -> 12 %
# over four clips (and simplified characters); English WER unchanged (3.1 % over seven clips)
# but AMI fillers found 9/9 without the prompt and 8/9 (plus 2 unconfirmed) with it, and
# recognition 1.5-2x slower.
PROMPTED = frozenset({"zh"})
# Off only to measure what finding hesitations in uncovered speech brings.
_FIND_HESITATIONS = True


@dataclass
class _Draft:
    """A word while its times and flags are being settled."""

    text: str
    start: float
    end: float
    confidence: float
    filler: bool = False


def transcribe(
    audio: np.ndarray,
    sample_rate: int,
    *,
    language: str = "auto",
    text: str = "",
    cache: TranscriptCache | None = None,
    progress: Progress | None = None,
    filler_prompt: bool | None = None,
) -> tuple[Transcript, bool]:
    """The words of a slice with their times, fillers included.

    Args:
        audio: ``float32`` ``(channels, samples)`` (1-D is taken as mono).
        sample_rate: Rate of ``audio`` in Hz.
        language: ``en``, ``zh`` or ``auto`` (detected; English only when the multilingual
            model is not installed).
        text: The slice's text when known: its words are placed on the audio instead of
            the recognised ones (fillers found in the audio are still added).
        cache: Where transcripts are kept per slice content; ``None`` for no caching.
        progress: Called with (0..1, stage); may raise ``JobCancelled``.
        filler_prompt: Start recognition from :data:`engine.text.asr.PROMPTS` (more fillers
            written). ``None``: per language (:data:`PROMPTED`): measured better for
            Mandarin, worse for English, where the gap search finds more fillers alone.

    Returns:
        The transcript (times in seconds from the slice start) and whether it came from
        the cache.

    Raises:
        InputError: for an unknown language, an empty slice, or non-finite samples.
        CheckpointError: for Mandarin when the multilingual model is not installed.
        BackendError: when a model cannot be loaded.
    """
    if language not in LANGUAGES:
        raise InputError(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")
    samples = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if samples.ndim != 2 or samples.shape[-1] == 0 or sample_rate <= 0:
        raise InputError(f"need (channels, samples) audio and a rate, got {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise InputError("the slice contains NaN or infinite samples", "non_finite")
    files = whisper_for(language)
    key = ""
    if cache is not None:
        variant = files.name + ("" if filler_prompt is None else f"/prompt={filler_prompt}")
        key = cache_key(samples, sample_rate, variant, language, text)
        hit = cache.get(key)
        if hit is None and text:
            # A client usually sends back the very words the engine gave it: then the
            # recognised transcript (already aligned) is the answer, no second alignment.
            recognised = cache.get(cache_key(samples, sample_rate, variant, language, ""))
            if recognised is not None and _same_words(recognised.text, text):
                hit = recognised
        if hit is not None:
            _report(progress, 1.0, "cached")
            return hit, True
    result = _transcribe(samples, sample_rate, language, text, files, progress, filler_prompt)
    if cache is not None:
        cache.put(key, result)
    return result, False


def _same_words(a: str, b: str) -> bool:
    """Whether two texts hold the same words, ignoring case, spacing and punctuation."""
    return normalise(a) == normalise(b)


def _report(progress: Progress | None, fraction: float, stage: str) -> None:
    if progress is not None:
        progress(fraction, stage)


def _transcribe(
    samples: np.ndarray,
    sample_rate: int,
    language: str,
    text: str,
    files: WhisperFiles,
    progress: Progress | None,
    filler_prompt: bool | None,
) -> Transcript:
    duration = round(samples.shape[-1] / sample_rate, 3)
    mono = resample(to_mono(samples), sample_rate, ASR_RATE)
    _report(progress, 0.0, "speech")
    regions = speech_regions(mono)
    spoken = "en" if language == "auto" and not files.multilingual else language
    if not regions:
        return Transcript((), "en" if spoken == "auto" else spoken, files.name, duration)
    if spoken == "auto":
        spoken, _ = detect_language(mono, files, regions)
    _report(progress, 0.05, "transcribe")
    prompted = spoken in PROMPTED if filler_prompt is None else filler_prompt
    recognition = recognise(
        mono,
        files,
        spoken,
        prompt=PROMPTS.get(spoken) if prompted else None,
        progress=lambda f: _report(progress, 0.05 + 0.75 * f, "transcribe"),
    )
    heard = [w for w in recognition.words if _is_speech(w, regions)]
    _report(progress, 0.8, "align")
    model = files.name
    aligned = False
    hits: list[tuple[float, float]] = []
    tokens = align.split_tokens(text) if text.strip() else []
    if tokens:
        drafts, how, hits = _place_known_text(mono, tokens, heard, spoken, duration)
        aligned = True
        model += how
    else:
        drafts = [_Draft(w.text, w.start, w.end, w.probability) for w in heard]
        if spoken == "en" and drafts:
            if _self_align(mono, drafts, hits, duration):
                model += "+pocketsphinx"
            else:
                _fit_drafts(drafts, regions)
        else:
            _fit_drafts(drafts, regions)
    _report(progress, 0.9, "fillers")
    for d in drafts:
        d.filler = fillers.is_filler(d.text, spoken)
    words = _add_hesitations(mono, drafts, hits, regions, spoken, files)
    _report(progress, 1.0, "done")
    return Transcript(tuple(_finish(words, duration)), spoken, model, duration, aligned)


def _is_speech(word: RecognisedWord, regions: Sequence[tuple[float, float]]) -> bool:
    near = any(
        a - _SPEECH_MARGIN_S < word.end and b + _SPEECH_MARGIN_S > word.start for a, b in regions
    )
    return near or word.probability >= _HALLUCINATION_P


def _fit_drafts(drafts: list[_Draft], regions: Sequence[tuple[float, float]]) -> None:
    for d in drafts:
        d.start, d.end = fit_to_speech(d.start, d.end, regions)


def _self_align(
    mono: np.ndarray,
    drafts: list[_Draft],
    hits: list[tuple[float, float]],
    duration: float,
) -> bool:
    """Replaces Whisper's times by forced-alignment times when the two mostly agree."""
    result = align.align_english(mono, [d.text for d in drafts])
    if result is None:
        return False
    spans = result.spans
    agree = sum(
        1 for d, s in zip(drafts, spans, strict=True) if s and abs(s[0] - d.start) < _AGREE_S
    )
    if agree < _AGREE_SHARE * len(drafts):
        _LOG.debug("self-alignment disagrees with Whisper (%d/%d); kept", agree, len(drafts))
        return False
    for d, span in zip(drafts, align.fill_gaps(spans, duration), strict=True):
        if span is not None:
            d.start, d.end = span
    hits.extend((h.start, h.end) for h in result.fillers)
    return True


def _place_known_text(
    mono: np.ndarray,
    tokens: list[str],
    heard: list[RecognisedWord],
    language: str,
    duration: float,
) -> tuple[list[_Draft], str, list[tuple[float, float]]]:
    """The known text's words with times, how they were placed, and aligner filler hits."""
    mapping = align.map_tokens(tokens, [w.text for w in heard])
    confidence = [
        heard[j].probability
        if j is not None and align.same_word(tokens[i], heard[j].text)
        else _UNCONFIRMED
        for i, j in enumerate(mapping)
    ]
    if language == "en":
        result = align.align_english(mono, tokens)
        if result is not None:
            spans = align.fill_gaps(result.spans, duration)
            if all(s is not None for s in spans):
                drafts = [
                    _Draft(t, s[0], s[1], c)  # type: ignore[index]
                    for t, s, c in zip(tokens, spans, confidence, strict=True)
                ]
                hits = [(h.start, h.end) for h in result.fillers]
                return drafts, "+pocketsphinx", hits
        _LOG.info("forced alignment found no path; word times come from recognition")
    known: list[tuple[float, float] | None] = [
        (heard[j].start, heard[j].end) if j is not None else None for j in mapping
    ]
    spans = align.fill_gaps(known, duration)
    drafts = [
        _Draft(t, *(s if s is not None else (0.0, 0.0)), c)
        for t, s, c in zip(tokens, spans, confidence, strict=True)
    ]
    return drafts, "+text", []


def _add_hesitations(
    mono: np.ndarray,
    drafts: list[_Draft],
    hits: list[tuple[float, float]],
    regions: Sequence[tuple[float, float]],
    language: str,
    files: WhisperFiles,
) -> list[_Draft]:
    """``drafts`` plus the hesitations found in speech no word covers.

    Candidates (aligner hits and VAD speech between words) must sound like a hesitation
    (short, voiced: :func:`engine.text.fillers.hesitation_spans`) and, heard on their own
    by the recogniser with the filler prompt, come out as fillers only; a stretch heard as
    a word ("yeah", "so") is a missed word and stays out of the transcript.
    """
    if not _FIND_HESITATIONS or language not in fillers.FILLERS:
        return drafts
    gaps = fillers.uncovered_spans(regions, [(d.start, d.end) for d in drafts])
    candidates = _merge([*hits, *gaps])
    found = [
        h
        for h in fillers.hesitation_spans(mono, ASR_RATE, candidates, regions)
        if not any(d.start >= h.start - 0.02 and d.end <= h.end + 0.02 for d in drafts)
    ]
    if not found:
        return drafts
    heard = recognise_pieces(
        mono, [(h.start, h.end) for h in found], files, language, PROMPTS.get(language)
    )
    out = list(drafts)
    for h, words in zip(found, heard, strict=True):
        if not words or not all(fillers.is_filler(w.text, language) for w in words):
            _LOG.debug("%.2f-%.2f s heard as %r: no filler", h.start, h.end, words)
            continue
        written = _written_filler(drafts, h.start, h.end)
        if written is not None:  # the recogniser wrote it, with times off: take these
            if written.end - written.start < fillers.MIN_FILLER_S:
                written.start, written.end = h.start, h.end
            else:
                written.start, written.end = min(written.start, h.start), max(written.end, h.end)
            continue
        for d in drafts:  # make room: neighbours give up the overlap
            if d.start < h.start < d.end:
                d.end = h.start
            elif d.start < h.end < d.end:
                d.start = h.end
        label = fillers.canonical(words[0].text)
        confidence = min(w.probability for w in words)
        out.append(_Draft(label, h.start, h.end, confidence, filler=True))
        _LOG.debug("filler %r found at %.2f-%.2f s", label, h.start, h.end)
    return sorted(out, key=lambda d: (d.start, d.end))


def _written_filler(drafts: list[_Draft], start: float, end: float) -> _Draft | None:
    """A filler word within ``_NEAR_S`` of ``start..end`` with no other word in between."""
    for i, d in enumerate(drafts):
        if not d.filler or d.start - _NEAR_S >= end or d.end + _NEAR_S <= start:
            continue
        low, high = min(d.end, start), max(d.start, end)
        between = drafts[max(0, i - 3) : i + 4]
        if not any(not o.filler and low < (o.start + o.end) / 2 < high for o in between):
            return d
    return None


def _merge(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping spans joined."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _finish(drafts: list[_Draft], duration: float) -> list[Word]:
    """Words in order with ``0 <= start <= end <= duration`` and no overlap."""
    words: list[Word] = []
    cursor = 0.0
    for i, d in enumerate(drafts):
        start = min(max(d.start, cursor), duration)
        end = min(max(d.end, start), duration)
        if i + 1 < len(drafts):
            end = max(start, min(end, max(drafts[i + 1].start, start)))
        # milliseconds, as the transcript JSON (and so the cache) holds them
        confidence = round(min(1.0, max(0.0, float(d.confidence))), 3)
        words.append(
            Word(d.text, round(float(start), 3), round(float(end), 3), confidence, d.filler)
        )
        cursor = start
    return words
