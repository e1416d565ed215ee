"""Signal helpers the Step-Audio front ends share: sinc resampling, Kaldi fbank, Slaney mel.

Each function reproduces the arithmetic of the library the official pipeline calls
(torchaudio's ``resample`` and ``compliance.kaldi.fbank``, librosa's Slaney ``filters.mel``)
in plain torch/numpy, so torchaudio and librosa stay optional. Tensors are float32 on any
device. (The Slaney mel filters live in ``engine.dsp``, shared with the evaluation
harness.)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["kaldi_fbank", "kaldi_mel_banks", "sinc_resample"]

# Windowed-sinc parameters of torchaudio's default ("sinc_interp_hann") resampler.
_LOWPASS_WIDTH = 6
_ROLLOFF = 0.99


def _sinc_kernel(
    orig: int, new: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Polyphase kernel ``(new, 1, taps)`` and its half width, for already reduced rates."""
    base = min(orig, new) * _ROLLOFF
    width = math.ceil(_LOWPASS_WIDTH * orig / base)
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device) / orig
    # The phase offsets are divided in float32 before any promotion, as torchaudio does.
    phases = torch.arange(0, -new, -1, dtype=torch.float32, device=device) / new
    t = (phases.to(dtype)[:, None, None] + taps[None, None, :]) * base
    t = t.clamp(-_LOWPASS_WIDTH, _LOWPASS_WIDTH)
    window = torch.cos(t * math.pi / _LOWPASS_WIDTH / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=dtype, device=device), t.sin() / t)
    kernel = sinc * (window * (base / orig))
    return kernel.to(torch.float32), width


def sinc_resample(
    audio: torch.Tensor, orig_rate: int, new_rate: int, *, kernel_dtype: torch.dtype
) -> torch.Tensor:
    """Resamples ``(..., samples)`` audio with torchaudio's Hann-windowed sinc.

    Width 6 zero crossings, roll-off 0.99, zero padding at both ends; the output has
    ``ceil(new_rate * samples / orig_rate)`` samples. Works in both directions.

    Args:
        audio: Float32 tensor, any leading shape.
        orig_rate: Its rate in Hz.
        new_rate: Wanted rate in Hz.
        kernel_dtype: Precision the kernel is computed in before it is stored as float32:
            ``torch.float64`` reproduces ``torchaudio.transforms.Resample`` (the tokenizer
            path), ``torch.float32`` reproduces ``torchaudio.functional.resample`` on float32
            input (the speaker and prompt-mel path).

    Returns:
        The resampled float32 tensor.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return audio
    if audio.shape[-1] == 0:
        return audio.clone()
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    kernel, width = _sinc_kernel(orig, new, kernel_dtype, audio.device)
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    length = flat.shape[-1]
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    # torchaudio rounds the target length through a float32 scalar; so do we.
    target = math.ceil(float(np.float32(new * length / orig)))
    return out[..., :target].reshape(*shape[:-1], -1)


def kaldi_mel_banks(
    num_bins: int, padded_window: int, sample_rate: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi triangular mel filters on the mel scale ``1127 ln(1 + f/700)``.

    Args:
        num_bins: Number of mel bins.
        padded_window: FFT size (a power of two).
        sample_rate: Rate in Hz.
        low_freq: Lowest edge in Hz.
        high_freq: Highest edge in Hz; ``<= 0`` counts down from Nyquist.

    Returns:
        Float32 ``(num_bins, padded_window // 2 + 1)``; the Nyquist column is zero.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < high_freq <= nyquist):
        raise ValueError(f"bad mel range {low_freq}..{high_freq} Hz for {sample_rate} Hz")
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    bin_width = sample_rate / padded_window
    mel = 1127.0 * (1.0 + bin_width * torch.arange(padded_window / 2) / 700.0).log()
    mel = mel.unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.max(torch.zeros(1), torch.min(up, down))
    return torch.nn.functional.pad(banks, (0, 1))


def _window(kind: str, size: int, device: torch.device) -> torch.Tensor:
    if kind == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, device=device)
    if kind == "hanning":
        return torch.hann_window(size, periodic=False, device=device)
    if kind == "povey":
        return torch.hann_window(size, periodic=False, device=device).pow(0.85)
    if kind == "rectangular":
        return torch.ones(size, device=device)
    raise ValueError(
        f"unsupported fbank window {kind!r}; use hamming, hanning, povey or rectangular"
    )


@lru_cache(maxsize=8)
def _fbank_tables(
    kind: str,
    size: int,
    num_bins: int,
    padded: int,
    sample_rate: float,
    low_freq: float,
    high_freq: float,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(1, size)`` frame window and the transposed mel banks, built once per setting.

    The streaming Paraformer front end calls ``kaldi_fbank`` every 240 ms piece; the tables
    are never written to, so all calls share them.
    """
    with torch.inference_mode(False):  # shared tables must not be inference tensors
        window = _window(kind, size, device).unsqueeze(0)
        banks = kaldi_mel_banks(num_bins, padded, sample_rate, low_freq, high_freq).to(device)
    return window, banks.T


def kaldi_fbank(
    waveform: torch.Tensor,
    *,
    num_mel_bins: int = 80,
    sample_rate: float = 16000.0,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window: str = "povey",
    dither: float = 0.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Log mel filterbank energies as ``torchaudio.compliance.kaldi.fbank`` computes them.

    Only whole frames are produced (``snip_edges=True``). Per frame: optional Gaussian dither,
    DC removal, pre-emphasis (first sample replicated), window, zero padding to a power of
    two, power spectrum, Kaldi mel filters, ``ln(max(e, float32 eps))``. No energy term.

    Args:
        waveform: 1-D float32 tensor, already in the scale the model expects.
        num_mel_bins: Number of mel bins.
        sample_rate: Rate in Hz.
        frame_length_ms: Frame length in milliseconds.
        frame_shift_ms: Frame shift in milliseconds.
        window: ``"povey"`` (Kaldi's default), ``"hamming"``, ``"hanning"`` or
            ``"rectangular"``.
        dither: Standard deviation of the Gaussian noise added to each frame (drawn from
            torch's global generator, as torchaudio does); 0 disables it.
        preemphasis: Pre-emphasis coefficient.
        low_freq: Lowest mel edge in Hz.
        high_freq: Highest mel edge in Hz; ``<= 0`` counts down from Nyquist.

    Returns:
        Float32 ``(frames, num_mel_bins)``; zero frames when the input is shorter than one
        frame.
    """
    shift = int(sample_rate * frame_shift_ms * 0.001)
    size = int(sample_rate * frame_length_ms * 0.001)
    padded = 1 << (size - 1).bit_length()
    device = waveform.device
    if waveform.numel() < size:
        return torch.zeros((0, num_mel_bins), device=device)
    count = 1 + (waveform.numel() - size) // shift
    frames = waveform.contiguous().as_strided((count, size), (shift, 1))
    if dither != 0.0:
        frames = frames + torch.randn(frames.shape, device=device) * dither
    frames = frames - frames.mean(dim=1, keepdim=True)
    if preemphasis != 0.0:
        previous = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate")
        frames = frames - preemphasis * previous.squeeze(0)[:, :-1]
    frame_window, banks = _fbank_tables(
        window, size, num_mel_bins, padded, sample_rate, low_freq, high_freq, device
    )
    frames = torch.nn.functional.pad(frames * frame_window, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    energies = torch.mm(power, banks)
    eps = torch.tensor(torch.finfo(torch.float32).eps, device=device)
    return torch.max(energies, eps).log()
