"""Recipe table, voice adaptation, intensity scaling and bounds (no audio)."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from engine.backends.cpu import CpuBackend
from engine.backends.cpu.recipes import (
    BOUNDS,
    EMOTIONS,
    INTENSITY,
    STYLES,
    Recipe,
    for_voice,
    nominal,
    recipe_for,
    scaled,
    toward_neutral,
)
from engine.edits import EDIT_TYPES
from engine.errors import EditError, UnsupportedEditError

ALL = [("emotion", name) for name in EMOTIONS] + [("style", name) for name in STYLES]


def test_every_emotion_has_a_recipe_and_is_advertised() -> None:
    vocabulary = set(EDIT_TYPES["emotion"].options) - {"remove"}
    assert set(EMOTIONS) == vocabulary
    assert set(CpuBackend.edits["emotion"]) == vocabulary | {"remove"}


def test_styles_advertised_are_exactly_those_with_recipes() -> None:
    assert set(CpuBackend.edits["style"]) == set(STYLES) | {"remove"}
    assert set(STYLES) <= set(EDIT_TYPES["style"].options)
    required = {
        "whisper",
        "child",
        "older",
        "deeply",
        "loudly",
        "shout",
        "murmur",
        "serious",
        "gentle",
        "radio",
        "news",
        "ethereal",
    }
    assert required <= set(STYLES)
    for unsupported in ("story", "advertising", "arrogant", "act_coy"):
        assert unsupported not in CpuBackend.edits["style"]


def test_paralinguistic_advertises_all_ten_tags() -> None:
    assert CpuBackend.edits["paralinguistic"] == EDIT_TYPES["paralinguistic"].options
    assert len(CpuBackend.edits["paralinguistic"]) == 10


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_recipe_is_documented(kind: str, name: str) -> None:
    recipe = nominal(kind, name)
    assert recipe.name == name
    assert len(recipe.summary) > 10
    assert len(recipe.basis) > 10


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        # Rule-table rows (spec §4.2/§4.3) as fields: the mapping must not drift.
        (
            "emotion",
            "happy",
            {
                "f0_shift": 0.15,
                "f0_range": 1.4,
                "tempo": 0.10,
                "intensity_db": 3.0,
                "tilt_db_per_oct": 1.5,
                "formant_warp": 1.04,
            },
        ),
        (
            "emotion",
            "sad",
            {
                "f0_shift": -0.08,
                "f0_range": 0.7,
                "tempo": -0.20,
                "pause_change": 0.30,
                "intensity_db": -4.0,
                "breathiness": 0.15,
            },
        ),
        (
            "emotion",
            "fear",
            {
                "f0_shift": 0.25,
                "pause_change": 1.0,
                "tremor_hz": 7.0,
                "tremor_depth": 0.03,
                "final_st": 2.0,
            },
        ),
        (
            "emotion",
            "coldness",
            {"f0_range": 0.75, "tempo": 0.0, "stress_contrast": 0.3, "breathiness": -0.05},
        ),
        ("emotion", "confusion", {"final_st": 4.0, "final_lengthening": 0.4, "hesitations": 1}),
        ("style", "whisper", {"whisper": True, "intensity_db": -12.0, "tempo": -0.05}),
        ("style", "deeply", {"f0_shift": -0.15, "formant_warp": 0.92}),
        ("style", "news", {"tempo": 0.10, "pause_change": -0.30, "effects": "news"}),
        ("style", "radio", {"effects": "radio", "f0_range": 1.2}),
    ],
)
def test_rule_table_mapping(kind: str, name: str, expected: dict[str, object]) -> None:
    recipe = nominal(kind, name)
    for field, value in expected.items():
        assert getattr(recipe, field) == pytest.approx(value), field


def test_iteration_one_is_nominal() -> None:
    for kind, name in ALL:
        base = for_voice(nominal(kind, name), 150.0)
        assert scaled(base, 1) == base, name


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_iterations_strengthen_monotonically_within_bounds(kind: str, name: str) -> None:
    base = for_voice(nominal(kind, name), 150.0)
    previous = base
    for iterations in range(2, 6):
        current = scaled(base, iterations)
        for f in fields(Recipe):
            old, new = getattr(previous, f.name), getattr(current, f.name)
            if not isinstance(new, float) or f.name.endswith("_high"):
                continue
            neutral = 1.0 if f.name in {"f0_range", "formant_warp", "f1_warp"} else 0.0
            # Never weaker than the previous iteration, never past the opposite side.
            assert abs(new - neutral) >= abs(old - neutral) - 1e-9, (f.name, iterations)
            assert (new - neutral) * (getattr(base, f.name) - neutral) >= 0, f.name
            low, high = BOUNDS.get(f.name, (-math.inf, math.inf))
            assert low - 1e-9 <= new <= high + 1e-9, (f.name, new)
        # Pitch stays within 6 st (or the recipe's own nominal, up to an octave)...
        nominal_st = abs(12 * math.log2(1 + base.f0_shift))
        assert abs(12 * math.log2(1 + current.f0_shift)) <= max(6.0, nominal_st) + 1e-6
        # ...and tempo within 0.67-1.5x (spec §4.1).
        assert 0.67 - 1e-9 <= current.speech_duration_factor <= 1.5 + 1e-9
        previous = current


def test_intensity_scaling_values() -> None:
    assert INTENSITY[0] == 1.0
    assert INTENSITY[-1] == 1.5
    happy = EMOTIONS["happy"]
    three = scaled(happy, 3)
    k = INTENSITY[2]
    assert three.intensity_db == pytest.approx(3.0 * k)
    assert three.f0_range == pytest.approx(1.4**k)
    assert three.f0_shift == pytest.approx(1.15**k - 1)
    assert three.speech_duration_factor == pytest.approx((1 / 1.1) ** k)
    # Shifts are clamped at 6 st: shout's +40 % (5.8 st) x5 would be 8.7 st; child keeps its
    # own nominal octave.
    shout = scaled(STYLES["shout"], 5)
    assert 12 * math.log2(1 + shout.f0_shift) == pytest.approx(6.0)
    child = scaled(for_voice(STYLES["child"], 100.0), 5)
    assert child.f0_shift == pytest.approx(1.0)


def test_bad_iterations_and_names_are_rejected() -> None:
    with pytest.raises(EditError, match="iterations"):
        scaled(EMOTIONS["happy"], 6)
    with pytest.raises(UnsupportedEditError, match="no CPU recipe for style 'story'"):
        recipe_for("style", "story", 1, 120.0)


@pytest.mark.parametrize(
    ("median", "shift", "warp"),
    [
        (110.0, 1.0, 1.3),  # at most one octave up
        (180.0, 275 / 180 - 1, 1.3 ** (1 - 0.7245) * 1.15**0.7245),
        (220.0, 0.25, 1.15),
        (260.0, 0.2, 1.15),  # at least +20 %
    ],
)
def test_child_adapts_to_the_voice(median: float, shift: float, warp: float) -> None:
    child = for_voice(STYLES["child"], median)
    assert child.f0_shift == pytest.approx(shift)
    assert child.formant_warp == pytest.approx(warp, rel=1e-3)
    assert child.f0_target_hz is None


def test_older_goes_up_for_low_voices_and_down_for_high_ones() -> None:
    assert for_voice(STYLES["older"], 110.0).f0_shift == pytest.approx(0.05)
    assert for_voice(STYLES["older"], 230.0).f0_shift == pytest.approx(-0.08)
    between = for_voice(STYLES["older"], 160.0).f0_shift
    assert -0.08 < between < 0.05


def test_remove_pulls_a_wide_span_back_and_widens_a_flat_one() -> None:
    wide = toward_neutral("emotion", 20.0, [1.2], 1)
    assert wide.f0_range < 1.0 and wide.f0_shift < 0 and wide.tempo < 0
    assert wide.pause_change < 0  # the 1.2 s pause is shortened
    flat = toward_neutral("emotion", 4.0, [], 1)
    assert flat.f0_range > 1.0 and flat.f0_shift > 0 and flat.pause_change == 0
    neutral = toward_neutral("style", 10.5, [0.3], 1)
    assert neutral.f0_range == pytest.approx(1.0) and neutral.f0_shift == pytest.approx(0.0)
    # Inside the span of neutral read speech only the span moves (toward 9.5-12 st); level
    # and rate stay, so already neutral speech keeps its pitch and length.
    lively = toward_neutral("emotion", 14.0, [], 1)
    assert lively.f0_range < 1.0 and lively.f0_shift == 0.0 and lively.tempo == 0.0
    # More iterations pull further.
    assert toward_neutral("emotion", 20.0, [], 5).f0_range < wide.f0_range
