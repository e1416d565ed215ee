"""The slice's text when none is given, guarded generation and long takes, on the tiny
official-layout fixture."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from engine.audio import resample
from engine.backends.base import Progress
from engine.backends.stepaudio import StepAudioBackend, StepAudioPrompt
from engine.backends.stepaudio.llm.generate import Generation
from engine.backends.stepaudio.prompts import edit_instruction
from engine.edits import EditSpec
from engine.guard import Guard
from engine.pipeline import render_audio
from engine.text.cache import TranscriptCache
from engine.text.transcribe import transcribe
from tests.engine.backends.stepaudio.test_stepaudio_backend import FAST, RATE, clip

SPEECH_RATE = 16000


class Recording(StepAudioBackend):
    """The stepaudio backend, keeping the edit and prompt each generation receives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[EditSpec, StepAudioPrompt]] = []

    def generate(self, prompt: StepAudioPrompt, edit: EditSpec, progress: Progress) -> Generation:
        self.received.append((edit, prompt))
        return super().generate(prompt, edit, progress)


class Checker:
    """Hears ``heard`` in every render, counting the calls."""

    def __init__(self, heard: str) -> None:
        self.heard = heard
        self.calls = 0

    def __call__(self, audio: np.ndarray, sample_rate: int, language: str) -> str:
        self.calls += 1
        return self.heard


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> Recording:
    loaded = Recording(model_dir, options=dataclasses.replace(FAST, segment_seconds=2.0))
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def speech(data_dir: Path) -> np.ndarray:
    """The first 1.8 s of a read sentence ("unless a system ..."), mono 16 kHz."""
    data, rate = soundfile.read(data_dir / "en_ljspeech_LJ050-0131.wav", dtype="float32")
    return resample(data[np.newaxis], rate, SPEECH_RATE)[:, : round(1.8 * SPEECH_RATE)]


def _quiet(_f: float, _s: str) -> None:
    pass


def test_an_edit_without_text_gets_the_transcript_of_the_slice_in_its_prompt(
    backend: Recording, speech: np.ndarray, tmp_path: Path
) -> None:
    cache = TranscriptCache(tmp_path)
    backend.received.clear()
    edit = EditSpec("emotion", "happy", guard=False)
    edited = render_audio(backend, speech, SPEECH_RATE, edit, _quiet, transcripts=cache)
    heard, cached = transcribe(speech, SPEECH_RATE, cache=cache)
    assert cached and heard.text.lower().startswith("unless")  # the pipeline's, cached
    received, prompt = backend.received[-1]
    assert received.text == heard.text
    assert edited.info["text_source"] == "transcription" and "transcribe" in edited.timings
    # The prompt is the official edit prompt with that text, by the prompt rule.
    ids, _ = backend._prompt_ids(prompt, received)
    assert backend._prompts is not None
    instruction = edit_instruction("emotion", "happy", heard.text)
    assert ids == backend._prompts.edit(instruction, prompt.codes.token_string)
    assert ids != backend._prompt_ids(prompt, dataclasses.replace(received, text=""))[0]


def test_the_requests_text_is_used_as_given_and_nothing_transcribed(
    backend: Recording, speech: np.ndarray, tmp_path: Path
) -> None:
    cache = TranscriptCache(tmp_path)
    edit = EditSpec("style", "whisper", text="unless a system", guard=False)
    edited = render_audio(backend, speech, SPEECH_RATE, edit, _quiet, transcripts=cache)
    assert backend.received[-1][0].text == "unless a system"
    assert edited.info["text_source"] == "request" and len(cache) == 0
    # Edits whose prompt holds no text say nothing about it.
    denoised = render_audio(backend, speech, SPEECH_RATE, EditSpec("denoise"), _quiet)
    assert "text_source" not in denoised.info


def test_guarded_generation_retries_on_a_mismatch_and_stops_at_n(backend: Recording) -> None:
    source = clip(1.2, seed=11)
    checker = Checker("nothing of the kind")
    backend.received.clear()
    edit = EditSpec("emotion", "sad", text="it was a fine day")
    guard = Guard(max_wer=0.3, tries=3, check=checker)
    edited = render_audio(backend, source, RATE, edit, _quiet, guard=guard)
    assert checker.calls == 3
    assert [e.seed for e, _ in backend.received] == [None, 8, 9]  # FAST's seed is 7
    generation = edited.info["generation"]
    assert generation["tries"] == 3 and generation["wer"] == 1.0 and generation["seed"] == 7
    assert edited.info["tokenizer"]["calls"] == 1  # one tokenization for every try
    assert edited.timings["check"] >= 0.0


def test_guarded_generation_keeps_a_matching_first_try_and_can_be_switched_off(
    backend: Recording,
) -> None:
    source = clip(1.2, seed=12)
    checker = Checker("It was a fine day.")
    edit = EditSpec("emotion", "sad", text="it was a fine day")
    edited = render_audio(backend, source, RATE, edit, _quiet, guard=Guard(check=checker))
    assert checker.calls == 1
    assert edited.info["generation"]["tries"] == 1 and edited.info["generation"]["wer"] == 0.0
    off = dataclasses.replace(edit, guard=False)
    edited = render_audio(backend, source, RATE, off, _quiet, guard=Guard(check=checker))
    assert checker.calls == 1 and "wer" not in edited.info["generation"]
    assert "check" not in edited.timings


def test_a_take_longer_than_the_segment_length_is_edited_per_segment(backend: Recording) -> None:
    # Bursts of tone with pauses between them: 5.4 s, three times the 2 s segments allow.
    bursts = [
        np.concatenate([clip(0.7, seed=s), np.zeros((2, 2205), np.float32)], 1) for s in range(7)
    ]
    source = np.concatenate(bursts, axis=1)
    backend.received.clear()
    fractions: list[float] = []
    edited = render_audio(
        backend, source, RATE, EditSpec("denoise"), lambda f, _s: fractions.append(f)
    )
    segments = edited.info["segments"]
    assert len(segments) == len(backend.received) >= 3
    assert all(s["end"] - s["start"] <= 2.0 for s in segments)
    assert all(s["tokenizer"]["calls"] == 1 for s in segments)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert edited.audio.shape[0] == 2 and np.all(np.isfinite(edited.audio))
