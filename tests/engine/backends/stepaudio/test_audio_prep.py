"""Prompt rules and the tokenizer's 16 kHz preprocessing (spec §2.1-§2.2)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from engine.backends.stepaudio.audio_prep import (
    energy_normalize,
    nonsilent_bounds,
    prepare_prompt,
    resample,
    tokenizer_input,
    trim_silence,
)


def _tone(seconds: float, rate: int, amplitude: float = 0.5, freq: float = 200.0) -> np.ndarray:
    n = np.arange(int(seconds * rate))
    return (amplitude * np.sin(2 * np.pi * freq * n / rate)).astype(np.float32)


def test_prompt_is_averaged_to_mono() -> None:
    stereo = np.stack([np.full(100, 0.2, np.float32), np.full(100, 0.4, np.float32)])
    mono = prepare_prompt(stereo)
    assert mono.shape == (100,)
    assert mono.dtype == np.float32
    np.testing.assert_allclose(mono, 0.3, rtol=1e-6)


def test_loud_prompt_is_scaled_to_peak_0_6() -> None:
    loud = _tone(0.1, 16000, amplitude=0.9)
    out = prepare_prompt(loud[np.newaxis])
    assert np.max(np.abs(out)) == pytest.approx(0.6, rel=1e-6)
    np.testing.assert_allclose(out, loud / np.max(np.abs(loud)) * 0.6, rtol=1e-6)


def test_quiet_prompt_keeps_its_level() -> None:
    quiet = _tone(0.1, 16000, amplitude=0.3)
    np.testing.assert_array_equal(prepare_prompt(quiet), quiet)


def test_energy_normalize_peaks_at_0_999_with_floor() -> None:
    assert np.max(np.abs(energy_normalize(_tone(0.1, 16000, 0.2)))) == pytest.approx(0.999)
    # Peaks under 0.01 are scaled as if they were 0.01.
    faint = _tone(0.1, 16000, 0.001)
    assert np.max(np.abs(energy_normalize(faint))) == pytest.approx(0.0999, rel=1e-3)


def test_nonsilent_bounds_follow_librosa_trim() -> None:
    # Measured with librosa.effects.trim(top_db=20, frame_length=512, hop_length=128).
    signal = np.zeros(32000, np.float32)
    signal[5000:21000] = _tone(1.0, 16000)
    signal += (1e-4 * np.sin(2 * np.pi * 50 * np.arange(32000) / 16000)).astype(np.float32)
    assert nonsilent_bounds(signal) == (4864, 21248)


def test_nonsilent_bounds_of_silence_keep_everything() -> None:
    assert nonsilent_bounds(np.zeros(1000, np.float32)) == (0, 1000)


@pytest.mark.parametrize(
    ("onset", "voiced"),
    [(0, 16000), (400, 16000), (5000, 16001), (20000, 2000), (100, 239)],
)
def test_trim_silence_length_and_onset(onset: int, voiced: int) -> None:
    signal = np.zeros(onset + voiced + 8000, np.float32)
    signal[onset : onset + voiced] = _tone(voiced / 16000, 16000)
    start, end = nonsilent_bounds(signal)
    out = trim_silence(signal)
    assert out.shape == (240 * math.ceil((end - start) / 240) + 4320,)
    # Output starts 50 ms (800 samples) before the detected onset, zero-padded if needed.
    lead = start - 800
    expected_head = signal[lead : lead + 100] if lead > 0 else np.pad(signal, (-lead, 0))[:100]
    np.testing.assert_array_equal(out[:100], expected_head)


def test_trim_silence_pads_the_end_with_zeros() -> None:
    signal = _tone(0.5, 16000)  # voiced to the very end
    out = trim_silence(signal)
    assert out.shape == (240 * math.ceil(8000 / 240) + 4320,)
    assert not np.any(out[8800:])


def test_noise_at_44k_trims_to_52320_samples() -> None:
    noise = np.random.default_rng(0).standard_normal(3 * 44100).astype(np.float32) * 0.1
    out = tokenizer_input(prepare_prompt(noise), 44100)
    assert out.shape == (52320,)  # spec §9.3: 48000 + 0.27 s


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44100, 16000), (8000, 16000), (22050, 24000)])
def test_resample_length_is_ceil_of_ratio(rate_in: int, rate_out: int) -> None:
    audio = _tone(0.3, rate_in)
    out = resample(audio, rate_in, rate_out, kernel_dtype=torch.float64)
    assert out.shape == (math.ceil(audio.shape[0] * rate_out / rate_in),)
    assert out.dtype == np.float32


def test_low_rate_prompt_is_upsampled_instead_of_failing() -> None:
    tone = _tone(1.0, 8000, amplitude=0.5, freq=440.0)
    out = tokenizer_input(tone, 8000)
    assert out.shape[0] == 240 * math.ceil(16000 / 240) + 4320
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * 16000 / out.shape[0] == pytest.approx(440, abs=2)


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("en_jfk_inaugural_1961.flac", (5248, 176000)),
        ("zh_stepaudio_vad.wav", (7424, 129664)),
        ("en_librispeech_1995-1837-0001.wav", (2432, 136448)),
    ],
)
def test_real_clip_bounds_match_librosa(data_dir: Path, name: str, bounds: tuple) -> None:
    # Bounds measured with librosa 0.10.2 on the official preprocessing of these clips.
    data, rate = soundfile.read(data_dir / name, dtype="float32", always_2d=True)
    audio16 = resample(prepare_prompt(data.T), rate, 16000, kernel_dtype=torch.float64)
    assert nonsilent_bounds(energy_normalize(audio16)) == bounds


def test_empty_prompt_becomes_the_fixed_margin_of_zeros() -> None:
    out = tokenizer_input(np.zeros(0, np.float32), 44100)
    assert out.shape == (4320,)
    assert not np.any(out)
