"""Shared DSP against values measured with torchaudio 2.11 and librosa 0.10.2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.backends.stepaudio.torch_dsp import kaldi_fbank, kaldi_mel_banks, sinc_resample
from engine.dsp import slaney_mel_filters


def _two_tones() -> torch.Tensor:
    t = np.arange(4410, dtype=np.float64)
    x = 0.5 * np.sin(2 * np.pi * 440 * t / 44100) + 0.25 * np.sin(2 * np.pi * 7000 * t / 44100)
    return torch.from_numpy(x.astype(np.float32))


def _three_tones() -> torch.Tensor:
    n = np.arange(4000)
    x = (
        0.3 * np.sin(2 * np.pi * 300 * n / 16000)
        + 0.1 * np.sin(2 * np.pi * 2500 * n / 16000)
        + 0.05 * np.sin(2 * np.pi * 6100 * n / 16000)
    )
    return torch.from_numpy(x.astype(np.float32))


def test_sinc_resample_matches_torchaudio_transform() -> None:
    out = sinc_resample(_two_tones(), 44100, 16000, kernel_dtype=torch.float64)
    assert out.shape == (1600,)
    expected = [0.1195409968495369, 0.12805256247520447, -0.7037824988365173, -0.12805119156837463]
    got = [float(out[i]) for i in (0, 1, 100, 1599)]
    assert got == pytest.approx(expected, abs=1e-7)


def test_sinc_resample_matches_torchaudio_functional() -> None:
    out = sinc_resample(_two_tones()[None], 44100, 24000, kernel_dtype=torch.float32)
    assert out.shape == (1, 2400)
    expected = [0.04763972759246826, 0.3371015787124634, 0.21630331873893738, -0.2879972755908966]
    got = [float(out[0, i]) for i in (0, 5, 1000, 2399)]
    assert got == pytest.approx(expected, abs=1e-7)


def test_sinc_resample_same_rate_is_identity() -> None:
    x = _two_tones()
    assert sinc_resample(x, 16000, 16000, kernel_dtype=torch.float32) is x


@pytest.mark.parametrize("samples", [399, 400, 559, 560, 16000, 16123])
def test_fbank_frame_count_snips_edges(samples: int) -> None:
    feats = kaldi_fbank(torch.zeros(samples) + 0.01, num_mel_bins=80)
    assert feats.shape == ((1 + (samples - 400) // 160 if samples >= 400 else 0), 80)


def test_fbank_povey_matches_torchaudio() -> None:
    # torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0): the CAM++ front end.
    feats = kaldi_fbank(_three_tones(), num_mel_bins=80)
    assert feats.shape == (23, 80)
    # float32 FFTs differ by CPU kernel (MKL picks AVX2 or AVX-512): 1.3e-4 seen on a low bin.
    assert [float(feats[3, b]) for b in (5, 40, 75)] == pytest.approx(
        [-7.71708, -12.54416, -11.35377], abs=3e-4
    )


def test_fbank_hamming_16bit_matches_torchaudio() -> None:
    # The Paraformer front end: 16-bit scale, Hamming window, energy_floor 0.
    feats = kaldi_fbank(_three_tones() * 32768, num_mel_bins=80, window="hamming")
    assert [float(feats[7, b]) for b in (5, 40, 75)] == pytest.approx(
        [13.04762, 13.88922, 15.49485], abs=1e-4
    )


def test_fbank_dither_switch() -> None:
    x = _three_tones()
    np.testing.assert_array_equal(kaldi_fbank(x), kaldi_fbank(x))
    assert not torch.equal(kaldi_fbank(x, dither=1.0), kaldi_fbank(x, dither=1.0))


def test_kaldi_mel_banks_span_20_hz_to_nyquist() -> None:
    banks = kaldi_mel_banks(80, 512, 16000.0, 20.0, 0.0)
    assert banks.shape == (80, 257)
    assert torch.all(banks[:, -1] == 0)
    bin_hz = 16000 / 512
    assert torch.all(banks[:, : int(20 / bin_hz) + 1] == 0)  # nothing at or below 20 Hz
    assert torch.all(banks.max(dim=1).values > 0)


def test_slaney_filters_match_librosa() -> None:
    filters = slaney_mel_filters(24000, 1920, 80, 0.0, 8000.0)
    assert filters.shape == (80, 961)
    assert filters.dtype == np.float32
    assert float(filters[0, 1]) == pytest.approx(0.009013824164867401, rel=1e-6)
    assert float(filters[40].max()) == pytest.approx(0.01436969917267561, rel=1e-6)
    assert int(filters[79].nonzero()[0][-1]) == 639  # last bin ends at 8 kHz (bin 640)
    assert float(filters.sum()) == pytest.approx(6.399891376495361, rel=1e-5)


def test_slaney_filters_default_to_nyquist() -> None:
    filters = slaney_mel_filters(16000, 400, 128)
    assert filters.shape == (128, 201)
    assert filters[-1, -2] > 0


def test_sinc_resample_of_nothing_is_nothing() -> None:
    assert sinc_resample(torch.zeros(0), 44100, 16000, kernel_dtype=torch.float64).shape == (0,)
