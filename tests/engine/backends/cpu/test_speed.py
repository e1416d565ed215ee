"""Speed change on real speech: exact durations, unchanged pitch, aligned stereo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import parselmouth
import pytest
from scipy import signal

from engine.audio import read_slice, resample, to_mono
from engine.backends.cpu.speed import (
    MAX_FACTOR,
    MIN_FACTOR,
    SPEED_FACTORS,
    change_speed,
    speed_factor,
)
from engine.edits import EDIT_TYPES, MAX_ITERATIONS
from engine.errors import EditError

# A low male voice (16 kHz), a female voice (22.05 kHz), real stereo at 44.1 kHz (male).
CLIPS = [
    "en_vctk_p287_003_clean.wav",
    "en_ljspeech_LJ050-0131.wav",
    "en_jfk_inaugural_1961.flac",
]


def median_f0(audio: np.ndarray, sample_rate: int) -> float:
    """Median F0 in Hz over voiced frames; the 50 Hz floor covers low male voices."""
    sound = parselmouth.Sound(to_mono(audio).astype(np.float64), sample_rate)
    f0 = sound.to_pitch(pitch_floor=50.0, pitch_ceiling=500.0).selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


def lag_between(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which ``b`` lags ``a`` (peak of their cross-correlation)."""
    corr = signal.correlate(b, a, mode="full", method="fft")
    return int(np.argmax(corr)) - (a.shape[-1] - 1)


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> dict[str, tuple[np.ndarray, int]]:
    loaded = {}
    for name in CLIPS:
        # 5.5 s of each keeps the run short; the JFK clip is the longest (11 s, stereo).
        audio, info = read_slice(data_dir / name, length=5.5)
        loaded[name] = (audio, info.sample_rate)
    return loaded


def test_factors_cover_the_speed_vocabulary() -> None:
    assert tuple(SPEED_FACTORS) == EDIT_TYPES["speed"].options
    assert SPEED_FACTORS == {"faster": 1.25, "slower": 0.8, "more faster": 1.5, "more slower": 0.67}


@pytest.mark.parametrize(
    ("option", "iterations", "expected"),
    [
        ("faster", 1, 1.25),
        ("faster", 2, 1.5625),
        ("faster", 3, 1.953125),
        ("faster", 4, MAX_FACTOR),  # 2.44 clamped
        ("slower", 3, 0.512),
        ("slower", 4, MIN_FACTOR),  # 0.41 clamped
        ("more faster", 2, MAX_FACTOR),  # 2.25 clamped
        ("more slower", 1, 0.67),
        ("more slower", 5, MIN_FACTOR),
    ],
)
def test_iterations_compound_and_clamp(option: str, iterations: int, expected: float) -> None:
    assert speed_factor(option, iterations) == pytest.approx(expected)


def test_bad_option_or_iterations_are_edit_errors() -> None:
    with pytest.raises(EditError, match="unknown speed option 'fastest'"):
        speed_factor("fastest", 1)
    with pytest.raises(EditError, match=f"iterations must be 1 to {MAX_ITERATIONS}, got 0"):
        speed_factor("faster", 0)
    with pytest.raises(ValueError, match="positive finite"):
        change_speed(np.zeros((1, 100), np.float32), 16000, 0.0)


@pytest.mark.parametrize("option", list(SPEED_FACTORS))
@pytest.mark.parametrize("clip", CLIPS)
def test_duration_changes_exactly_and_pitch_stays(
    clips: dict[str, tuple[np.ndarray, int]], clip: str, option: str
) -> None:
    audio, rate = clips[clip]
    factor = SPEED_FACTORS[option]
    out = change_speed(audio, rate, factor)
    assert out.dtype == np.float32
    assert out.shape == (audio.shape[0], round(audio.shape[-1] / factor))
    ratio = median_f0(out, rate) / median_f0(audio, rate)
    assert ratio == pytest.approx(1.0, abs=0.03), f"median F0 moved by x{ratio:.4f}"


def test_compounded_iterations_render_at_the_clamp(
    clips: dict[str, tuple[np.ndarray, int]],
) -> None:
    audio, rate = clips["en_vctk_p287_003_clean.wav"]
    for option, iterations in (("more faster", 3), ("more slower", 3)):
        factor = speed_factor(option, iterations)
        out = change_speed(audio, rate, factor)
        assert out.shape[-1] == round(audio.shape[-1] / factor)
        assert median_f0(out, rate) / median_f0(audio, rate) == pytest.approx(1.0, abs=0.03)


def test_stereo_stays_stereo_and_aligned(clips: dict[str, tuple[np.ndarray, int]]) -> None:
    audio, rate = clips["en_jfk_inaugural_1961.flac"]
    left = audio[0]
    # Right channel 2 ms late: an inter-channel delay that must survive the stretch.
    delay = round(0.002 * rate)
    delayed = np.stack([left, np.concatenate([np.zeros(delay, np.float32), left[:-delay]])])
    for factor in (SPEED_FACTORS["faster"], SPEED_FACTORS["more slower"]):
        out = change_speed(audio, rate, factor)
        assert out.shape[0] == 2
        assert lag_between(out[0], out[1]) == lag_between(audio[0], audio[1])
        assert np.corrcoef(out[0], out[1])[0, 1] > 0.99
        shifted = change_speed(delayed, rate, factor)
        assert abs(lag_between(shifted[0], shifted[1]) - delay) <= 1


@pytest.mark.parametrize("rate", [8000, 48000, 96000])
def test_any_rate_gives_the_exact_length(
    clips: dict[str, tuple[np.ndarray, int]], rate: int
) -> None:
    audio, source_rate = clips["en_ljspeech_LJ050-0131.wav"]
    audio = resample(audio[:, : 2 * source_rate], source_rate, rate)
    for factor in (0.67, 1.5):
        assert change_speed(audio, rate, factor).shape == (1, round(audio.shape[-1] / factor))


def test_a_few_samples_still_give_the_exact_length() -> None:
    # Rubber Band returns nothing for inputs shorter than its window; the length still holds.
    tiny = np.full((2, 10), 0.1, np.float32)
    assert change_speed(tiny, 16000, 0.8).shape == (2, 12)
