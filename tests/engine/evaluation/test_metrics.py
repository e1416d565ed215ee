"""Acoustic measures on signals with known answers, and on a real clip edited by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.audio import resample
from engine.backends.cpu.voice_tilt import apply_voice_tilt
from engine.dsp import slaney_mel_filters
from engine.evaluation.features import power_spectrogram
from engine.evaluation.harness import Clip, find_clips
from engine.evaluation.metrics import compare, measure, smoothed_median

RATE = 16000


def _voice(f0: np.ndarray, rate: int = RATE) -> np.ndarray:
    """A buzzy harmonic source following ``f0`` (one value per sample), 20 harmonics."""
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum((np.sin(k * phase) / k for k in range(1, 21)), np.zeros_like(phase))
    return (0.1 * wave).astype(np.float32)


def test_flat_tone_has_its_pitch_and_no_range() -> None:
    m = measure(_voice(np.full(RATE, 150.0)), RATE)
    assert m.median_f0_hz == pytest.approx(150.0, rel=0.01)
    assert m.f0_range_st < 0.3
    assert m.voiced_fraction > 0.9
    assert m.hnr_db > 20


def test_glide_range_in_semitones() -> None:
    # One octave up at a constant rate in log F0: the 5-95 % span is 0.9 octave.
    f0 = 120.0 * 2 ** np.linspace(0, 1, 2 * RATE)
    m = measure(_voice(f0), RATE)
    assert m.f0_range_st == pytest.approx(0.9 * 12, abs=0.5)
    assert m.median_f0_hz == pytest.approx(120 * 2**0.5, rel=0.02)


def test_smoothed_median_moves_exactly_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    f0 = np.concatenate([rng.normal(120, 5, 300), rng.normal(170, 8, 250), np.zeros(100)])
    assert smoothed_median(f0 * 1.1) == pytest.approx(1.1 * smoothed_median(f0), rel=1e-3)
    assert smoothed_median(np.zeros(5)) == 0.0


def test_pauses_and_speech_time() -> None:
    tone = _voice(np.full(RATE, 150.0))
    x = np.concatenate([tone, np.zeros(int(0.6 * RATE), dtype=np.float32), tone])
    m = measure(x, RATE)
    assert m.pause_time_s == pytest.approx(0.6, abs=0.05)
    assert m.speech_time_s == pytest.approx(2.0, abs=0.05)
    assert m.duration_s == pytest.approx(2.6)


def test_noise_is_unvoiced_and_tilt_follows_the_filter() -> None:
    noise = np.random.default_rng(1).normal(0, 0.05, 2 * RATE).astype(np.float32)
    flat = measure(noise, RATE)
    bright = measure(apply_voice_tilt(noise, RATE, 3.0), RATE)
    assert flat.voiced_fraction < 0.1
    assert flat.tilt_db_per_oct == pytest.approx(0.0, abs=0.5)
    assert bright.tilt_db_per_oct - flat.tilt_db_per_oct == pytest.approx(3.0, abs=0.5)


def test_slaney_mel_filters_have_unit_area() -> None:
    bank = slaney_mel_filters(RATE, 400, 40)
    assert bank.shape == (40, 201)
    assert np.all(bank >= 0) and np.all(bank.sum(axis=1) > 0)
    peaks = np.argmax(bank, axis=1)
    assert np.all(np.diff(peaks) >= 0)
    # Each triangle has unit area in Hz (height 2 / width).
    bin_hz = RATE / 400
    np.testing.assert_allclose(bank[5:].sum(axis=1) * bin_hz, 1.0, rtol=0.1)


def test_power_spectrogram_framing() -> None:
    x = np.sin(2 * np.pi * 10 * RATE / 400 * np.arange(RATE) / RATE)  # exactly bin 10
    power = power_spectrogram(x, 400, 160)
    assert power.shape == (1 + RATE // 160, 201)
    assert np.all(np.argmax(power[5:-5], axis=1) == 10)


@pytest.fixture(scope="module")
def clip(data_dir: Path) -> Clip:
    return find_clips([data_dir / "en_librispeech_1995-1837-0001.wav"])[0]


def test_lengthened_pause_is_a_pause_change_not_a_tempo_change(clip: Clip) -> None:
    before = measure(clip.audio, clip.sample_rate)
    start, end = max(before.pauses, key=lambda p: p[1] - p[0])
    cut = round((start + end) / 2 * clip.sample_rate)
    gap = np.zeros((1, clip.sample_rate // 2), dtype=np.float32)
    edited = np.concatenate([clip.audio[:, :cut], gap, clip.audio[:, cut:]], axis=1)
    _, changes = compare(clip.audio, clip.sample_rate, edited, clip.sample_rate, before)
    total = before.pause_time_s
    assert changes["pause_ratio"] == pytest.approx((total + 0.5) / total, rel=0.1)
    assert abs(changes["tempo_change"]) < 0.03
    assert abs(changes["f0_change"]) < 0.01
    assert changes["loudness_db"] == pytest.approx(0.0, abs=0.3)


def test_tape_speed_up_is_faster_and_higher(clip: Clip) -> None:
    # Played 10 % faster, like tape: every duration x1/1.1 and every frequency x1.1.
    faster = resample(clip.audio, round(clip.sample_rate * 1.1), clip.sample_rate)
    _, changes = compare(clip.audio, clip.sample_rate, faster, clip.sample_rate)
    assert changes["tempo_change"] == pytest.approx(0.1, abs=0.03)
    assert changes["pause_ratio"] == pytest.approx(1 / 1.1, abs=0.08)
    assert changes["f0_change"] == pytest.approx(0.1, abs=0.02)
    assert changes["f0_range_ratio"] == pytest.approx(1.0, abs=0.08)
    assert changes["formant_ratio"] == pytest.approx(1.1, abs=0.04)
    assert changes["duration_ratio"] == pytest.approx(1 / 1.1, abs=0.005)
    assert not math.isnan(changes["hnr_db"])
