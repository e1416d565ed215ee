"""Decoder conditioning from the prompt: CAM++ speaker embedding and 24 kHz prompt mel (§5.2).

Both take the prepared prompt (mono, peak ≤ 0.6, native rate, untrimmed). The official
pipeline rounds both to bf16 before the float32 decoder sees them; ``bf16_round=True`` (the
default) reproduces that, ``False`` keeps full float32 precision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch

from engine.backends.stepaudio.audio_prep import resample
from engine.backends.stepaudio.onnx_models import open_session
from engine.backends.stepaudio.torch_dsp import kaldi_fbank
from engine.dsp import slaney_mel_filters
from engine.errors import InputError

__all__ = [
    "EMBEDDING_DIM",
    "MelConfig",
    "SpeakerEncoder",
    "prompt_mel",
    "resize_prompt_mel",
    "round_bf16",
]

_LOG = logging.getLogger(__name__)

# Width of the CAM++ speaker embedding (the flow's ``spk_embed_dim``).
EMBEDDING_DIM = 192
# CAM++ takes 80-bin Kaldi fbank of 16 kHz audio.
_SPEAKER_RATE = 16000
_SPEAKER_MELS = 80


def round_bf16(values: np.ndarray) -> np.ndarray:
    """Rounds float32 values to bfloat16 precision (round to nearest even) and back."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return tensor.to(torch.bfloat16).to(torch.float32).numpy()


@dataclass(frozen=True)
class MelConfig:
    """``mel_conf`` of ``cosyvoice.yaml``; the defaults are the published values.

    Attributes:
        n_fft: FFT size.
        num_mels: Mel bins.
        sampling_rate: Rate the prompt is resampled to, in Hz.
        hop_size: Hop in samples.
        win_size: Periodic Hann window length.
        fmin: Lowest mel edge in Hz.
        fmax: Highest mel edge in Hz; ``None`` means Nyquist.
    """

    n_fft: int = 1920
    num_mels: int = 80
    sampling_rate: int = 24000
    hop_size: int = 480
    win_size: int = 1920
    fmin: float = 0.0
    fmax: float | None = 8000.0

    @classmethod
    def from_mapping(cls, conf: Mapping[str, Any]) -> MelConfig:
        """Builds the config from a parsed ``mel_conf`` mapping; absent keys keep defaults."""
        defaults = cls()
        fmax = conf.get("fmax", defaults.fmax)
        return cls(
            n_fft=int(conf.get("n_fft", defaults.n_fft)),
            num_mels=int(conf.get("num_mels", defaults.num_mels)),
            sampling_rate=int(conf.get("sampling_rate", defaults.sampling_rate)),
            hop_size=int(conf.get("hop_size", defaults.hop_size)),
            win_size=int(conf.get("win_size", defaults.win_size)),
            fmin=float(conf.get("fmin", defaults.fmin)),
            fmax=None if fmax is None else float(fmax),
        )


@lru_cache(maxsize=4)
def _mel_basis(config: MelConfig) -> torch.Tensor:
    return torch.from_numpy(
        slaney_mel_filters(
            config.sampling_rate, config.n_fft, config.num_mels, config.fmin, config.fmax
        )
    )


def prompt_mel(
    audio: np.ndarray, sample_rate: int, config: MelConfig | None = None, *, bf16_round: bool = True
) -> np.ndarray:
    """The prompt's log-mel (``prompt_feat``), 50 frames per second at 24 kHz.

    Resample to ``sampling_rate`` (windowed sinc), reflect-pad ``(n_fft - hop) / 2`` samples
    on each side, STFT without centring (periodic Hann), magnitude ``sqrt(|X|² + 1e-9)``,
    Slaney mel filters, ``ln(max(mel, 1e-5))``.

    Args:
        audio: 1-D float32 prepared prompt (untrimmed).
        sample_rate: Its rate in Hz.
        config: ``mel_conf``; ``None`` uses the published values.
        bf16_round: Round the result to bf16 precision, as the official pipeline does.

    Returns:
        Float32 ``(frames, num_mels)`` with ``frames = samples_24k // hop``.

    Raises:
        InputError: when the prompt is too short for one frame.
    """
    config = config or MelConfig()
    wave = resample(audio, sample_rate, config.sampling_rate, kernel_dtype=torch.float32)
    pad = (config.n_fft - config.hop_size) // 2
    if wave.shape[0] <= pad:
        raise InputError(f"prompt of {wave.shape[0]} samples is too short for a mel frame")
    padded = torch.nn.functional.pad(torch.from_numpy(wave)[None, None], (pad, pad), mode="reflect")
    spec = torch.stft(
        padded[0],
        config.n_fft,
        hop_length=config.hop_size,
        win_length=config.win_size,
        window=torch.hann_window(config.win_size),
        center=False,
        return_complex=True,
    )
    magnitude = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)
    mel = torch.log(torch.clamp(torch.matmul(_mel_basis(config), magnitude), min=1e-5))
    feat = mel[0].T.contiguous().numpy()
    return round_bf16(feat) if bf16_round else feat


def resize_prompt_mel(mel: np.ndarray, frames: int) -> np.ndarray:
    """Nearest-neighbour resize along time (``F.interpolate(mode="nearest")``).

    The prompt mel comes from the untrimmed prompt while the prompt tokens come from the
    trimmed one; the official decoder resizes the mel to ``2 * token_frames`` this way.

    Args:
        mel: ``(frames_in, bins)``.
        frames: Wanted frame count.

    Returns:
        Float32 ``(frames, bins)``.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)).T[None]
    resized = torch.nn.functional.interpolate(tensor, size=frames, mode="nearest")
    return resized[0].T.contiguous().numpy()


class SpeakerEncoder:
    """CAM++ (``campplus.onnx``) speaker embeddings.

    Args:
        session: An onnxruntime session of ``campplus.onnx``.
    """

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        self._input = session.get_inputs()[0].name

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> SpeakerEncoder:
        """Opens ``campplus.onnx``.

        The official code runs it on the CPU with one thread; ``cuda*`` devices use
        onnxruntime's CUDA provider when available.

        Raises:
            CheckpointError: when the file is missing or not an ONNX model.
        """
        fix = "download the Step-Audio-EditX directory again (CosyVoice-300M-25Hz/campplus.onnx)"
        return cls(open_session(path, device, inputs=1, threads=1, fix=fix))

    def embed(self, audio: np.ndarray, sample_rate: int, *, bf16_round: bool = True) -> np.ndarray:
        """192-d speaker embedding of a prepared prompt.

        16 kHz (windowed sinc), 80-bin Kaldi fbank (Povey window, no dither, no 16-bit
        scaling), minus its mean over time, through CAM++; the input is fed by position.

        Args:
            audio: 1-D float32 prepared prompt (untrimmed).
            sample_rate: Its rate in Hz.
            bf16_round: Round to bf16 precision, as the official pipeline does.

        Returns:
            Float32 ``(192,)``.

        Raises:
            InputError: when the prompt is shorter than one 25 ms frame.
        """
        wave = resample(audio, sample_rate, _SPEAKER_RATE, kernel_dtype=torch.float32)
        feats = kaldi_fbank(torch.from_numpy(wave), num_mel_bins=_SPEAKER_MELS)
        if feats.shape[0] == 0:
            raise InputError(f"prompt of {wave.shape[0]} samples at 16 kHz is too short")
        feats = feats - feats.mean(dim=0, keepdim=True)
        output = self.session.run(None, {self._input: feats[None].numpy()})[0]
        embedding = np.asarray(output, dtype=np.float32).reshape(-1)
        if embedding.shape[0] != EMBEDDING_DIM:
            _LOG.warning(
                "CAM++ gave a %d-d embedding, expected %d", embedding.shape[0], EMBEDDING_DIM
            )
        return round_bf16(embedding) if bf16_round else embedding
