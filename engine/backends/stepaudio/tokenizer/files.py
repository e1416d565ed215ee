"""File layout of the official ``Step-Audio-Tokenizer`` directory (spec §1.2)."""

from __future__ import annotations

__all__ = [
    "CODEBOOK_FILE",
    "PARAFORMER_SUBDIR",
    "SEMANTIC_ONNX_FILE",
    "TOKENIZER_FILES",
    "TOKENIZER_FIX",
    "TOKENIZER_UNUSED_FILES",
]

# Default Paraformer sub-path (the official ``--tokenizer-model-id``).
PARAFORMER_SUBDIR = (
    "dengcunqin/speech_paraformer-large_asr_nat-zh-cantonese-en-16k-vocab8501-online"
)
# k-means codebook of the linguistic (vq02) stream, float32 (1024, 512).
CODEBOOK_FILE = "linguistic_tokenizer.npy"
# CosyVoice S3 tokenizer v1 of the semantic (vq06) stream.
SEMANTIC_ONNX_FILE = "speech_tokenizer_v1.onnx"

# What to do when one of the files below is missing or unusable.
TOKENIZER_FIX = "download the Step-Audio-Tokenizer directory again"

# Every file the tokenizer reads, relative to the tokenizer directory.
TOKENIZER_FILES: tuple[str, ...] = (
    CODEBOOK_FILE,
    SEMANTIC_ONNX_FILE,
    f"{PARAFORMER_SUBDIR}/configuration.json",
    f"{PARAFORMER_SUBDIR}/config.yaml",
    f"{PARAFORMER_SUBDIR}/model.pt",
    f"{PARAFORMER_SUBDIR}/am.mvn",
)
# Shipped with the official download and needed by FunASR's ASR loader, never read here.
TOKENIZER_UNUSED_FILES: tuple[str, ...] = (
    f"{PARAFORMER_SUBDIR}/tokens.json",
    f"{PARAFORMER_SUBDIR}/tokens.txt",
    f"{PARAFORMER_SUBDIR}/seg_dict",
)
