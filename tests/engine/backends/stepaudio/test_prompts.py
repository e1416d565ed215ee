"""Prompt strings and the exact prompt id layouts of clone and every edit type (spec §4.3-4.4)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from engine.backends.stepaudio.llm.text_tokenizer import TextTokenizer
from engine.backends.stepaudio.prompts import (
    SYS_CLONE,
    SYS_EDIT,
    PromptBuilder,
    PromptSwitches,
    edit_instruction,
    insert_tag,
    speaker_name,
)
from engine.edits import EDIT_TYPES, MODEL_EDIT_TYPES
from engine.errors import EditError
from tests.engine.backends.stepaudio.fixture_editx import (
    CHAR_IDS,
    PIECE_IDS,
    reference_encode,
    write_text_tokenizer,
)

E = reference_encode
HUMAN = [PIECE_IDS["▁human"], 78]  # "human\n": the role word piece, then byte 0x0A
ASSISTANT = [PIECE_IDS["▁assistant"], 78]
AUDIO = "<audio_7><audio_1030><audio_5119><audio_12><audio_2048>"
AUDIO_IDS = [65536 + 7, 65536 + 1030, 65536 + 5119, 65536 + 12, 65536 + 2048]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    path = write_text_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")
    return TextTokenizer(Path(path))


def test_fixture_tokenizer_agrees_with_the_hand_rules(tokenizer: TextTokenizer) -> None:
    assert tokenizer.encode("human\n") == HUMAN
    assert tokenizer.encode("\n") == [PIECE_IDS["▁"], 78]
    assert tokenizer.encode("Hi " + AUDIO) == [
        PIECE_IDS["▁"],
        CHAR_IDS["H"],
        CHAR_IDS["i"],
        PIECE_IDS["▁"],
        *AUDIO_IDS,
    ]
    for text in ("system\n" + SYS_EDIT, "system\n" + SYS_CLONE, "你好 [Laughter]\n"):
        assert tokenizer.encode(text) == E(text)


def test_templates_keep_the_official_bytes() -> None:
    assert SYS_CLONE.startswith("Generate audio with the following timbre, prosody and ")
    assert "speaker prompt text: \n{prompt_text}\nspeaker audio tokens: \n" in SYS_CLONE
    assert SYS_CLONE.endswith("{prompt_wav_tokens}\n[speaker_end]\n")
    assert SYS_EDIT.count("\n") == 6 and SYS_EDIT.endswith("edits and enhancements.\n")
    assert "\n# Audio Tuning & Editing\n" in SYS_EDIT


@pytest.mark.parametrize(
    ("edit_type", "option", "expected"),
    [
        (
            "emotion",
            "happy",
            "Make the following audio more happy. The text corresponding to the audio is: hi\n",
        ),
        (
            "emotion",
            "remove",
            "Remove any emotion in the following audio and the reference text is: hi\n",
        ),
        (
            "style",
            "whisper",
            "Make the following audio more whisper style. The text corresponding to the audio "
            "is: hi\n",
        ),
        (
            "style",
            "remove",
            "Remove any speaking styles in the following audio and the reference text is: hi\n",
        ),
        (
            "speed",
            "more faster",
            "Make the following audio more more faster. The text corresponding to the audio is: "
            "hi\n",
        ),
    ],
)
def test_instructions(edit_type: str, option: str, expected: str) -> None:
    assert edit_instruction(edit_type, option, "  hi ") == expected


def test_denoise_vad_and_paralinguistic_instructions() -> None:
    denoise = edit_instruction("denoise", "", "ignored")
    assert denoise.startswith("Remove any noise from the given audio") and "ignored" not in denoise
    vad = edit_instruction("vad", "", "ignored")
    assert vad.endswith("eliminate all silence from the audio.\n") and "ignored" not in vad
    assert edit_instruction("paralinguistic", "", " a b ", "a [Sigh] b") == (
        "Add some non-verbal sounds to make the audio more natural, the new text is : "
        "a [Sigh] b\n  The text corresponding to the audio is: a b\n"
    )
    with pytest.raises(EditError, match="no Step-Audio-EditX instruction"):
        edit_instruction("clone", "", "x")


def _edit_expected(instruction: str, bos: bool, space: bool = True) -> list[int]:
    """The official rule: the text after the last ``<audio_N>`` is encoded as a new piece of
    text, dummy prefix "▁" included (the fast tokenizer's legacy mode)."""
    b = [1] if bos else []
    after_audio = E("\n") if space else [78]
    return [
        1,
        4, *b, *E("system\n" + SYS_EDIT), 3,
        4, *b, *HUMAN, *b, *E(instruction + "\n"), *AUDIO_IDS, *after_audio, 3,
        4, *b, *ASSISTANT,
    ]  # fmt: skip


EDIT_CASES = [
    (name, option)
    for name, kind in EDIT_TYPES.items()
    if name in MODEL_EDIT_TYPES and name != "clone"
    for option in (kind.options[:1] + (("remove",) if "remove" in kind.options else ()) or ("",))
]


@pytest.mark.parametrize(("edit_type", "option"), EDIT_CASES)
@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize(
    ("text", "target"),
    [("It was fine.", "It was [Laughter] fine."), ("我觉得可行。", "我觉得[Laughter]可行。")],
    ids=["en", "zh"],
)
def test_edit_prompt_ids(
    tokenizer: TextTokenizer, edit_type: str, option: str, bos: bool, text: str, target: str
) -> None:
    instruction = edit_instruction(edit_type, option, text, target)
    builder = PromptBuilder(tokenizer, PromptSwitches(bos_per_segment=bos))
    # The audio string is stripped before it is placed after the blank line.
    assert builder.edit(instruction, f"  {AUDIO}\n") == _edit_expected(instruction, bos)


def test_edit_prompt_starts_as_the_spec_shows(tokenizer: TextTokenizer) -> None:
    builder = PromptBuilder(tokenizer, PromptSwitches(bos_per_segment=True))
    ids = builder.edit(edit_instruction("denoise", "", ""), AUDIO)
    assert ids[:5] == [1, 4, 1, PIECE_IDS["▁system"], 78]
    assert ids[-4:] == [4, 1, PIECE_IDS["▁assistant"], 78]
    # human turn: BOT, BOS, "human\n", BOS, the instruction ... audio ids, "\n", EOT
    start = ids.index(PIECE_IDS["▁human"]) - 2
    assert ids[start : start + 5] == [4, 1, PIECE_IDS["▁human"], 78, 1]
    after = ids.index(AUDIO_IDS[-1]) + 1
    assert ids[after : after + 3] == [PIECE_IDS["▁"], 78, 3]  # "▁" (id 324 in the real vocab)


@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize(
    ("prompt_text", "target_text"),
    [("Hello there.", "Good day"), ("我觉得这个计划可行。", "你好")],
    ids=["en", "zh"],
)
def test_clone_prompt_ids(
    tokenizer: TextTokenizer, bos: bool, prompt_text: str, target_text: str
) -> None:
    builder = PromptBuilder(tokenizer, PromptSwitches(bos_per_segment=bos))
    b = [1] if bos else []
    head, tail = SYS_CLONE.split("{prompt_wav_tokens}")
    head = head.format(speaker="clone_0123456789abcdef", prompt_text=prompt_text)
    # The system text up to its audio tokens, then the text after them ("\n[speaker_end]\n")
    # encoded anew with its dummy prefix "▁", as the official fast tokenizer does.
    system = [*E("system\n" + head + AUDIO), *E(tail)]
    # TGT: E("\n" + target) without the ids of E("\n") (with BOS when encode adds it), so the
    # target text carries no dummy-prefix piece.
    target = E("\n" + target_text)[2:]
    expected = [
        1,
        4, *b, *system, 3,
        4, *b, *HUMAN, *target, 3,
        4, *b, *ASSISTANT,
    ]  # fmt: skip
    ids = builder.clone(target_text, prompt_text, "clone_0123456789abcdef", AUDIO)
    assert ids == expected
    after = ids.index(AUDIO_IDS[-1]) + 1
    assert ids[after : after + 2] == [PIECE_IDS["▁"], 78]


def test_fast_tokenizer_space_switch(tokenizer: TextTokenizer) -> None:
    official = PromptBuilder(tokenizer, PromptSwitches(bos_per_segment=True))
    plain = PromptBuilder(
        tokenizer, PromptSwitches(bos_per_segment=True, fast_tokenizer_space=False)
    )
    instruction = edit_instruction("vad", "", "")
    a, b = plain.edit(instruction, AUDIO), official.edit(instruction, AUDIO)
    last = a.index(AUDIO_IDS[-1])
    assert b == [*a[: last + 1], PIECE_IDS["▁"], *a[last + 1 :]]
    assert plain.edit(instruction, AUDIO) == _edit_expected(instruction, True, space=False)
    c, d = (builder.clone("Good day", "Hi.", "s", AUDIO) for builder in (plain, official))
    last = c.index(AUDIO_IDS[-1])
    assert d == [*c[: last + 1], PIECE_IDS["▁"], *c[last + 1 :]]


def test_speaker_name_hashes_text_and_the_raw_ends() -> None:
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((2, 3000)).astype(np.float32)
    flat = stereo.reshape(-1)
    digest = hashlib.sha256(
        "你好".encode() + np.concatenate([flat[:1000], flat[-1000:]]).tobytes()
    ).hexdigest()
    assert speaker_name("你好", stereo) == "clone_" + digest[:16]
    short = stereo[:, :900]
    digest = hashlib.sha256(b"x" + short.reshape(-1).tobytes()).hexdigest()
    assert speaker_name("x", short) == "clone_" + digest[:16]


def test_insert_tag_places_tags_at_word_boundaries() -> None:
    assert insert_tag("one two three four", "Laughter", (), 4.0) == "one two three four [Laughter]"
    assert insert_tag("one two three four", "Sigh", (0.0,), 4.0) == "[Sigh] one two three four"
    assert insert_tag("one two three four", "Uhm", (2.1, 4.0), 4.0) == (
        "one two [Uhm] three four [Uhm]"
    )


@pytest.mark.parametrize(
    "text", ["[Sichuanese]我们去过4那里", "[Japanese] こんにちは", "[Korean]안녕"]
)
def test_language_tags_and_pinyin_reach_the_model_as_written(
    tokenizer: TextTokenizer, text: str
) -> None:
    builder = PromptBuilder(tokenizer, PromptSwitches(bos_per_segment=False))
    ids = builder.clone(text, "Hello there.", "s", AUDIO)
    human = ids.index(PIECE_IDS["▁human"])
    assert ids[human + 2 : -len(ASSISTANT) - 2] == E("\n" + text)[2:]  # then EOT, BOT
    instruction = edit_instruction("paralinguistic", "", "我们去过那里", text + "[Laughter]")
    assert f"the new text is : {text}[Laughter]" in instruction
