"""Guarded generation: tries, seeds, the best try, the off switch (fake renders and checkers)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.backends.base import Progress, Rendered
from engine.edits import EditSpec, parse_edit
from engine.errors import CheckpointError, EditError
from engine.guard import Guard, guarded, intended_text, word_errors

RATE = 16000
EDIT = EditSpec("emotion", "happy", text="it was a fine day")


class Renders:
    """Renders a second of silence per call, reporting the seed it used (7 by default)."""

    def __init__(self) -> None:
        self.seeds: list[int | None] = []

    def __call__(self, edit: EditSpec, progress: Progress) -> Rendered:
        self.seeds.append(edit.seed)
        progress(1.0, "decode")
        seed = 7 if edit.seed is None else edit.seed
        info = {"generation": {"stop_reason": "eos", "seed": seed}}
        return Rendered(np.zeros((1, RATE), np.float32), RATE, info=info)


class Checker:
    """Hears the texts given, one per call (the last one again when they run out)."""

    def __init__(self, *heard: str) -> None:
        self.heard = list(heard)
        self.calls = 0
        self.languages: list[str] = []

    def __call__(self, audio: np.ndarray, sample_rate: int, language: str) -> str:
        self.calls += 1
        self.languages.append(language)
        return self.heard[min(self.calls, len(self.heard)) - 1]


def _quiet(_f: float, _s: str) -> None:
    pass


def test_a_mismatch_generates_again_with_new_seeds_and_stops_at_n() -> None:
    renders, checker = Renders(), Checker("nothing like it")
    rendered, seconds = guarded(renders, EDIT, Guard(max_wer=0.2, tries=3, check=checker), _quiet)
    assert renders.seeds == [None, 8, 9] and checker.calls == 3
    assert rendered.info["generation"] == {"stop_reason": "eos", "seed": 7, "wer": 1.0, "tries": 3}
    assert seconds >= 0.0


def test_the_best_try_is_kept() -> None:
    renders = Renders()
    checker = Checker("it was a day", "it was a fine day too", "it was")  # 0.2, 0.2, 0.6
    guard = Guard(max_wer=0.1, tries=3, check=checker)
    rendered, _ = guarded(renders, EDIT, guard, _quiet)
    assert rendered.info["generation"]["wer"] == 0.2
    assert rendered.info["generation"]["seed"] == 7  # the first of equals
    assert rendered.info["generation"]["tries"] == 3


def test_a_match_is_not_generated_again() -> None:
    renders, checker = Renders(), Checker("It was a fine day.")
    fractions: list[float] = []
    rendered, _ = guarded(renders, EDIT, Guard(check=checker), lambda f, _s: fractions.append(f))
    assert renders.seeds == [None] and checker.calls == 1
    assert rendered.info["generation"]["wer"] == 0.0
    assert rendered.info["generation"]["tries"] == 1
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_the_off_switch_checks_nothing() -> None:
    renders, checker = Renders(), Checker("nothing like it")
    edit = parse_edit({"type": "emotion", "option": "happy", "text": "hi", "guard": False})
    assert edit.guard is False
    rendered, seconds = guarded(renders, edit, Guard(check=checker), _quiet)
    assert checker.calls == 0 and renders.seeds == [None] and seconds == 0.0
    assert "wer" not in rendered.info["generation"]


def test_nothing_is_checked_without_words_to_check_against() -> None:
    renders, checker = Renders(), Checker("anything")
    guarded(renders, EditSpec("emotion", "happy"), Guard(check=checker), _quiet)
    assert checker.calls == 0


def test_a_checker_that_cannot_run_keeps_the_first_try() -> None:
    def missing(audio: np.ndarray, sample_rate: int, language: str) -> str:
        raise CheckpointError("no recogniser installed")

    renders = Renders()
    rendered, _ = guarded(renders, EDIT, Guard(check=missing), _quiet)
    assert renders.seeds == [None]
    assert rendered.info["generation"]["wer"] is None
    assert rendered.info["generation"]["tries"] == 1


@pytest.mark.parametrize(
    ("edit", "intended"),
    [
        (EDIT, "it was a fine day"),
        (
            EditSpec("paralinguistic", text="so it goes", target_text="so [Laughter] it goes"),
            "so it goes",
        ),
        (EditSpec("paralinguistic", "Sigh", text="so it goes", positions=(0.5,)), "so it goes"),
        (EditSpec("clone", text="hello", target_text="[Sichuanese]我们走吧"), "我们走吧"),
    ],
)
def test_the_intended_text_leaves_tags_out(edit: EditSpec, intended: str) -> None:
    assert intended_text(edit) == intended


def test_the_render_is_heard_in_the_edits_language_or_that_of_the_intended_text() -> None:
    checker = Checker("我们走吧")
    clone = EditSpec("clone", text="hello", target_text="我们走吧")
    guarded(Renders(), clone, Guard(check=checker), _quiet)
    guarded(Renders(), EDIT, Guard(check=checker), _quiet)
    guarded(Renders(), replace(EDIT, language="zh"), Guard(check=checker, tries=1), _quiet)
    assert checker.languages == ["zh", "en", "en", "en", "zh"]


def test_word_errors_count_each_cjk_character_as_a_word() -> None:
    assert word_errors("今天天气好", "今天天汽好") == pytest.approx(0.2)
    assert word_errors("It was a fine day.", "it was a fine day") == 0.0


def test_the_guard_field_must_be_a_boolean_and_settings_are_checked() -> None:
    assert parse_edit({"type": "style", "option": "whisper"}).guard is True
    with pytest.raises(EditError, match=r"'edit\.guard' must be true or false"):
        parse_edit({"type": "style", "option": "whisper", "guard": "no"})
    with pytest.raises(ValueError, match="tries >= 1"):
        Guard(tries=0)
