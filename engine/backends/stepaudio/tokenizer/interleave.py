"""The dual-codebook token scheme (spec §3.5) and the tokenizer that produces it.

Codes are interleaved in groups of 2 vq02 + 3 vq06 codes (120 ms each). Within the mixed
stream a vq02 code c is written as N = c and a vq06 code c as N = 1024 + c; the LLM id is
65536 + N and the text form is ``<audio_N>``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends.stepaudio.audio_prep import tokenizer_input
from engine.backends.stepaudio.tokenizer.files import (
    CODEBOOK_FILE,
    PARAFORMER_SUBDIR,
    SEMANTIC_ONNX_FILE,
)
from engine.backends.stepaudio.tokenizer.vq02 import LinguisticTokenizer
from engine.backends.stepaudio.tokenizer.vq06 import SemanticTokenizer
from engine.backends.stepaudio.vocab import AUDIO_ID_OFFSET, VQ02_CODES, VQ06_CODES, VQ06_OFFSET
from engine.errors import CheckpointError

__all__ = [
    "AUDIO_ID_OFFSET",
    "VQ02_CODES",
    "VQ06_CODES",
    "VQ06_OFFSET",
    "AudioTokenizer",
    "DualCodes",
    "interleave",
    "parse_token_string",
    "to_llm_ids",
    "token_string",
]

_LOG = logging.getLogger(__name__)

# Codes of each stream per group.
_GROUP = (2, 3)
_PIECE = re.compile(r"<audio_(\d+)>")


def interleave(vq02: Sequence[int], vq06: Sequence[int]) -> list[int]:
    """Mixes the streams into N values, group by group: ``a a b b b``.

    Only whole groups are kept: ``G = min(len(vq02) // 2, len(vq06) // 3)``; extra codes at the
    end of either stream are dropped.

    Args:
        vq02: Linguistic codes, 0 … 1023.
        vq06: Semantic codes, 0 … 4095.

    Returns:
        ``5 * G`` N values: vq02 codes as they are, vq06 codes plus 1024.
    """
    groups = min(len(vq02) // _GROUP[0], len(vq06) // _GROUP[1])
    values: list[int] = []
    for g in range(groups):
        values.extend(int(c) for c in vq02[2 * g : 2 * g + 2])
        values.extend(VQ06_OFFSET + int(c) for c in vq06[3 * g : 3 * g + 3])
    return values


def to_llm_ids(values: Sequence[int]) -> list[int]:
    """LLM token ids (65536 + N) of N values."""
    return [AUDIO_ID_OFFSET + int(v) for v in values]


def token_string(values: Sequence[int]) -> str:
    """``<audio_N>`` pieces of N values, concatenated without separators."""
    return "".join(f"<audio_{int(v)}>" for v in values)


def parse_token_string(text: str) -> list[int]:
    """N values of a string of ``<audio_N>`` pieces (surrounding whitespace ignored).

    Raises:
        ValueError: when anything but ``<audio_N>`` pieces is in the string, naming where.
    """
    text = text.strip()
    values: list[int] = []
    position = 0
    for match in _PIECE.finditer(text):
        if match.start() != position:
            break
        values.append(int(match.group(1)))
        position = match.end()
    if position != len(text):
        bad = text[position : position + 20]
        raise ValueError(f"not an <audio_N> piece at offset {position}: {bad!r}")
    return values


@dataclass(frozen=True)
class DualCodes:
    """Both code streams of one prompt and their mixed forms.

    Attributes:
        vq02: Linguistic codes (0 … 1023), 16.67 per second.
        vq06: Semantic codes (0 … 4095), 25 per second.
        llm_ids: The mixed stream as LLM ids (65536 + N), 5 per group; minus 65536 this is
            the decoder's prompt token list.
        token_string: The same items as ``<audio_N>`` text for the prompt template.
    """

    vq02: list[int]
    vq06: list[int]
    llm_ids: list[int]
    token_string: str

    @classmethod
    def from_codes(cls, vq02: Sequence[int], vq06: Sequence[int]) -> DualCodes:
        """Interleaves two code lists (see ``interleave``)."""
        values = interleave(vq02, vq06)
        return cls(list(vq02), list(vq06), to_llm_ids(values), token_string(values))

    @property
    def groups(self) -> int:
        """Whole 120 ms groups in the mixed stream (``len(llm_ids) // 5``)."""
        return len(self.llm_ids) // 5

    @property
    def values(self) -> list[int]:
        """The mixed stream as N values (LLM id - 65536)."""
        return [i - AUDIO_ID_OFFSET for i in self.llm_ids]


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
            audio16.shape[0], len(vq02), len(vq06), codes.groups,
        )
        return codes
