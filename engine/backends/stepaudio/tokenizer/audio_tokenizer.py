"""The dual-codebook audio tokenizer: 16 kHz preprocessing, vq02, vq06 and their interleave."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engine.backends.stepaudio.audio_prep import tokenizer_input
from engine.backends.stepaudio.tokenizer.files import (
    CODEBOOK_FILE,
    PARAFORMER_SUBDIR,
    SEMANTIC_ONNX_FILE,
)
from engine.backends.stepaudio.tokenizer.interleave import DualCodes
from engine.backends.stepaudio.tokenizer.vq02 import LinguisticTokenizer
from engine.backends.stepaudio.tokenizer.vq06 import SemanticTokenizer
from engine.errors import CheckpointError

__all__ = ["AudioTokenizer"]

_LOG = logging.getLogger(__name__)


class AudioTokenizer:
    """The dual-codebook tokenizer: 16 kHz preprocessing, vq02, vq06 and their interleave.

    Use ``load``; the constructor takes already-loaded streams.

    Args:
        linguistic: The vq02 stream.
        semantic: The vq06 stream.
    """

    def __init__(self, linguistic: LinguisticTokenizer, semantic: SemanticTokenizer) -> None:
        self.linguistic = linguistic
        self.semantic = semantic

    @classmethod
    def load(
        cls,
        tokenizer_dir: Path,
        device: str = "cpu",
        *,
        dither: float | None = None,
        paraformer_subdir: str = PARAFORMER_SUBDIR,
    ) -> AudioTokenizer:
        """Loads an official ``Step-Audio-Tokenizer`` directory.

        Args:
            tokenizer_dir: The directory as downloaded.
            device: Torch device of the vq02 encoder; ``cuda*`` also puts the S3 tokenizer
                on onnxruntime's CUDA provider.
            dither: vq02 front-end dither; ``None`` is the official behaviour (config value or
                FunASR's default 1.0, codes vary run to run); 0 makes codes reproducible.
            paraformer_subdir: Paraformer sub-path (the official ``--tokenizer-model-id``).

        Raises:
            CheckpointError: naming the directory and the missing or malformed file.
        """
        if not tokenizer_dir.is_dir():
            raise CheckpointError(
                f"{tokenizer_dir}: tokenizer directory is missing; put the downloaded "
                "Step-Audio-Tokenizer directory there"
            )
        linguistic = LinguisticTokenizer.load(
            tokenizer_dir / paraformer_subdir, tokenizer_dir / CODEBOOK_FILE, device, dither
        )
        semantic = SemanticTokenizer.load(tokenizer_dir / SEMANTIC_ONNX_FILE, device)
        return cls(linguistic, semantic)

    def tokenize(self, audio: np.ndarray, sample_rate: int) -> DualCodes:
        """Tokenizes a prepared prompt.

        Args:
            audio: 1-D float32 mono samples after the prompt rules (``prepare_prompt``).
            sample_rate: Their rate in Hz; any rate (lower than 16 kHz is upsampled).

        Returns:
            Both code streams and their interleaved forms.
        """
        audio16 = tokenizer_input(audio, sample_rate)
        vq02 = self.linguistic.tokenize(audio16)
        vq06 = self.semantic.tokenize(audio16)
        codes = DualCodes.from_codes(vq02, vq06)
        _LOG.debug(
            "tokenized %d samples at 16 kHz: %d vq02, %d vq06, %d groups",
            audio16.shape[0],
            len(vq02),
            len(vq06),
            codes.groups,
        )
        return codes
