"""The semantic (vq06) stream: whisper log-mel + the S3 tokenizer v1 ONNX model (spec §3.4).

Audio is cut into consecutive 30 s pieces (a piece under 30 ms is dropped); each piece gets
openai-whisper's 128-bin log-mel without padding and runs through ``speech_tokenizer_v1.onnx``,
whose two inputs (features, frame count) are addressed by position. About 25 codes per second.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from engine.backends.stepaudio.onnx_models import open_session
from engine.backends.stepaudio.tokenizer.files import TOKENIZER_FIX
from engine.dsp import slaney_mel_filters

__all__ = ["PIECE_SAMPLES", "SemanticTokenizer", "whisper_log_mel"]

_LOG = logging.getLogger(__name__)

# Longest piece the S3 tokenizer takes (30 s at 16 kHz), and the shortest one kept (30 ms).
PIECE_SAMPLES = 480_000
MIN_PIECE_SAMPLES = 480
# whisper's STFT: 25 ms periodic Hann window every 10 ms at 16 kHz.
_N_FFT = 400
_HOP = 160
_N_MELS = 128


@lru_cache(maxsize=4)
def _filters(n_mels: int) -> torch.Tensor:
    return torch.from_numpy(slaney_mel_filters(16000, _N_FFT, n_mels))


def whisper_log_mel(audio: torch.Tensor, n_mels: int = _N_MELS) -> torch.Tensor:
    """openai-whisper's ``log_mel_spectrogram`` of 16 kHz audio, without padding.

    Centred STFT (reflect padding), last frame dropped, power through Slaney mel filters,
    ``log10(max(mel, 1e-10))`` floored at 8 below its maximum, then ``(y + 4) / 4``.

    Args:
        audio: 1-D float32 samples at 16 kHz (at least 201 samples).
        n_mels: Mel bins.

    Returns:
        Float32 ``(n_mels, samples // 160)``.
    """
    window = torch.hann_window(_N_FFT, device=audio.device)
    stft = torch.stft(audio, _N_FFT, _HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = _filters(n_mels).to(audio.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


class SemanticTokenizer:
    """Runs the S3 tokenizer v1 ONNX model on 16 kHz audio.

    Args:
        session: An onnxruntime session of ``speech_tokenizer_v1.onnx``.
    """

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        self._names = [node.name for node in session.get_inputs()[:2]]

    @classmethod
    def load(cls, path: Path, device: str = "cpu", threads: int = 0) -> SemanticTokenizer:
        """Opens ``speech_tokenizer_v1.onnx``.

        Args:
            path: The ONNX file.
            device: ``cuda*`` runs it on onnxruntime's CUDA provider when available.
            threads: Intra-op threads; 0 lets onnxruntime use every core (the official code
                uses 1, which only changes speed).

        Raises:
            CheckpointError: when the file is missing or not a two-input ONNX model.
        """
        return cls(open_session(path, device, inputs=2, threads=threads, fix=TOKENIZER_FIX))

    def tokenize_piece(self, piece: np.ndarray) -> list[int]:
        """Codes (0 … 4095) of one piece of at most 30 s, about ``ceil(samples / 640)``."""
        feats = whisper_log_mel(torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32)))
        length = np.array([feats.shape[1]], dtype=np.int32)
        feeds = {self._names[0]: feats[None].numpy(), self._names[1]: length}
        codes = np.asarray(self.session.run(None, feeds)[0]).reshape(-1).tolist()
        expected = round(piece.shape[0] / 16000, 2) * 25
        if abs(len(codes) - expected) > 2:
            _LOG.warning(
                "S3 tokenizer gave %d codes for %d samples (expected about %.0f)",
                len(codes),
                piece.shape[0],
                expected,
            )
        return [int(code) for code in codes]

    def tokenize(self, audio: np.ndarray) -> list[int]:
        """vq06 codes of 16 kHz audio of any length (30 s pieces, each tokenized alone).

        Args:
            audio: 1-D float32 samples at 16 kHz.

        Returns:
            Codes in 0 … 4095, about 25 per second.
        """
        codes: list[int] = []
        for start in range(0, audio.shape[0], PIECE_SAMPLES):
            piece = audio[start : start + PIECE_SAMPLES]
            if piece.shape[0] >= MIN_PIECE_SAMPLES:
                codes.extend(self.tokenize_piece(piece))
        return codes
