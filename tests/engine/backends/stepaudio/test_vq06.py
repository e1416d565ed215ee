"""The vq06 stream: whisper log-mel and the S3 tokenizer ONNX model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine.backends.stepaudio.tokenizer.files import SEMANTIC_ONNX_FILE
from engine.backends.stepaudio.tokenizer.vq06 import SemanticTokenizer, whisper_log_mel
from engine.errors import CheckpointError
from tests.engine.backends.stepaudio.fixture_tokenizer import write_s3_tokenizer_onnx


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_s3_tokenizer_onnx(tmp_path_factory.mktemp("vq06") / SEMANTIC_ONNX_FILE)


@pytest.fixture(scope="module")
def semantic(onnx_path: Path) -> SemanticTokenizer:
    return SemanticTokenizer.load(onnx_path)


def _noise(samples: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(samples) * 0.1).astype(np.float32)


@pytest.mark.parametrize("samples", [480, 16000, 52320, 16001])
def test_log_mel_has_128_bins_and_one_frame_per_160_samples(samples: int) -> None:
    mel = whisper_log_mel(torch.from_numpy(_noise(samples)))
    assert mel.shape == (128, samples // 160)


def test_log_mel_dynamic_range_is_clamped_to_8() -> None:
    audio = np.zeros(16000, np.float32)
    audio[8000:8100] = 0.5
    mel = whisper_log_mel(torch.from_numpy(audio))
    # log10 floored at max - 8, then (y + 4) / 4: the span is at most 2.
    assert float(mel.max() - mel.min()) == pytest.approx(2.0)


@pytest.mark.parametrize("samples", [480, 16000, 52320, 30 * 16000])
def test_code_count_is_about_samples_over_640(semantic: SemanticTokenizer, samples: int) -> None:
    codes = semantic.tokenize(_noise(samples))
    assert len(codes) == math.ceil((samples // 160) / 4)
    assert abs(len(codes) - samples / 640) <= 2
    assert all(0 <= c < 4096 for c in codes)


def test_long_audio_is_cut_into_30_s_pieces(semantic: SemanticTokenizer) -> None:
    audio = _noise(30 * 16000 + 16000 + 479)
    codes = semantic.tokenize(audio)
    first = semantic.tokenize_piece(audio[: 30 * 16000])
    second = semantic.tokenize_piece(audio[30 * 16000 :])
    assert codes == first + second
    # A last piece under 480 samples (30 ms) is dropped.
    assert semantic.tokenize(audio[: 30 * 16000 + 479]) == first


def test_inputs_are_addressed_by_position(onnx_path: Path, tmp_path: Path) -> None:
    model = onnx.load(str(onnx_path))
    renames = {"feats": "speech", "feats_length": "speech_lengths"}
    for graph_input in model.graph.input:
        graph_input.name = renames[graph_input.name]
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    renamed = tmp_path / "renamed.onnx"
    onnx.save(model, str(renamed))
    audio = _noise(20000)
    assert SemanticTokenizer.load(renamed).tokenize(audio) == (
        SemanticTokenizer.load(onnx_path).tokenize(audio)
    )


def test_missing_or_corrupt_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"speech_tokenizer_v1\.onnx: file is missing"):
        SemanticTokenizer.load(tmp_path / SEMANTIC_ONNX_FILE)
    bad = tmp_path / SEMANTIC_ONNX_FILE
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        SemanticTokenizer.load(bad)
