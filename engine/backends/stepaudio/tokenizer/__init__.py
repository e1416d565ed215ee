"""The dual-codebook audio tokenizer (vq02 linguistic + vq06 semantic streams)."""

from engine.backends.stepaudio.tokenizer.audio_tokenizer import AudioTokenizer
from engine.backends.stepaudio.tokenizer.files import (
    PARAFORMER_SUBDIR,
    TOKENIZER_FILES,
    TOKENIZER_UNUSED_FILES,
)
from engine.backends.stepaudio.tokenizer.interleave import DualCodes

__all__ = [
    "PARAFORMER_SUBDIR",
    "TOKENIZER_FILES",
    "TOKENIZER_UNUSED_FILES",
    "AudioTokenizer",
    "DualCodes",
]
