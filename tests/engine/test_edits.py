"""The edit vocabulary and its validation."""

from __future__ import annotations

import re

import pytest

from engine.edits import (
    EDIT_TYPES,
    MASK_SOUNDS,
    MODEL_EDIT_TYPES,
    PARALINGUISTIC_TAGS,
    EditSpec,
    edit_label,
    parse_edit,
)
from engine.errors import EditError


def test_vocabulary_is_the_step_audio_editx_set_plus_text_edits() -> None:
    assert set(MODEL_EDIT_TYPES) == {
        "emotion",
        "style",
        "paralinguistic",
        "speed",
        "denoise",
        "vad",
        "clone",
    }
    assert set(EDIT_TYPES) == {*MODEL_EDIT_TYPES, "text", "fillers"}
    assert EDIT_TYPES["text"].options == MASK_SOUNDS and EDIT_TYPES["text"].needs_words
    assert len(EDIT_TYPES["emotion"].options) == 15
    assert len(EDIT_TYPES["style"].options) == 33
    assert EDIT_TYPES["paralinguistic"].options == PARALINGUISTIC_TAGS
    assert len(PARALINGUISTIC_TAGS) == 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "speed", "option": "more_faster"}, EditSpec("speed", "more faster")),
        ({"type": "Speed", "option": "More-Slower"}, EditSpec("speed", "more slower")),
        ({"type": "emotion", "option": "HAPPY", "iterations": 3}, EditSpec("emotion", "happy", 3)),
        ({"type": "style", "option": "act coy"}, EditSpec("style", "act_coy")),
        (
            {"type": "paralinguistic", "option": "[laughter]", "position": 1.5},
            EditSpec("paralinguistic", "Laughter", positions=(1.5,)),
        ),
        (
            {"type": "paralinguistic", "option": "Breathing", "position": [0, 2]},
            EditSpec("paralinguistic", "Breathing", positions=(0.0, 2.0)),
        ),
        (
            {"type": "clone", "target_text": " Hello there. ", "text": "hi"},
            EditSpec("clone", target_text="Hello there.", text="hi"),
        ),
        ({"type": "denoise"}, EditSpec("denoise")),
    ],
)
def test_parse_edit_normalises(data: dict, expected: EditSpec) -> None:
    assert parse_edit(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "teleport"}, "unknown edit type 'teleport'; allowed: emotion, style"),
        (
            {"type": "emotion", "option": "grumpy"},
            "unknown option 'grumpy' for edit type 'emotion'",
        ),
        ({"type": "emotion"}, "unknown option ''"),
        ({"type": "vad", "option": "fast"}, "takes no option"),
        (
            {"type": "speed", "option": "faster", "iterations": 0},
            "iterations must be 1 to 5, got 0",
        ),
        (
            {"type": "speed", "option": "faster", "iterations": 6},
            "iterations must be 1 to 5, got 6",
        ),
        ({"type": "speed", "option": "faster", "iterations": 1.5}, "whole number"),
        ({"type": "speed", "option": "faster", "iterations": True}, "whole number"),
        ({"type": "clone"}, "needs a non-empty 'target_text'"),
        ({"type": "paralinguistic", "option": "Uhm", "position": -1}, "positions must be finite"),
        ({"type": "paralinguistic", "option": "Uhm", "position": "soon"}, "number of seconds"),
        ({"type": "denoise", "strength": 3}, "unknown field(s) in 'edit': strength"),
        ({"option": "happy"}, "'edit.type' must be a string"),
        ({"type": "emotion", "option": 3}, "'edit.option' must be a string"),
    ],
)
def test_parse_edit_errors_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(EditError, match=re.escape(message)) as e:
        parse_edit(data)
    assert e.value.code == "invalid_edit"


def test_edit_label() -> None:
    assert edit_label(EditSpec("emotion", "happy", 2)) == "happy x2"
    assert edit_label(EditSpec("speed", "more faster")) == "more-faster"
    assert edit_label(EditSpec("style", "remove")) == "style-remove"
    assert edit_label(EditSpec("vad")) == "vad"


def test_paralinguistic_takes_a_tag_with_positions_or_tagged_text() -> None:
    assert parse_edit({"type": "paralinguistic", "target_text": "so [Laughter] funny"}).option == ""
    with pytest.raises(EditError, match=r"inserting \[Sigh\] needs 'position'"):
        parse_edit({"type": "paralinguistic", "option": "sigh"})
    with pytest.raises(EditError, match="unknown option ''"):
        parse_edit({"type": "paralinguistic"})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"type": "text", "text": "a b c", "target_text": "a c"},
            EditSpec("text", "room_tone", text="a b c", target_text="a c"),
        ),
        (
            {"type": "text", "option": "Room Tone", "target_text": "a {b}", "language": "EN"},
            EditSpec("text", "room_tone", target_text="a {b}", language="en"),
        ),
        (
            {"type": "fillers", "fillers": [" Um ", "like"], "language": "zh"},
            EditSpec("fillers", fillers=("um", "like"), language="zh"),
        ),
    ],
)
def test_text_edits(data: dict[str, object], expected: EditSpec) -> None:
    assert parse_edit(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "text", "text": "a"}, "needs a non-empty 'target_text'"),
        ({"type": "text", "target_text": "a", "option": "honk"}, "unknown option"),
        ({"type": "fillers", "fillers": "um"}, "must be a list of words"),
        ({"type": "fillers", "language": "fr"}, "unknown language"),
    ],
)
def test_bad_text_edits(data: dict[str, object], message: str) -> None:
    with pytest.raises(EditError, match=message):
        parse_edit(data)


def test_keep_length_is_a_boolean_every_type_reads() -> None:
    assert parse_edit({"type": "vad"}).keep_length is False
    assert parse_edit({"type": "emotion", "option": "sad", "keep_length": True}).keep_length
    for bad in (1, "true", None):
        with pytest.raises(EditError, match=r"'edit.keep_length' must be true or false"):
            parse_edit({"type": "vad", "keep_length": bad})
    assert all("keep_length" in kind.uses for kind in EDIT_TYPES.values())


def test_decode_passes_is_a_boolean_the_model_edit_types_read() -> None:
    assert parse_edit({"type": "emotion", "option": "sad"}).decode_passes is False
    assert parse_edit({"type": "vad", "iterations": 2, "decode_passes": True}).decode_passes
    for bad in (1, "yes", None):
        with pytest.raises(EditError, match=r"'edit.decode_passes' must be true or false"):
            parse_edit({"type": "vad", "decode_passes": bad})
    readers = {name for name, kind in EDIT_TYPES.items() if "decode_passes" in kind.uses}
    assert readers == set(MODEL_EDIT_TYPES)
