"""Text helpers of alignment and recognition: tokens, edit-distance mapping, loops, CJK."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audio import resample, to_mono
from engine.evaluation.harness import find_clips
from engine.text.align import align_english, fill_gaps, map_tokens, split_tokens
from engine.text.asr import RecognisedWord, _drop_loops, _split_word

COMMA = "\uff0c"  # the full-width comma of Mandarin text


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, world!", ["Hello,", "world!"]),
        (f"一百块钱{COMMA}其中呢", ["一", "百", "块", f"钱{COMMA}", "其", "中", "呢"]),
        ("用 GPU 跑", ["用", "GPU", "跑"]),
        ("今天AI很好", ["今", "天", "AI", "很", "好"]),
        ("  ", []),
    ],
)
def test_split_tokens(text: str, tokens: list[str]) -> None:
    assert split_tokens(text) == tokens


def test_map_tokens_follows_substitutions_and_gaps() -> None:
    known = ["The", "cat", "sat", "down."]
    assert map_tokens(known, ["the", "cat", "down"]) == [0, 1, None, 2]
    assert map_tokens(known, ["the", "hat", "sat", "down"]) == [0, 1, 2, 3]
    assert map_tokens(known, ["so", "the", "cat", "sat", "down"]) == [1, 2, 3, 4]
    heard = ["the", "cat"]
    assert map_tokens([], heard) == []
    assert map_tokens(known, []) == [None] * 4
    assert map_tokens(known, heard)[:2] == [0, 1]


def test_fill_gaps_shares_the_stretch_between_neighbours() -> None:
    spans = [(0.0, 1.0), None, None, (2.0, 3.0), None]
    assert fill_gaps(spans, 4.0) == [(0.0, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, 3.3)]
    assert fill_gaps([None, None], 4.0) == [None, None]


def test_loops_are_cut_to_one_copy() -> None:
    def words(text: str) -> list[RecognisedWord]:
        return [RecognisedWord(w, i, i + 0.5, 0.9) for i, w in enumerate(text.split())]

    looped = words(
        "so if you're back, if you're back, if you're back, if you're back, if you're back."
    )
    assert [w.text for w in _drop_loops(looped)] == ["so", "if", "you're", "back,"]
    speech = words("no no no it is it is fine")  # three in a row is speech
    assert _drop_loops(speech) == speech


def test_chinese_words_become_characters_with_full_width_punctuation() -> None:
    pieces = _split_word("就是说,", 1.0, 1.6, 0.8)
    assert [p.text for p in pieces] == ["就", "是", f"说{COMMA}"]
    assert [round(p.start, 2) for p in pieces] == [1.0, 1.2, 1.4] and pieces[-1].end == 1.6
    assert [p.text for p in _split_word("GPU的", 0.0, 1.0, 0.8)] == ["GPU", "的"]
    assert _split_word("...", 0.0, 1.0, 0.8) == []


def test_alignment_of_a_text_that_is_not_said(data_dir: Path) -> None:
    """A wrong text still gets times (forced), or no alignment at all; never an error."""
    clip = find_clips([data_dir / "en_stepaudio_happy.wav"])[0]
    mono = resample(to_mono(clip.audio), clip.sample_rate, 16000)
    text = "the quick brown fox jumps over the lazy dog"
    result = align_english(mono, text.split(" "))
    assert result is None or len(result.spans) == 9
    assert align_english(mono, ["...", "!"]) is None
