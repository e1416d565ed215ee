"""Shared DSP helpers: levels, runs, tilt, envelope broadening, cut points."""

from __future__ import annotations

import numpy as np
import pytest

from engine.dsp import (
    broaden_envelope,
    frame_rms_db,
    low_energy_point,
    runs,
    smooth,
    tilt_gain_db,
    zero_crossing_near,
)

RATE = 16000


def _sine(hz: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate).astype(np.float32)


def test_runs_and_smooth() -> None:
    assert runs(np.array([0, 1, 1, 0, 1], dtype=bool)) == [(1, 3), (4, 5)]
    assert runs(np.zeros(3, dtype=bool)) == []
    np.testing.assert_allclose(smooth(np.array([0.0, 3.0, 0.0]), 3), [1.5, 1.0, 1.5])


def test_frame_levels_follow_the_signal() -> None:
    x = np.concatenate([_sine(200, 0.5) * 0.5, np.zeros(RATE // 2, dtype=np.float32)])
    level = frame_rms_db(x, RATE, hop=0.01)
    assert len(level) == 100
    assert level[20] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    assert level[80] == -120.0


def test_tilt_gain_per_octave_from_the_corner_to_the_top() -> None:
    freqs = np.array([500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
    np.testing.assert_allclose(tilt_gain_db(freqs, 3.0, 48000), [0, 0, 3, 6, 9, 9])
    # Just under Nyquist at a low rate: 7.6 kHz, 2.93 octaves.
    assert tilt_gain_db(np.array([8000.0]), -4.0, RATE)[0] == pytest.approx(-4 * np.log2(7.6))


def test_broadening_keeps_a_flat_envelope_and_lowers_a_peak() -> None:
    flat = np.ones((2, 513))
    np.testing.assert_allclose(broaden_envelope(flat, RATE, 100.0), flat, rtol=1e-9)
    peaked = np.ones((1, 513))
    peaked[0, 64] = 1000.0
    broad = broaden_envelope(peaked, RATE, 100.0)
    assert broad[0, 64] < 100.0 and broad[0, 70] > 1.0


def test_low_energy_point_finds_the_gap_near_the_target() -> None:
    x = np.concatenate([_sine(200, 1.0), np.zeros(RATE // 5, dtype=np.float32), _sine(200, 1.0)])
    at = low_energy_point(x, RATE, 0.9, search=0.4)
    assert 1.0 <= at <= 1.2
    # Nothing quiet within reach: the target stays (within the window).
    assert low_energy_point(_sine(200, 2.0), RATE, 1.0, search=0.4) == pytest.approx(1.0, abs=0.4)


def test_zero_crossing_near() -> None:
    x = _sine(100, 0.1)
    index = zero_crossing_near(x, 85, 30)
    assert abs(index - 80) <= 1  # 100 Hz at 16 kHz crosses zero every 80 samples
    assert zero_crossing_near(np.ones(10, dtype=np.float32), 5, 3) == 5
