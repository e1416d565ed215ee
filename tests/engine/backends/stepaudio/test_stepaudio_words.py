"""Edits on words on the stepaudio backend (tiny fixture): the shared renderer, new words
cloned by the model, tags synthesised, nothing said when nothing is new."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.backends.base import TokenBackend, WordBackend
from engine.backends.stepaudio import StepAudioBackend, StepAudioOptions
from engine.backends.stepaudio.options import DecoderOptions, GenerationLimits
from engine.capabilities import check_supported
from engine.edits import EditSpec
from engine.guard import Guard
from engine.pipeline import render_audio
from engine.text.transcript import Transcript, Word
from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir
from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir

FAST = StepAudioOptions(
    seed=7,
    limits=GenerationLimits(length_multiple=1.0, min_tokens=6),
    decoder=DecoderOptions(steps=2),
    dither=0.0,
)
# Aligned words of the first 1.9 s of the LJ Speech clip (pocketsphinx on its known text).
WORDS = (
    Word("unless", 0.0, 0.37),
    Word("a", 0.37, 0.4),
    Word("system", 0.4, 0.87),
    Word("is", 0.87, 1.04),
    Word("established", 1.04, 1.84),
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> StepAudioBackend:
    root = tmp_path_factory.mktemp("model")
    write_tokenizer_dir(root)
    write_editx_dir(root)
    loaded = StepAudioBackend(root, "cpu", "fp32", options=FAST)
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def take(data_dir: Path) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(
        data_dir / "en_ljspeech_LJ050-0131.wav", frames=round(1.9 * 22050), dtype="float32"
    )
    return samples[np.newaxis, :], rate


def _edit(target: str, kind: str = "text") -> EditSpec:
    transcript = Transcript(WORDS, "en", "hand", 1.9, aligned=True)
    if kind == "fillers":
        return EditSpec("fillers", fillers=("a",), transcript=transcript)
    return EditSpec("text", "room_tone", target_text=target, transcript=transcript)


def _stages(seen: list[tuple[float, str]]) -> list[str]:
    return list(dict.fromkeys(stage for _, stage in seen))


def test_is_a_word_backend_that_declares_text_edits(backend: StepAudioBackend) -> None:
    assert isinstance(backend, WordBackend) and isinstance(backend, TokenBackend)
    for edit in (_edit("unless a method"), _edit("", "fillers")):
        check_supported(backend, edit)


def test_new_words_are_cloned_in_the_takes_voice(
    backend: StepAudioBackend, take: tuple[np.ndarray, int]
) -> None:
    audio, rate = take
    seen: list[tuple[float, str]] = []
    heard = Guard(max_wer=0.5, check=_Heard("method"))  # the span: "method" or "a method"
    result = backend.render_words(
        audio,
        rate,
        _edit("unless a method is established"),
        lambda f, s: seen.append((f, s)),
        heard,
    )
    assert result.sample_rate == rate and result.audio.shape[0] == 1
    assert [w["action"] for w in result.info["words"]] == [
        "kept",
        "kept",
        "replaced",
        "kept",
        "kept",
    ]
    (generation,) = result.info["generations"]
    assert generation["seed"] == 7 and generation["audio_tokens"] > 0
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] == 1.0
    assert _stages(seen) == ["analysis", "tokenize", "generate", "decode", "check", "splice"]


@pytest.mark.parametrize(
    ("target", "kind", "action"),
    [
        ("unless a [Laughter] system is established", "text", "inserted"),
        ("unless system is established", "text", "deleted"),
        ("", "fillers", "deleted"),
    ],
)
def test_tags_and_cuts_need_no_model(
    backend: StepAudioBackend, take: tuple[np.ndarray, int], target: str, kind: str, action: str
) -> None:
    audio, rate = take
    seen: list[tuple[float, str]] = []
    result = backend.render_words(
        audio, rate, _edit(target, kind), lambda f, s: seen.append((f, s))
    )
    assert "generations" not in result.info
    assert action in {w["action"] for w in result.info["words"]}
    assert not {"tokenize", "generate", "decode"} & set(_stages(seen))


class _Heard:
    """A checker that hears its answers in turn (the last from then on), counting calls."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.languages: list[str] = []

    def __call__(self, audio: np.ndarray, sample_rate: int, language: str) -> str:
        self.languages.append(language)
        return self.answers[min(len(self.languages), len(self.answers)) - 1]


def _quiet(_f: float, _s: str) -> None:
    pass


def test_each_re_said_span_is_checked_and_said_again_on_a_mismatch(
    backend: StepAudioBackend, take: tuple[np.ndarray, int]
) -> None:
    audio, rate = take
    heard = _Heard("nothing of the kind", "method")  # the span: "method" or "a method"
    guard = Guard(max_wer=0.5, tries=3, check=heard)
    edit = _edit("unless a method is established")
    edited = render_audio(backend, audio, rate, edit, _quiet, guard=guard)
    (generation,) = edited.info["generations"]
    assert heard.languages == ["en", "en"]  # auto: English words
    assert generation["tries"] == 2 and generation["wer"] == 0.0
    assert FAST.seed is not None
    assert generation["seed"] == FAST.seed + 1  # the second try's seed was kept


def test_a_span_that_never_matches_keeps_its_best_try_and_stops_at_n(
    backend: StepAudioBackend, take: tuple[np.ndarray, int]
) -> None:
    audio, rate = take
    heard = _Heard("nothing of the kind")
    guard = Guard(max_wer=0.2, tries=2, check=heard)
    edited = render_audio(
        backend, audio, rate, _edit("unless a method is established"), _quiet, guard=guard
    )
    (generation,) = edited.info["generations"]
    assert len(heard.languages) == 2 and generation["tries"] == 2 and generation["wer"] >= 1.0


def test_span_checks_can_be_switched_off_and_cuts_check_nothing(
    backend: StepAudioBackend, take: tuple[np.ndarray, int]
) -> None:
    audio, rate = take
    heard = _Heard("nothing of the kind")
    guard = Guard(check=heard)
    off = dataclasses.replace(_edit("unless a method is established"), guard=False)
    edited = render_audio(backend, audio, rate, off, _quiet, guard=guard)
    assert "wer" not in edited.info["generations"][0]
    render_audio(backend, audio, rate, _edit("unless a system"), _quiet, guard=guard)
    assert heard.languages == []  # nothing was said: nothing to check
