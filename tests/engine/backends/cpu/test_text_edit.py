"""Text edits on the CPU backend, on real clips, checked by transcribing the results.

Word times come from ``engine.text.transcribe`` (Whisper tiny.en, force-aligned with
pocketsphinx; Whisper base for Mandarin), as the engine finds them for a text edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.audio import integrated_loudness, to_mono
from engine.backends.base import Rendered
from engine.backends.cpu import CpuBackend
from engine.backends.cpu.text_edit import render_fillers, render_text
from engine.capabilities import check_supported
from engine.dsp import frame_rms_db, runs
from engine.edits import MASK_SOUNDS, EditSpec
from engine.errors import BackendError, UnsupportedEditError
from engine.evaluation.asr import normalise_words, word_error_rate
from engine.evaluation.harness import Clip, find_clips
from engine.state import STATE_DIR_ENV
from engine.text import models
from engine.text.diff import normalise
from engine.text.transcript import Transcript, Word

JFK, HAPPY = "en_jfk_inaugural_1961.flac", "en_stepaudio_happy.wav"
AMI, AISHELL = "en_ami_meeting_trn06.wav", "zh_aishell1_BAC009S0724W0121.wav"
JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
FADE_S = 0.010
# The engine's transcription: (audio, rate, language="en") -> words.
Transcribe = Callable[..., Transcript]


def _nothing(_fraction: float, _stage: str) -> None:
    """Progress sink."""


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> dict[str, Clip]:
    return {c.name: c for c in find_clips([data_dir / JFK, data_dir / HAPPY])}


@pytest.fixture(scope="module")
def transcribe(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Transcribe]:
    """The engine's transcription, offline, with its state (joined models) in a temp folder."""
    from engine.text.transcribe import transcribe as find_words

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv(STATE_DIR_ENV, str(tmp_path_factory.mktemp("state")))

        def words(audio: np.ndarray, rate: int, language: str = "en") -> Transcript:
            return find_words(audio, rate, language=language)[0]

        yield words


@pytest.fixture(scope="module")
def takes(clips: dict[str, Clip], transcribe: Transcribe) -> dict[str, Transcript]:
    return {name: transcribe(c.audio, c.sample_rate) for name, c in clips.items()}


def _text_edit(clip: Clip, take: Transcript, target: str, option: str = "room_tone") -> Rendered:
    edit = EditSpec("text", option, target_text=target, transcript=take)
    return render_text(clip.audio, clip.sample_rate, edit, _nothing)


def _heard(result: Rendered, transcribe: Transcribe) -> list[str]:
    return normalise_words(transcribe(result.audio, result.sample_rate).text)


def _index(take: Transcript, word: str) -> int:
    """Index of the first word of ``take`` that reads ``word`` (case, punctuation aside)."""
    return [normalise(w.text) for w in take.words].index(word)


def _entries(result: Rendered, action: str) -> list[dict[str, Any]]:
    return [w for w in result.info["words"] if w["action"] == action]


# --- without the recogniser ------------------------------------------------------------


def test_the_engine_must_supply_the_words(clips: dict[str, Clip]) -> None:
    clip = clips[HAPPY]
    with pytest.raises(BackendError, match="engine must transcribe the slice"):
        render_text(
            clip.audio, clip.sample_rate, EditSpec("text", "silence", target_text="x"), _nothing
        )
    with pytest.raises(BackendError, match=r"EditSpec\.transcript"):
        render_fillers(clip.audio, clip.sample_rate, EditSpec("fillers"), _nothing)


def test_new_words_are_unsupported_naming_the_backends_that_can_say_them(
    clips: dict[str, Clip],
) -> None:
    clip = clips[HAPPY]
    take = Transcript((Word("You", 0.0, 0.28), Word("know", 0.28, 0.5)), "en", "hand", 7.44)
    with pytest.raises(UnsupportedEditError, match=r"new words \('see'\).*: stepaudio$"):
        _text_edit(clip, take, "You see")


def test_the_cpu_backend_declares_and_dispatches_text_edits(clips: dict[str, Clip]) -> None:
    assert CpuBackend.edits["text"] == MASK_SOUNDS
    assert CpuBackend.edits["fillers"] == ()
    backend = CpuBackend()
    take = Transcript((Word("You", 0.0, 0.28), Word("know", 0.28, 0.5)), "en", "hand", 7.44)
    for edit in (
        EditSpec("text", "silence", target_text="{You} know", transcript=take),
        EditSpec("fillers", fillers=("know",), transcript=take),
    ):
        check_supported(backend, edit)
        clip = clips[HAPPY]
        result = backend.render(clip.audio, clip.sample_rate, edit, _nothing)
        assert result.info["words"][0]["word"] == "You"


def test_a_client_transcript_that_differs_is_reported(clips: dict[str, Clip]) -> None:
    clip = clips[HAPPY]
    take = Transcript((Word("You", 0.0, 0.28), Word("know", 0.28, 0.5)), "en", "hand", 7.44)
    edit = EditSpec("text", "silence", text="You no", target_text="You no", transcript=take)
    result = render_text(clip.audio, clip.sample_rate, edit, _nothing)
    assert result.info["text_mismatch"] == [{"client": "no", "engine": "know", "at": 0.28}]
    assert [w["action"] for w in result.info["words"]] == ["kept", "kept"]
    np.testing.assert_array_equal(result.audio, clip.audio)


# --- deletions ---------------------------------------------------------------------------

DELETIONS = [
    (JFK, "And so, my fellow Americans, ask what you can do for your country.", ["not"]),
    (
        HAPPY,
        "You know, I just finished that big project and feel so relieved. "
        "What a wonderful feeling!",
        ["everything", "seems", "easier", "more", "colorful"],
    ),
]


@pytest.fixture(scope="module")
def deleted(clips: dict[str, Clip], takes: dict[str, Transcript]) -> list[tuple[Clip, Rendered]]:
    return [
        (clips[name], _text_edit(clips[name], takes[name], target)) for name, target, _ in DELETIONS
    ]


@pytest.mark.parametrize("case", range(len(DELETIONS)))
def test_deleting_words_removes_exactly_them(
    case: int,
    deleted: list[tuple[Clip, Rendered]],
    transcribe: Transcribe,
) -> None:
    _, target, gone = DELETIONS[case]
    clip, result = deleted[case]
    heard = _heard(result, transcribe)
    expected = normalise_words(target)
    # Whisper tiny may mishear one word of the spliced take ("Americans" -> "America").
    assert word_error_rate(" ".join(expected), " ".join(heard)) <= 1 / len(expected) + 1e-9
    for word in gone:
        assert heard.count(word) <= expected.count(word), (word, heard)
    removed = {w["word"] for w in _entries(result, "deleted")}
    assert {normalise_words(w)[0] for w in removed} >= set(gone)
    assert result.audio.shape[-1] < clip.audio.shape[-1]


def _levels(audio: np.ndarray, rate: int) -> np.ndarray:
    return frame_rms_db(to_mono(audio), rate, hop=0.005, window=0.01)


def _pauses(audio: np.ndarray, rate: int) -> list[float]:
    """Lengths (s) of the quiet runs between sounding stretches (quiet: under the higher of
    30 dB below the loud frames and 10 dB above the floor)."""
    levels = frame_rms_db(to_mono(audio), rate, hop=0.005, window=0.02)
    floor, loud = np.percentile(levels, [5, 95])
    quiet = levels < max(loud - 30, floor + 10)
    inner = runs(quiet)
    return [(b - a) * 0.005 for a, b in inner if a > 0 and b < len(levels)]


@pytest.mark.parametrize("case", range(len(DELETIONS)))
def test_joins_are_no_louder_than_their_neighbours_and_pauses_stay_the_speakers(
    case: int, deleted: list[tuple[Clip, Rendered]]
) -> None:
    clip, result = deleted[case]
    levels = _levels(result.audio, result.sample_rate)
    joins = sorted({w["start"] for w in _entries(result, "deleted")})
    assert joins
    for t in joins:
        at = round(t / 0.005)
        join = levels[max(0, at - 4) : at + 5].max()  # the 10 ms fade and its window
        around = np.concatenate(
            [levels[max(0, at - 44) : max(0, at - 4)], levels[at + 5 : at + 45]]
        )
        assert join <= around.max() + 0.5, (t, join, around.max())
    assert (
        max(_pauses(result.audio, result.sample_rate))
        <= max(_pauses(clip.audio, clip.sample_rate)) + 0.02
    )


# --- masks -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masked(clips: dict[str, Clip], takes: dict[str, Transcript]) -> dict[str, Rendered]:
    target = JFK_TEXT.replace("Americans", "{Americans}")
    return {option: _text_edit(clips[JFK], takes[JFK], target, option) for option in MASK_SOUNDS}


def _masked_span(result: Rendered, clip: Clip) -> tuple[int, int]:
    """First and last sample where the result differs from the input."""
    changed = np.flatnonzero(np.any(result.audio != clip.audio, axis=0))
    return int(changed[0]), int(changed[-1]) + 1


@pytest.mark.parametrize("option", MASK_SOUNDS)
def test_masks_keep_the_length_exactly_and_touch_only_the_word(
    option: str,
    masked: dict[str, Rendered],
    clips: dict[str, Clip],
    transcribe: Transcribe,
) -> None:
    clip, result = clips[JFK], masked[option]
    rate = clip.sample_rate
    assert result.audio.shape == clip.audio.shape
    (word,) = _entries(result, "masked")
    assert word["word"] == "Americans"
    start, end = _masked_span(result, clip)
    assert word["from_start"] - 0.1 <= start / rate and end / rate <= word["from_end"] + 0.1
    inner = result.audio[:, start + round(0.005 * rate) : end - round(0.005 * rate)]
    speech = integrated_loudness(clip.audio, rate)
    if option == "silence":
        assert not inner.any()
    elif option == "bleep":
        spectrum = np.abs(np.fft.rfft(inner[0]))
        peak = np.fft.rfftfreq(inner.shape[-1], 1 / rate)[np.argmax(spectrum)]
        assert abs(peak - 1000) < 10
        assert abs(integrated_loudness(inner, rate) - speech) < 1.0
    else:  # room tone: the take's quiet, far under its speech
        assert integrated_loudness(inner, rate) < speech - 20
        assert inner.any()
    assert "americans" not in _heard(result, transcribe)


# --- tags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "before", "after"),
    [
        (JFK_TEXT.replace("Americans, ", "Americans, [Laughter] "), "americans", "ask"),
        (JFK_TEXT.replace("your country can", "your [Breathing] country can"), "your", "country"),
    ],
)
def test_tags_land_within_50_ms_of_the_word_boundary(
    target: str, before: str, after: str, clips: dict[str, Clip], takes: dict[str, Transcript]
) -> None:
    clip, take = clips[JFK], takes[JFK]
    rate = clip.sample_rate
    result = _text_edit(clip, take, target)
    index = _index(take, before)
    assert normalise(take.words[index + 1].text) == after
    boundary = (take.words[index].end + take.words[index + 1].start) / 2
    (tag,) = _entries(result, "inserted")
    assert abs(tag["start"] - boundary) <= 0.050
    # Measured on the audio: the first changed sample is where the fade into the tag starts,
    # and everything after the tag is the input, shifted by the tag's length.
    first_change, _ = _masked_span(Rendered(result.audio[:, : clip.audio.shape[-1]], rate), clip)
    assert abs(first_change / rate + FADE_S - boundary) <= 0.050
    grown = result.audio.shape[-1] - clip.audio.shape[-1]
    assert grown == pytest.approx((tag["end"] - tag["start"]) * rate, abs=2)
    tail = round((tag["end"] + 0.1) * rate)
    np.testing.assert_array_equal(result.audio[:, tail:], clip.audio[:, tail - grown :])


# --- moves and reuse ---------------------------------------------------------------------


def test_a_moved_word_is_heard_at_its_new_place(
    clips: dict[str, Clip],
    takes: dict[str, Transcript],
    transcribe: Transcribe,
) -> None:
    target = (
        "And so, my fellow Americans, ask what your country can do for you, "
        "ask not what you can do for your country."
    )
    result = _text_edit(clips[JFK], takes[JFK], target)
    (moved,) = _entries(result, "moved")
    assert moved["word"] == "not" and moved["start"] > 6.0 and moved["from_start"] < 5.0
    assert _heard(result, transcribe) == normalise_words(target)


def test_a_kept_phrase_can_be_said_again(
    clips: dict[str, Clip],
    takes: dict[str, Transcript],
    transcribe: Transcribe,
) -> None:
    target = f"{JFK_TEXT} Ask not what your country can do for you."
    result = _text_edit(clips[JFK], takes[JFK], target)
    assert len(_entries(result, "moved")) == 9
    heard = _heard(result, transcribe)
    assert heard[-9:] == normalise_words("ask not what your country can do for you")
    assert word_error_rate(target, " ".join(heard)) <= 0.05


# --- fillers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meeting(data_dir: Path, transcribe: Transcribe) -> tuple[Clip, Transcript]:
    """The AMI meeting clip with two real hesitations ("but, uh, they"; "understanding, um,
    the") and its words, the fillers among them marked."""
    (clip,) = find_clips([data_dir / AMI])
    return clip, transcribe(clip.audio, clip.sample_rate)


def _said(take: Transcript) -> list[str]:
    return [normalise(w.text) for w in take.words if not w.filler]


@pytest.fixture(scope="module")
def cleaned(meeting: tuple[Clip, Transcript]) -> Rendered:
    clip, take = meeting
    return render_fillers(
        clip.audio, clip.sample_rate, EditSpec("fillers", transcript=take), _nothing
    )


def test_fillers_go_with_their_pause_and_every_other_word_stays(
    meeting: tuple[Clip, Transcript],
    cleaned: Rendered,
    transcribe: Transcribe,
) -> None:
    clip, take = meeting
    marked = [w for w in take.words if w.filler]
    assert len(marked) >= 2
    gone = _entries(cleaned, "deleted")
    assert [(w["word"], w["from_start"]) for w in gone] == [
        (w.text, round(w.start, 3)) for w in marked
    ]
    heard = transcribe(cleaned.audio, cleaned.sample_rate)
    assert not [w for w in heard.words if w.filler]
    assert word_error_rate(" ".join(_said(take)), " ".join(_said(heard))) <= 0.05
    # Each filler went with its hesitation: more than the filler itself was cut.
    removed = (clip.audio.shape[-1] - cleaned.audio.shape[-1]) / clip.sample_rate
    assert removed > sum(w.end - w.start for w in marked)


def test_fillers_named_by_the_client_go_the_same_way(
    meeting: tuple[Clip, Transcript], cleaned: Rendered
) -> None:
    clip, take = meeting
    names = tuple({normalise(w.text) for w in take.words if w.filler})
    unmarked = Transcript(
        tuple(Word(w.text, w.start, w.end) for w in take.words), "en", "hand", take.duration
    )
    edit = EditSpec("fillers", fillers=names, transcript=unmarked)
    result = render_fillers(clip.audio, clip.sample_rate, edit, _nothing)
    np.testing.assert_array_equal(result.audio, cleaned.audio)


# --- Mandarin ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mandarin(data_dir: Path, transcribe: Transcribe) -> tuple[Clip, Transcript, list[str]]:
    """The AISHELL clip, its characters aligned to its known text, and the characters
    Whisper base hears in it (a few its own way: traditional forms, homophones)."""
    from engine.text.transcribe import transcribe as find_words

    (clip,) = find_clips([data_dir / AISHELL])
    take, _ = find_words(clip.audio, clip.sample_rate, language="zh", text=clip.transcript)
    return clip, take, _chars(transcribe(clip.audio, clip.sample_rate, "zh").text)


@pytest.mark.skipif(
    not models.have_multilingual(),
    reason=f"multilingual model not installed: {models.MULTILINGUAL_HINT}",
)
@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("广州市房地产协会分析", [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]),  # 中介 deleted
        ("房地产中介协会分析广州市", [3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2]),  # moved
    ],
)
def test_mandarin_characters_are_cut_and_moved(
    target: str,
    kept: list[int],
    mandarin: tuple[Clip, Transcript, list[str]],
    transcribe: Transcribe,
) -> None:
    clip, take, before = mandarin
    assert len(take.words) == 12
    result = _text_edit(clip, take, target)
    # Compared with what Whisper hears in the original, in the new order.
    after = _chars(transcribe(result.audio, result.sample_rate, "zh").text)
    assert len(before) == 12
    expected = [before[k] for k in kept]
    assert word_error_rate(" ".join(expected), " ".join(after)) <= 1 / len(expected) + 1e-9


def _chars(text: str) -> list[str]:
    return [ch for ch in text if normalise(ch)]
