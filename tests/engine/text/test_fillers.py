"""Fillers: the word lists, uncovered speech, and hesitations in real meeting recordings
(AMI), including one spliced into another place of the same recording."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import engine.text.transcribe as transcribe_module
from engine.evaluation.harness import Clip, find_clips
from engine.text.fillers import is_filler, uncovered_spans, voiced_fraction
from engine.text.transcribe import transcribe
from engine.text.transcript import Transcript

# Where the AMI trn06 speaker hesitates ("but, uh, they"; "understanding, um, the"): both
# Whisper models write these when prompted, and each, heard alone, is recognised as one.
TRN06_FILLERS = ((15.9, 16.3), (26.45, 26.8))


@pytest.mark.parametrize(
    ("word", "language", "expected"),
    [
        ("um", "en", True),
        ("Umm,", "en", True),
        ("Hmmmm.", "en", True),
        ("uh", "en", True),
        ("er", "en", True),
        ("um", "zh", False),
        ("嗯，", "zh", True),  # noqa: RUF001 - Mandarin comma
        ("呃", "zh", True),
        ("so", "en", False),
        ("umbrella", "en", False),
        ("um", "fr", False),  # no list for the language
    ],
)
def test_filler_words(word: str, language: str, expected: bool) -> None:
    assert is_filler(word, language) is expected


def test_a_client_list_replaces_the_default() -> None:
    assert is_filler("like", "en", ["like", "you know"])
    assert not is_filler("um", "en", ["like"])


def test_uncovered_speech() -> None:
    speech = [(0.0, 2.0), (3.0, 4.0)]
    words = [(0.1, 0.5), (0.9, 2.0), (3.0, 3.5)]
    assert uncovered_spans(speech, words, margin=0.0) == [(0.0, 0.1), (0.5, 0.9), (3.5, 4.0)]
    assert uncovered_spans(speech, [], margin=0.0) == speech
    assert uncovered_spans(speech, [(-1.0, 5.0)]) == []


def test_voicing_of_a_hum_and_of_noise() -> None:
    rate = 16000
    t = np.arange(rate // 2) / rate
    hum = np.sum([np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8)], axis=0)
    noise = np.random.default_rng(0).normal(0, 0.1, rate // 2)
    assert voiced_fraction(hum, rate) > 0.9
    assert voiced_fraction(noise, rate) < 0.1


def _fillers(transcript: Transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for w in transcript.words if w.filler]


def _plain(transcript: Transcript) -> list[str]:
    """The words that are not fillers, lower case, without punctuation."""
    return [re.sub(r"[^\w']", "", w.text.lower()) for w in transcript.words if not w.filler]


def _found(found: list[tuple[str, float, float]], start: float, end: float) -> bool:
    return any(a < end and b > start for _, a, b in found)


@pytest.fixture(scope="module")
def trn06(data_dir: Path) -> Clip:
    return find_clips([data_dir / "en_ami_meeting_trn06.wav"])[0]


@pytest.fixture(scope="module")
def trn06_transcript(trn06: Clip) -> Transcript:
    return transcribe(trn06.audio, trn06.sample_rate, language="en")[0]


@pytest.fixture
def without_gap_search() -> Iterator[None]:
    transcribe_module._FIND_HESITATIONS = False
    yield
    transcribe_module._FIND_HESITATIONS = True


def test_fillers_in_a_meeting_are_words_marked_as_fillers(trn06_transcript: Transcript) -> None:
    found = _fillers(trn06_transcript)
    print("AMI trn06 fillers:", found)
    for start, end in TRN06_FILLERS:
        assert _found(found, start, end), f"no filler at {start}-{end} s: {found}"
    assert len(found) == len(TRN06_FILLERS)
    assert all(is_filler(text, "en") for text, _, _ in found)
    words = _plain(trn06_transcript)
    assert len(words) > 60  # the sentence around them is all there
    assert {"understanding", "intricacies", "but", "they"} <= set(words)


def test_what_the_prompt_and_the_gap_search_each_find(
    trn06: Clip, trn06_transcript: Transcript, without_gap_search: None
) -> None:
    """Measured: recognition alone writes no filler; the prompt or the gap search (the
    English default) finds both, and so do the two together."""

    def run(prompt: bool) -> list[tuple[str, float, float]]:
        heard = transcribe(trn06.audio, trn06.sample_rate, language="en", filler_prompt=prompt)
        return _fillers(heard[0])

    plain, prompted = run(False), run(True)
    transcribe_module._FIND_HESITATIONS = True
    both = run(True)
    for label, found in [
        ("no prompt, no gap search", plain),
        ("prompt only", prompted),
        ("gap search only (default)", _fillers(trn06_transcript)),
        ("prompt + gap search", both),
    ]:
        hits = sum(_found(found, a, b) for a, b in TRN06_FILLERS)
        print(f"AMI trn06, {label}: {hits}/{len(TRN06_FILLERS)} fillers, {found}")
    assert plain == []
    assert all(_found(prompted, a, b) for a, b in TRN06_FILLERS)
    assert all(_found(both, a, b) for a, b in TRN06_FILLERS)


def test_fillers_in_the_sparse_meeting_clip(data_dir: Path) -> None:
    clip = find_clips([data_dir / "en_ami_meeting_trn04.wav"])[0]
    heard, _ = transcribe(clip.audio, clip.sample_rate, language="en")
    found = _fillers(heard)
    print("AMI trn04 fillers:", found, "| text:", heard.text)
    # a "hmm" and an "um" before the last phrases (each heard alone: "Hmm." / "Um.")
    assert _found(found, 25.3, 25.55) and _found(found, 28.75, 29.25)
    assert len(found) <= 3


def test_a_filler_spliced_into_a_pause_of_the_same_recording_is_found(
    trn06: Clip, trn06_transcript: Transcript
) -> None:
    rate = trn06.sample_rate
    _, start, end = _fillers(trn06_transcript)[-1]  # the "um" at 26.5 s
    um = trn06.audio[:, round(start * rate) : round(end * rate)].copy()
    fade = round(0.01 * rate)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    um[:, :fade] *= ramp
    um[:, -fade:] *= ramp[::-1]
    at = 5.65  # in the pause between "to stand." and "I think"
    head = trn06.audio[:, : round(at * rate)]
    tail = trn06.audio[:, round(at * rate) : round(10.0 * rate)]
    spliced = np.concatenate([head, um, tail], axis=1)
    heard, _ = transcribe(spliced, rate, language="en")
    found = _fillers(heard)
    print(f"spliced 'um' at {at:.2f}-{at + um.shape[1] / rate:.2f} s:", found)
    assert _found(found, at + 0.05, at + um.shape[1] / rate - 0.05)
    assert len(found) == 1
    assert {"floods", "ceiling", "joy"} <= set(_plain(heard))
