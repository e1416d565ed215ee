"""New words in text edits: the shared renderer with a stand-in voice (``say``) on a real take.

The stand-in says a stretch of the take itself, time-reversed, pitched up four semitones
and 12 dB quieter, inside 0.3 s of silence, so what the renderer fits (silence, pitch,
loudness) is off by a known amount and the rest of the take must come through untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from engine.audio import integrated_loudness, resample
from engine.backends.base import Progress, Rendered
from engine.backends.cpu.analysis import analyse
from engine.backends.cpu.text_edit import render_text, render_words
from engine.edits import EditSpec
from engine.errors import BackendError, UnsupportedEditError
from engine.text.transcript import Transcript, Word

CLIP = "en_ljspeech_LJ050-0131.wav"
TEXT = (
    "unless a system is established for the frequent formal review of activities "
    "thereunder. in this regard"
)
FADE_S, MARGIN_S = 0.010, 0.020
# Cuts lie within 50 ms of the aligned word boundary, and the joins fade over 10 ms.
NEAR_S = 0.060
PAD_S, SHIFT_ST, GAIN_DB = 0.3, 4.0, -12.0


def _nothing(_fraction: float, _stage: str) -> None:
    """Progress sink."""


@dataclass
class FakeVoice:
    """A ``Say`` that records its calls and says the take's "established", reversed."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    silent: bool = False

    def __call__(
        self, text: str, prompt: np.ndarray, sample_rate: int, prompt_text: str, progress: Progress
    ) -> np.ndarray:
        progress(0.5, "generate")
        self.calls.append(
            {"text": text, "prompt": prompt, "rate": sample_rate, "prompt_text": prompt_text}
        )
        return said_by_the_fake(prompt, sample_rate, self.silent)


def said_by_the_fake(prompt: np.ndarray, rate: int, silent: bool = False) -> np.ndarray:
    words = prompt[round(1.04 * rate) : round(1.84 * rate)][::-1]
    # Played SHIFT_ST higher (and shorter) by resampling, then GAIN_DB quieter.
    higher = resample(words, round(rate * 2 ** (SHIFT_ST / 12)), rate)
    higher = higher * 10 ** (GAIN_DB / 20) * (0.0 if silent else 1.0)
    pad = np.zeros(round(PAD_S * rate), np.float32)
    return np.concatenate([pad, higher, pad]).astype(np.float32)


@dataclass(frozen=True)
class Take:
    audio: np.ndarray
    rate: int
    transcript: Transcript

    @property
    def length(self) -> int:
        return int(self.audio.shape[-1])


@pytest.fixture(scope="module")
def take(data_dir: Path) -> Take:
    from engine.text.transcribe import transcribe

    samples, rate = soundfile.read(data_dir / CLIP, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(samples.T)
    transcript, _ = transcribe(audio, rate, language="en", text=TEXT)
    return Take(audio, rate, transcript)


def edit_with(take: Take, target: str, voice: FakeVoice | None = None) -> Rendered:
    edit = EditSpec("text", "room_tone", target_text=target, transcript=take.transcript)
    return render_text(take.audio, take.rate, edit, _nothing, say=voice)


def same_ends(result: Rendered, take: Take) -> tuple[int, int]:
    """Samples at the start and at the end where the result is the input, sample for sample."""
    out, source = result.audio, take.audio
    n = min(out.shape[-1], source.shape[-1])
    head = np.flatnonzero(np.any(out[:, :n] != source[:, :n], axis=0))
    tail = np.flatnonzero(np.any(out[:, ::-1][:, :n] != source[:, ::-1][:, :n], axis=0))
    return int(head[0]) if head.size else n, int(tail[0]) if tail.size else n


def entry(result: Rendered, word: str) -> dict[str, Any]:
    (found,) = [w for w in result.info["words"] if w["word"].rstrip(".") == word]
    return found


def said_span(
    result: Rendered, actions: tuple[str, ...] = ("replaced", "new")
) -> tuple[float, float]:
    """Output start and end (s) of the said words, silence margins included."""
    said = [w for w in result.info["words"] if w["action"] in actions]
    return said[0]["start"] - MARGIN_S, said[-1]["end"] + MARGIN_S


def median_f0(x: np.ndarray, rate: int) -> float:
    return analyse(x, rate).median_f0


# --- one word replaced -------------------------------------------------------------------


@pytest.fixture(scope="module")
def replaced(take: Take) -> tuple[Rendered, FakeVoice]:
    voice = FakeVoice()
    return edit_with(take, TEXT.replace("formal", "annual"), voice), voice


def test_the_voice_gets_the_new_word_and_the_take_as_prompt(
    replaced: tuple[Rendered, FakeVoice], take: Take
) -> None:
    _, voice = replaced
    (call,) = voice.calls
    assert call["text"] == "annual" and call["rate"] == take.rate
    # The whole take (under 30 s) with its transcript.
    np.testing.assert_array_equal(call["prompt"], take.audio[0])
    assert call["prompt_text"] == take.transcript.text


def test_the_report_lists_the_replaced_word_between_its_neighbours(
    replaced: tuple[Rendered, FakeVoice], take: Take
) -> None:
    result, _ = replaced
    words = result.info["words"]
    expected = TEXT.replace("formal", "annual").split()
    assert [w["word"] for w in words] == expected
    assert [w["action"] for w in words] == [
        "replaced" if w == "annual" else "kept" for w in expected
    ]
    annual, before, after = (
        entry(result, "annual"),
        entry(result, "frequent"),
        entry(result, "review"),
    )
    formal = next(w for w in take.transcript.words if w.text == "formal")
    assert (annual["from_start"], annual["from_end"]) == (
        round(formal.start, 3),
        round(formal.end, 3),
    )
    assert before["end"] <= annual["start"] < annual["end"] <= after["start"]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)


def test_audio_outside_the_span_is_the_take_and_the_lengths_add_up(
    replaced: tuple[Rendered, FakeVoice], take: Take
) -> None:
    result, _ = replaced
    rate = take.rate
    head, tail = same_ends(result, take)
    frequent, formal, review = (
        next(w for w in take.transcript.words if w.text == t)
        for t in ("frequent", "formal", "review")
    )
    # Untouched: everything up to the pause before "formal", everything from the pause after.
    assert frequent.end - NEAR_S <= head / rate <= formal.start + NEAR_S
    assert formal.end - NEAR_S <= (take.length - tail) / rate <= review.start + NEAR_S
    inserted = result.audio.shape[-1] - head - tail
    removed = take.length - head - tail - 2 * round(FADE_S * rate)
    start, end = said_span(result)
    assert inserted == pytest.approx((end - start) * rate, abs=0.003 * rate)
    assert formal.end - formal.start - 0.1 <= removed / rate <= review.start - frequent.end
    # The voice's silence is trimmed: the said words are the 0.8 s stretch and its margins.
    spoken = len(said_by_the_fake(take.audio[0], rate)) / rate - 2 * PAD_S
    assert spoken - 0.1 <= inserted / rate <= spoken + 2 * MARGIN_S + 0.01
    assert result.audio.shape[-1] == take.length - removed + inserted - 2 * round(FADE_S * rate)


def test_the_said_word_is_as_loud_and_as_high_as_its_neighbours(
    replaced: tuple[Rendered, FakeVoice], take: Take
) -> None:
    result, _ = replaced
    rate = take.rate
    head, tail = same_ends(result, take)
    fade = round(FADE_S * rate)
    said = result.audio[0, head + fade : result.audio.shape[-1] - tail - fade]
    context = np.concatenate(
        [
            take.audio[0, head - round(1.5 * rate) : head],
            take.audio[0, -tail : -tail + round(1.5 * rate)],
        ]
    )
    raw = said_by_the_fake(take.audio[0], rate)
    loudness = integrated_loudness(said[np.newaxis], rate)
    target = integrated_loudness(context[np.newaxis], rate)
    # The voice was 12 dB under the take; now within 1.5 dB of the neighbouring words.
    assert integrated_loudness(raw[np.newaxis], rate) < target - 8
    assert abs(loudness - target) < 1.5, (loudness, target)
    # Pitched 4 semitones up by the voice; moved back to within 1 semitone of the neighbours.
    before = 12 * math.log2(median_f0(raw, rate) / median_f0(context, rate))
    after = 12 * math.log2(median_f0(said, rate) / median_f0(context, rate))
    assert before > 2.5 and abs(after) < 1.0, (before, after)


# --- where the span goes -----------------------------------------------------------------


def test_added_words_are_new_and_nothing_of_the_take_goes(take: Take) -> None:
    voice = FakeVoice()
    result = edit_with(take, TEXT.replace("formal", "formal and annual"), voice)
    assert voice.calls[0]["text"] == "and annual"
    actions = {w["word"]: w["action"] for w in result.info["words"]}
    assert (actions["and"], actions["annual"], actions["formal"]) == ("new", "new", "kept")
    assert "from_start" not in entry(result, "annual")
    head, tail = same_ends(result, take)
    fade = round(FADE_S * take.rate)
    # Cut at one point: nothing removed (each join's outer samples equal its pieces').
    assert head + tail + 2 * fade == pytest.approx(take.length, abs=2)
    formal, review = (
        next(w for w in take.transcript.words if w.text == t) for t in ("formal", "review")
    )
    assert abs((head + fade) / take.rate - (formal.end + review.start) / 2) <= 0.05
    start, end = said_span(result)
    assert result.audio.shape[-1] - take.length == pytest.approx(
        (end - start) * take.rate - 2 * fade, abs=0.003 * take.rate
    )


def test_fewer_new_words_than_replaced_ones_report_the_rest_deleted(take: Take) -> None:
    result = edit_with(take, TEXT.replace("frequent formal", "annual"), FakeVoice())
    annual, formal = entry(result, "annual"), entry(result, "formal")
    assert annual["action"] == "replaced" and formal["action"] == "deleted"
    frequent = next(w for w in take.transcript.words if w.text == "frequent")
    assert annual["from_start"] == round(frequent.start, 3)  # in order: the first replaced
    assert formal["start"] == formal["end"] >= annual["end"]


def test_two_changes_are_said_apart(take: Take) -> None:
    voice = FakeVoice()
    target = TEXT.replace("system", "method").replace("review", "audit")
    result = edit_with(take, target, voice)
    assert [c["text"] for c in voice.calls] == ["method", "audit"]
    assert [w["word"] for w in result.info["words"] if w["action"] == "replaced"] == [
        "method",
        "audit",
    ]
    head, tail = same_ends(result, take)
    system, review = (
        next(w for w in take.transcript.words if w.text == t) for t in ("system", "review")
    )
    assert system.start - 0.1 <= head / take.rate <= system.start + NEAR_S
    assert review.end - NEAR_S <= (take.length - tail) / take.rate <= review.end + 0.4


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_span_at_an_end_keeps_the_takes_silence_there(take: Take, where: str) -> None:
    word = "unless" if where == "first" else "regard"
    result = edit_with(take, TEXT.replace(word, "indeed"), FakeVoice())
    assert entry(result, "indeed")["action"] == "replaced"
    head, tail = same_ends(result, take)
    last = take.transcript.words[-1]
    if where == "first":  # the take has no leading silence; everything after the word stays
        assert (take.length - tail) / take.rate <= take.transcript.words[1].start + 0.06
    else:  # the trailing silence after the last word stays
        assert (take.length - tail) / take.rate <= last.end + 0.06
        assert head / take.rate >= take.transcript.words[-2].end - 0.06


# --- the prompt, whole words, errors -----------------------------------------------------


def test_long_takes_give_a_prompt_of_at_most_30_s_between_word_boundaries(take: Take) -> None:
    copies = 6  # 46 s
    audio = np.tile(take.audio, (1, copies))
    duration = take.length / take.rate
    words = tuple(
        Word(w.text, w.start + k * duration, w.end + k * duration)
        for k in range(copies)
        for w in take.transcript.words
    )
    long_take = Take(audio, take.rate, Transcript(words, "en", "tiled", copies * duration))
    voice = FakeVoice()
    target = " ".join([TEXT] * (copies - 1) + [TEXT.replace("formal", "annual")])
    result = edit_with(long_take, target, voice)
    (call,) = voice.calls
    prompt, text = call["prompt"], call["prompt_text"]
    assert 25.0 <= len(prompt) / take.rate <= 30.0
    # It ends with the take (the span lies in its last 15 s) and starts at a word boundary.
    np.testing.assert_array_equal(prompt, audio[0, -len(prompt) :])
    assert text.endswith("in this regard") and len(text.split()) < len(words)
    start = (audio.shape[-1] - len(prompt)) / take.rate
    first = next(w for w in words if w.start >= start - 1e-9)
    assert text.split()[0] == first.text and first.start - start < 0.1
    assert entry(result, "annual")["action"] == "replaced"


def test_a_mandarin_change_is_said_with_the_rest_of_its_word(take: Take) -> None:
    words = (Word("我们", 0.2, 0.9), Word("今天", 1.1, 1.84), Word("开会", 2.18, 2.97))
    zh = Take(take.audio, take.rate, Transcript(words, "zh", "hand", take.length / take.rate))
    voice = FakeVoice()
    result = edit_with(zh, "我们明天开会", voice)
    assert voice.calls[0]["text"] == "明天"
    report = [(w["word"], w["action"]) for w in result.info["words"]]
    assert report == [
        ("我", "kept"),
        ("们", "kept"),
        ("明", "replaced"),
        ("天", "replaced"),
        ("开", "kept"),
        ("会", "kept"),
    ]
    assert entry(result, "天")["from_start"] == pytest.approx(1.47, abs=0.001)


def test_language_tags_go_in_front_of_the_said_words(take: Take) -> None:
    voice = FakeVoice()
    edit_with(take, "[Cantonese] " + TEXT.replace("formal", "annual"), voice)
    assert voice.calls[0]["text"] == "[Cantonese]annual"


def test_silence_from_the_voice_is_an_error_and_no_voice_is_unsupported(take: Take) -> None:
    with pytest.raises(BackendError, match="gave silence"):
        edit_with(take, TEXT.replace("formal", "annual"), FakeVoice(silent=True))
    with pytest.raises(UnsupportedEditError, match=r"'annual'.*stepaudio"):
        edit_with(take, TEXT.replace("formal", "annual"))


def test_tags_and_cuts_do_not_call_the_voice(take: Take) -> None:
    voice = FakeVoice()
    target = TEXT.replace("formal ", "").replace("for the", "for [Breathing] the")
    edit = EditSpec("text", "room_tone", target_text=target, transcript=take.transcript)
    result = render_words(take.audio, take.rate, edit, _nothing, say=voice)
    assert voice.calls == []
    assert {w["action"] for w in result.info["words"]} == {"kept", "deleted", "inserted"}
    fillers = EditSpec("fillers", fillers=("a",), transcript=take.transcript)
    result = render_words(take.audio, take.rate, fillers, _nothing, say=voice)
    assert [w["word"] for w in result.info["words"] if w["action"] == "deleted"] == ["a"]
