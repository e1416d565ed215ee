"""The 2:3 interleave, id offsets and the ``<audio_N>`` string form (spec §3.5)."""

from __future__ import annotations

import pytest

from engine.backends.stepaudio.tokenizer.interleave import (
    AUDIO_ID_OFFSET,
    DualCodes,
    interleave,
    parse_token_string,
    to_llm_ids,
    token_string,
)


def test_groups_are_two_vq02_then_three_vq06() -> None:
    assert interleave([10, 11, 12, 13], [0, 1, 2, 3, 4, 5]) == [
        10,
        11,
        1024,
        1025,
        1026,
        12,
        13,
        1027,
        1028,
        1029,
    ]


@pytest.mark.parametrize(
    ("n02", "n06", "groups"), [(5, 9, 2), (6, 8, 2), (1, 30, 0), (20, 2, 0), (55, 82, 27)]
)
def test_only_whole_groups_are_kept(n02: int, n06: int, groups: int) -> None:
    values = interleave(list(range(n02)), list(range(n06)))
    assert len(values) == 5 * groups


def test_id_offsets() -> None:
    assert AUDIO_ID_OFFSET == 65536
    codes = DualCodes.from_codes([0, 1023], [0, 4095, 7])
    assert codes.llm_ids == [65536, 66559, 66560, 70655, 66567]
    assert codes.values == [0, 1023, 1024, 5119, 1031]
    assert codes.groups == 1


def test_token_string_round_trip() -> None:
    values = interleave([5, 6, 7, 8], [1, 2, 3, 4, 5, 6])
    text = token_string(values)
    assert text.startswith("<audio_5><audio_6><audio_1025><audio_1026><audio_1027><audio_7>")
    assert parse_token_string(text) == values
    assert parse_token_string(f"  {text}\n") == values
    assert (
        to_llm_ids(parse_token_string(text))
        == DualCodes.from_codes([5, 6, 7, 8], [1, 2, 3, 4, 5, 6]).llm_ids
    )


def test_dual_codes_string_matches_ids() -> None:
    codes = DualCodes.from_codes([3, 4], [9, 8, 7])
    assert codes.token_string == "<audio_3><audio_4><audio_1033><audio_1032><audio_1031>"
    assert to_llm_ids(parse_token_string(codes.token_string)) == codes.llm_ids


@pytest.mark.parametrize("text", ["<audio_1> <audio_2>", "<audio_1>x", "<audio_>", "audio_1"])
def test_parse_rejects_anything_but_audio_pieces(text: str) -> None:
    with pytest.raises(ValueError, match="not an <audio_N> piece"):
        parse_token_string(text)


def test_empty_string_is_no_tokens() -> None:
    assert parse_token_string("") == []
    assert token_string([]) == ""
