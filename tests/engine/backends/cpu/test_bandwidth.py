"""A take's recorded bandwidth, and expressive edits that add nothing above it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch

from engine.audio import resample
from engine.backends.cpu import CpuBackend
from engine.backends.cpu.bandwidth import limit_bandwidth, recorded_bandwidth
from engine.edits import EditSpec
from engine.evaluation.harness import Clip, find_clips
from engine.pipeline import render_audio

SESSION_RATE = 48000


def _clip(data_dir: Path, name: str) -> Clip:
    return find_clips([data_dir / name])[0]


def _band_db(x: np.ndarray, sample_rate: int, low: float, high: float) -> float:
    """Energy between ``low`` and ``high`` Hz relative to the whole signal's (dB)."""
    freqs, power = welch(np.atleast_2d(x).mean(axis=0), sample_rate, nperseg=4096)
    band = power[(freqs >= low) & (freqs < high)].sum()
    return float(10 * np.log10(band / power.sum() + 1e-30))


def test_an_archive_transfer_ends_at_16_khz(data_dir: Path) -> None:
    jfk = _clip(data_dir, "en_jfk_inaugural_1961.flac")  # 44.1 kHz, codec low-pass at 16 kHz
    assert recorded_bandwidth(jfk.audio, jfk.sample_rate) == pytest.approx(16000, abs=500)


@pytest.mark.parametrize(
    ("name", "edge"),
    [("en_ljspeech_LJ001-0001.wav", 11025), ("en_vctk_p287_003_noisy.wav", 8000)],
)
def test_a_take_placed_in_a_48_khz_session_keeps_its_own_band(
    data_dir: Path, name: str, edge: float
) -> None:
    clip = _clip(data_dir, name)
    upsampled = resample(clip.audio, clip.sample_rate, SESSION_RATE)
    assert recorded_bandwidth(upsampled, SESSION_RATE) == pytest.approx(edge, abs=500)
    # Written as 16-bit PCM the empty band holds rounding noise; the cliff still shows.
    pcm16 = np.round(upsampled * 32767) / 32767
    assert recorded_bandwidth(pcm16, SESSION_RATE) == pytest.approx(edge, abs=500)


def test_a_full_band_recording_is_left_alone(data_dir: Path) -> None:
    # 48 kHz with breath and room above 16 kHz: its band runs to the converter's filter.
    clip = _clip(data_dir, "zh_stepaudio_whisper.wav")
    edge = recorded_bandwidth(clip.audio, clip.sample_rate)
    assert edge is None or edge >= 21000


@pytest.mark.parametrize("name", ["en_ami_meeting_trn04.wav", "zh_aishell1_BAC009S0724W0121.wav"])
def test_a_recording_at_its_own_rate_has_no_edge_inside_its_band(data_dir: Path, name: str) -> None:
    clip = _clip(data_dir, name)
    edge = recorded_bandwidth(clip.audio, clip.sample_rate)
    assert edge is None or edge >= 0.9 * clip.sample_rate / 2


def test_silence_hum_and_a_short_slice_have_no_bandwidth() -> None:
    t = np.arange(SESSION_RATE) / SESSION_RATE
    hum = (0.1 * np.sin(2 * np.pi * 50 * t))[np.newaxis, :].astype(np.float32)
    assert recorded_bandwidth(np.zeros((2, SESSION_RATE), np.float32), SESSION_RATE) is None
    assert recorded_bandwidth(hum, SESSION_RATE) is None
    assert recorded_bandwidth(hum[:, :500], SESSION_RATE) is None


def test_the_low_pass_is_flat_under_the_edge_stops_above_it_and_moves_nothing() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 4 * SESSION_RATE)).astype(np.float32)
    out = limit_bandwidth(noise, SESSION_RATE, 11000)
    assert out.shape == noise.shape and out.dtype == np.float32
    freqs, before = welch(noise[0], SESSION_RATE, nperseg=4096)
    _, after = welch(out[0], SESSION_RATE, nperseg=4096)
    passband = (freqs > 1000) & (freqs < 10500)
    assert np.all(np.abs(10 * np.log10(after[passband] / before[passband])) < 0.5)
    stopband = freqs > 11100
    assert 10 * np.log10(after[stopband].sum() / before[stopband].sum()) < -80
    click = np.zeros((1, SESSION_RATE), np.float32)
    click[0, SESSION_RATE // 2] = 1.0
    assert np.argmax(limit_bandwidth(click, SESSION_RATE, 11000)[0]) == SESSION_RATE // 2


@pytest.mark.parametrize(
    ("kind", "option"),
    [("style", "child"), ("style", "shout"), ("emotion", "sad"), ("emotion", "disgusted")],
)
def test_an_edit_adds_nothing_above_the_band_of_a_take_from_22_khz(
    data_dir: Path, kind: str, option: str
) -> None:
    # LJSpeech (22.05 kHz) in a 48 kHz session: a formant warp up, a compressor, breath
    # noise and creak all reached above 11 kHz, up to -31 dB under the whole.
    clip = _clip(data_dir, "en_ljspeech_LJ001-0001.wav")
    source = resample(clip.audio, clip.sample_rate, SESSION_RATE)
    edited = render_audio(
        CpuBackend(), source, SESSION_RATE, EditSpec(kind, option), lambda _f, _s: None
    )
    assert _band_db(edited.audio, SESSION_RATE, 11500, 24000) < -100


def test_an_edit_of_an_archive_transfer_adds_nothing_above_16_khz(data_dir: Path) -> None:
    jfk = _clip(data_dir, "en_jfk_inaugural_1961.flac")
    before = _band_db(jfk.audio, jfk.sample_rate, 16500, 22050)
    edited = render_audio(
        CpuBackend(), jfk.audio, jfk.sample_rate, EditSpec("emotion", "happy"), lambda _f, _s: None
    )
    assert _band_db(edited.audio, jfk.sample_rate, 16500, 22050) <= before + 3
