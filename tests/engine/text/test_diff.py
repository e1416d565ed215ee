"""The word diff on hand-made transcripts: deletions, masks, tags, moves, new words, Mandarin."""

from __future__ import annotations

import pytest

from engine.errors import EditError
from engine.text.diff import (
    TextPlan,
    normalise,
    parse_target,
    plan_fillers,
    plan_text,
    units_of,
)
from engine.text.transcript import Transcript, Word

JFK = "And so, my fellow Americans, ask not what your country can do for you"


def _take(text: str, fillers: tuple[str, ...] = ()) -> Transcript:
    """Words 0.5 s apart, each 0.4 s long."""
    words = tuple(
        Word(w, i * 0.5, i * 0.5 + 0.4, filler=w in fillers) for i, w in enumerate(text.split())
    )
    return Transcript(words, "en", "hand", len(words) * 0.5)


def _actions(plan: TextPlan) -> list[tuple[str, str]]:
    return [(s.action, s.text) for s in plan.steps]


def _in_place(plan: TextPlan) -> list[int | None]:
    return [s.unit for s in plan.steps if s.action == "kept"]


def test_unchanged_text_keeps_every_word_in_place() -> None:
    plan = plan_text(_take(JFK), JFK)
    assert _in_place(plan) == list(range(14))
    assert plan.deleted == () and plan.new_words == () and plan.mismatch == ()


def test_deleted_words_are_exactly_the_missing_ones() -> None:
    plan = plan_text(_take(JFK), "And so, ask not what your country can do for you")
    assert plan.deleted == (2, 3, 4)
    assert _in_place(plan) == [0, 1, *range(5, 14)]
    assert plan_text(_take(JFK), "my fellow Americans").deleted == (0, 1, *range(5, 14))


@pytest.mark.parametrize(
    "target",
    [
        "and SO my Fellow americans ask not what your country can do for you",
        "And so... my fellow Americans! Ask not: what your country can do for you?",
        "And  so ,  my fellow — Americans ask not what your country can do for you.",
    ],
)
def test_case_and_punctuation_do_not_count(target: str) -> None:
    plan = plan_text(_take(JFK), target)
    assert _in_place(plan) == list(range(14)) and plan.deleted == ()


def test_normalise() -> None:
    assert normalise("Americans,") == "americans"
    assert normalise("DON'T") == "dont"
    assert normalise("\uff26\uff55\uff4c\uff4c") == "full"  # fullwidth, folded by NFKC
    assert normalise("—") == ""


def test_braces_mask_words_in_place() -> None:
    plan = plan_text(_take(JFK), "And so, my {fellow Americans}, ask not what {your} country")
    assert _actions(plan)[2:6] == [
        ("kept", "my"),
        ("masked", "fellow"),
        ("masked", "Americans,"),
        ("kept", "ask"),
    ]
    assert [s.unit for s in plan.steps if s.action == "masked"] == [3, 4, 8]
    assert plan.deleted == (10, 11, 12, 13)


def test_masking_a_word_the_take_lacks_is_an_error() -> None:
    with pytest.raises(EditError, match=r"\{senators\} masks a word the take does not hold"):
        plan_text(_take(JFK), "And so, my fellow {senators}, ask not")


@pytest.mark.parametrize("target", ["And {so, my", "And so} my", "And [so {my}]", "And [Laughter"])
def test_unbalanced_brackets_are_errors(target: str) -> None:
    with pytest.raises(EditError, match="bracket"):
        plan_text(_take(JFK), target)


def test_tags_sit_between_words() -> None:
    plan = plan_text(_take(JFK), "And so, [laughter] my fellow Americans, [Breathing] ask not")
    actions = _actions(plan)
    assert actions[2] == ("inserted", "Laughter")  # canonical spelling
    assert actions[6] == ("inserted", "Breathing")
    assert [s.unit for s in plan.steps if s.action == "kept"] == [0, 1, 2, 3, 4, 5, 6]


def test_tags_at_the_edges_and_twice_in_a_row() -> None:
    plan = plan_text(_take("so it goes"), "[Sigh] so it goes [Laughter][Surprise-oh]")
    assert _actions(plan) == [
        ("inserted", "Sigh"),
        ("kept", "so"),
        ("kept", "it"),
        ("kept", "goes"),
        ("inserted", "Laughter"),
        ("inserted", "Surprise-oh"),
    ]


@pytest.mark.parametrize("bracketed", ["[Japanese]", "[Cantonese]", "[Sichuanese]", "[Korean]"])
def test_language_tags_pass_through_and_are_neither_tags_nor_words(bracketed: str) -> None:
    plan = plan_text(_take(JFK), f"{bracketed} {JFK}")
    assert plan.passthrough == (bracketed,)
    assert _in_place(plan) == list(range(14))
    assert not any(s.action in ("inserted", "new") for s in plan.steps)
    tokens = parse_target(f"{bracketed} so")
    assert [(t.kind, t.text) for t in tokens] == [("pass", bracketed), ("word", "so")]


def test_a_word_said_elsewhere_is_moved_from_there() -> None:
    plan = plan_text(
        _take(JFK), "And so, my fellow Americans, ask what your country can do for you not"
    )
    assert plan.steps[-1].action == "moved" and plan.steps[-1].unit == 6
    assert 6 not in plan.deleted and plan.deleted == ()


def test_a_phrase_moves_as_a_whole() -> None:
    plan = plan_text(_take(JFK), "ask not what your country can do for you, my fellow Americans")
    assert [(s.action, s.unit) for s in plan.steps[-3:]] == [
        ("moved", 2),
        ("moved", 3),
        ("moved", 4),
    ]
    assert plan.deleted == (0, 1)


def test_a_kept_word_can_be_reused() -> None:
    plan = plan_text(_take(JFK), f"{JFK}, Americans")
    assert _in_place(plan) == list(range(14))
    assert (plan.steps[-1].action, plan.steps[-1].unit) == ("moved", 4)


def test_reuse_prefers_an_occurrence_not_kept_in_place() -> None:
    take = _take("you said you know you")
    plan = plan_text(take, "you said know you you")  # the second "you" is deleted
    assert plan.steps[-1].action == "moved" and plan.steps[-1].unit == 2
    assert plan.deleted == ()


def test_new_words_are_reported_with_what_they_replace() -> None:
    plan = plan_text(
        _take(JFK), "And so, my dear friends, ask not what your country can do for you"
    )
    assert plan.new_words == ("dear", "friends,")
    new = [s for s in plan.steps if s.action == "new"]
    assert all(s.replaces == (3, 4) for s in new)
    assert plan.deleted == (3, 4)


def test_mandarin_is_compared_per_character() -> None:
    take = Transcript(
        (Word("一共", 0.0, 0.4), Word("花了", 0.4, 0.8), Word("一百块钱。", 0.8, 1.8)),
        "zh",
        "hand",
        2,
    )
    units = units_of(take)
    assert [u.text for u in units] == ["一", "共", "花", "了", "一", "百", "块", "钱"]
    assert units[1].start == pytest.approx(0.2) and units[1].end == pytest.approx(0.4)
    assert units[5].word == 2
    plan = plan_text(take, "一共花了一百钱")  # 块 deleted
    assert plan.deleted == (6,)
    plan = plan_text(take, "花了[Laughter]一百块钱")
    assert plan.deleted == (0, 1) and ("inserted", "Laughter") in _actions(plan)
    plan = plan_text(take, "一共花了两百块钱")
    assert plan.new_words == ("两",) and plan.deleted == (4,)


def test_pinyin_passes_through_and_keeps_the_character_said() -> None:
    take = Transcript((Word("我也想过过过儿过过的生活", 0.0, 2.4),), "zh", "hand", 2.4)
    plan = plan_text(take, "我也想guo4guo4过儿guo4过的生活")
    assert plan.deleted == () and plan.new_words == ()
    assert _in_place(plan) == list(range(12))
    assert [s.written for s in plan.steps[3:5]] == ["guo4", "guo4"]
    assert plan.passthrough == ("guo4", "guo4", "guo4")


def test_pinyin_like_words_in_english_are_plain_words() -> None:
    tokens = parse_target("an mp3 file")
    assert [t.pinyin for t in tokens] == [False, False, False]


def test_a_client_transcript_that_differs_is_reported_and_read_as_the_user_saw_it() -> None:
    engine = _take("And so my fellow Americans ask not what your country could do for you")
    seen = "And so my fellow Americans ask not what your country can do for you"
    # The user deletes "my" only: "can"/"could" is not a change and stays as said.
    plan = plan_text(engine, seen.replace("my ", ""), text=seen)
    assert [(m.client, m.engine) for m in plan.mismatch] == [("can", "could")]
    assert plan.mismatch[0].at == pytest.approx(5.0)
    assert plan.deleted == (2,)
    assert _in_place(plan) == [0, 1, *range(3, 14)]


def test_words_only_the_engine_heard_stay_with_their_neighbours() -> None:
    engine = _take("so um we went home and then uh left")
    seen = "so we went home and then left"
    plan = plan_text(engine, "so we went home and left", text=seen)
    assert [(m.client, m.engine) for m in plan.mismatch] == [("", "um"), ("", "uh")]
    assert 1 in _in_place(plan)  # "um" between kept "so" and "we"
    assert plan.deleted == (6, 7)  # "then" deleted, and "uh" with it


def test_fillers_are_marked_words_and_the_languages_list() -> None:
    take = _take("so um we went Uhh, home like", fillers=("um",))
    plan = plan_fillers(take)  # the transcript's language: en
    assert plan.deleted == (1, 4)
    assert _in_place(plan) == [0, 2, 3, 5, 6]
    assert plan_fillers(take, "zh").deleted == (1,)  # marked only: "Uhh" is not Mandarin


def test_a_client_list_replaces_the_languages_list() -> None:
    take = _take("so um we went uh home like", fillers=("um",))
    assert plan_fillers(take, fillers=["LIKE"]).deleted == (1, 6)


def test_mandarin_fillers() -> None:
    take = Transcript(
        (Word("嗯，", 0.0, 0.3), Word("就是说", 0.3, 0.9), Word("呃", 0.9, 1.2)),  # noqa: RUF001
        "zh",
        "hand",
        1.2,
    )
    plan = plan_fillers(take, "auto")
    assert [plan.units[u].text for u in plan.deleted] == ["嗯", "呃"]
    assert len(_in_place(plan)) == 3
