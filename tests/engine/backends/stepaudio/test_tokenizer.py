"""The whole dual-codebook tokenizer on the official-layout fixture (spec §2-§3, §9.3)."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.backends.stepaudio.audio_prep import prepare_prompt, tokenizer_input
from engine.backends.stepaudio.tokenizer import (
    PARAFORMER_SUBDIR,
    TOKENIZER_FILES,
    TOKENIZER_UNUSED_FILES,
    AudioTokenizer,
)
from engine.backends.stepaudio.tokenizer.interleave import parse_token_string, to_llm_ids
from engine.errors import CheckpointError
from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer_dir(tmp_path_factory.mktemp("root"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> AudioTokenizer:
    return AudioTokenizer.load(tokenizer_dir, "cpu", dither=0.0)


def _expected_vq02(samples: int) -> int:
    """LFR frames the official streaming front end makes from ``samples`` at 16 kHz."""
    full, rest = divmod(samples, 3840)
    if rest == 0:
        return 4 * full
    available = (320 if full else 0) + rest
    fbank = 1 + (available - 400) // 160 if available >= 400 else 0
    context = 1 if full else 3
    tail = 0 if fbank == 0 or fbank + context < 7 else math.ceil((fbank + context - 3) / 6)
    return 4 * full + tail


def test_fixture_has_the_official_layout(tokenizer_dir: Path) -> None:
    assert tokenizer_dir.name == "Step-Audio-Tokenizer"
    for name in (*TOKENIZER_FILES, *TOKENIZER_UNUSED_FILES):
        assert (tokenizer_dir / name).is_file(), name


def test_three_seconds_of_noise_at_44k(tokenizer: AudioTokenizer) -> None:
    noise = np.random.default_rng(0).standard_normal(3 * 44100).astype(np.float32) * 0.1
    started = time.perf_counter()
    codes = tokenizer.tokenize(prepare_prompt(noise), 44100)
    elapsed = time.perf_counter() - started
    assert (len(codes.vq02), len(codes.vq06)) == (55, 82)  # spec §9.3
    assert codes.groups == 27
    assert len(codes.llm_ids) == 135
    assert all(65536 <= i < 66560 for i in codes.llm_ids[0::5] + codes.llm_ids[1::5])
    assert all(66560 <= i < 70656 for i in codes.llm_ids[2::5])
    assert to_llm_ids(parse_token_string(codes.token_string)) == codes.llm_ids
    assert elapsed < 5.0


def test_real_clip_end_to_end(data_dir: Path, tokenizer: AudioTokenizer) -> None:
    data, rate = soundfile.read(
        data_dir / "en_librispeech_1995-1837-0001.wav", dtype="float32", always_2d=True
    )
    prompt = prepare_prompt(data.T)
    samples = tokenizer_input(prompt, rate).shape[0]
    codes = tokenizer.tokenize(prompt, rate)
    assert len(codes.vq02) == _expected_vq02(samples)
    assert len(codes.vq06) == math.ceil((samples // 160) / 4)
    assert abs(len(codes.vq06) - samples / 640) <= 2
    assert codes.groups == min(len(codes.vq02) // 2, len(codes.vq06) // 3)
    assert len(set(codes.vq02)) > 5  # speech moves through the codebook
    assert codes.token_string.count("<audio_") == 5 * codes.groups


def test_stereo_prompt_at_any_rate(tokenizer: AudioTokenizer) -> None:
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)]) * 0.9
    prompt = prepare_prompt(stereo.astype(np.float32))
    samples = tokenizer_input(prompt, 22050).shape[0]
    codes = tokenizer.tokenize(prompt, 22050)
    assert len(codes.vq02) == _expected_vq02(samples)


def test_missing_tokenizer_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="tokenizer directory is missing") as caught:
        AudioTokenizer.load(tmp_path / "Step-Audio-Tokenizer")
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("name", TOKENIZER_FILES)
def test_each_missing_file_is_named(tokenizer_dir: Path, tmp_path: Path, name: str) -> None:
    copy = Path(shutil.copytree(tokenizer_dir, tmp_path / "Step-Audio-Tokenizer"))
    (copy / name).unlink()
    with pytest.raises(CheckpointError, match=f"{Path(name).name}: file is missing"):
        AudioTokenizer.load(copy, dither=0.0)


def test_paraformer_subdir_can_be_overridden(tokenizer_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tokenizer_dir, tmp_path / "Step-Audio-Tokenizer"))
    (copy / PARAFORMER_SUBDIR).rename(copy / "paraformer")
    loaded = AudioTokenizer.load(copy, dither=0.0, paraformer_subdir="paraformer")
    assert loaded.linguistic.encoder.config.num_blocks == 50
