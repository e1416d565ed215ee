"""Decoder conditioning: CAM++ speaker embedding and the 24 kHz prompt mel (spec §5.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import torch

from engine.backends.stepaudio.audio_prep import prepare_prompt
from engine.backends.stepaudio.speaker import (
    EMBEDDING_DIM,
    MelConfig,
    SpeakerEncoder,
    prompt_mel,
    resize_prompt_mel,
    round_bf16,
)
from engine.errors import CheckpointError, InputError
from tests.engine.backends.stepaudio.fixture_tokenizer import write_campplus_onnx


@pytest.fixture(scope="module")
def campplus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_campplus_onnx(tmp_path_factory.mktemp("campplus") / "campplus.onnx")


@pytest.fixture(scope="module")
def encoder(campplus: Path) -> SpeakerEncoder:
    return SpeakerEncoder.load(campplus)


def _voice(seconds: float, rate: int, pitch: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    harmonics = sum((np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 12)), np.zeros_like(t))
    return (0.1 * harmonics + 0.01 * rng.standard_normal(t.shape[0])).astype(np.float32)


def test_mel_config_defaults_are_the_published_values() -> None:
    config = MelConfig()
    assert (config.n_fft, config.hop_size, config.win_size) == (1920, 480, 1920)
    assert (config.num_mels, config.sampling_rate, config.fmin, config.fmax) == (80, 24000, 0, 8000)


def test_mel_config_from_cosyvoice_yaml_mapping() -> None:
    conf = {
        "n_fft": 1920,
        "num_mels": 80,
        "sampling_rate": 24000,
        "hop_size": 480,
        "win_size": 1920,
        "fmin": 0,
        "fmax": None,
        "center": False,
    }
    assert MelConfig.from_mapping(conf).fmax is None
    assert MelConfig.from_mapping({}) == MelConfig()


@pytest.mark.parametrize(
    ("rate", "samples"), [(24000, 24000), (44100, 44100 * 2 + 17), (16000, 8000)]
)
def test_prompt_mel_has_one_frame_per_480_samples_at_24k(rate: int, samples: int) -> None:
    mel = prompt_mel(_voice(samples / rate, rate, 120, 0), rate)
    samples24 = -(-samples * 24000 // rate)
    assert mel.shape == (samples24 // 480, 80)
    assert mel.dtype == np.float32
    assert mel.min() >= np.log(1e-5) - 1e-3


def test_prompt_mel_is_natural_log_of_clamped_magnitude() -> None:
    mel = prompt_mel(np.zeros(24000, np.float32), 24000, bf16_round=False)
    # Silence: magnitude sqrt(1e-9) per bin, filters sum to < 1e-5, so everything clamps.
    np.testing.assert_allclose(mel, np.log(1e-5), rtol=1e-6)


def test_bf16_rounding_switch() -> None:
    audio = _voice(1.0, 24000, 150, 1)
    exact = prompt_mel(audio, 24000, bf16_round=False)
    rounded = prompt_mel(audio, 24000)
    np.testing.assert_array_equal(rounded, round_bf16(exact))
    assert not np.array_equal(rounded, exact)
    as_bf16 = torch.from_numpy(rounded).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(as_bf16, rounded)


@pytest.mark.parametrize("groups", [1, 17, 40])
def test_nearest_resize_gives_two_frames_per_token_frame(groups: int) -> None:
    mel = np.arange(100 * 80, dtype=np.float32).reshape(100, 80)
    resized = resize_prompt_mel(mel, 2 * 3 * groups)
    assert resized.shape == (6 * groups, 80)
    index = np.floor(np.arange(6 * groups) * (100 / (6 * groups))).astype(int)
    np.testing.assert_array_equal(resized, mel[index])


def test_too_short_prompt_is_an_input_error(encoder: SpeakerEncoder) -> None:
    with pytest.raises(InputError, match="too short"):
        prompt_mel(np.zeros(500, np.float32), 24000)
    with pytest.raises(InputError, match="too short"):
        encoder.embed(np.zeros(300, np.float32), 16000)


def test_embedding_is_192_floats_and_deterministic(encoder: SpeakerEncoder) -> None:
    audio = _voice(1.5, 44100, 110, 0)
    embedding = encoder.embed(audio, 44100)
    assert embedding.shape == (EMBEDDING_DIM,)
    assert embedding.dtype == np.float32
    np.testing.assert_array_equal(embedding, encoder.embed(audio, 44100))
    np.testing.assert_array_equal(
        embedding, round_bf16(encoder.embed(audio, 44100, bf16_round=False))
    )


def test_different_voices_give_different_embeddings(encoder: SpeakerEncoder) -> None:
    low = encoder.embed(_voice(1.5, 16000, 95, 0), 16000)
    high = encoder.embed(_voice(1.5, 16000, 260, 1), 16000)
    cosine = float(low @ high / np.linalg.norm(low) / np.linalg.norm(high))
    assert cosine < 0.999


def test_embedding_ignores_a_constant_gain_offset_in_fbank(encoder: SpeakerEncoder) -> None:
    # The time mean of the fbank is removed first, so a level change (an additive log offset)
    # does not move the embedding.
    audio = _voice(1.0, 16000, 150, 2)
    np.testing.assert_allclose(
        encoder.embed(audio, 16000, bf16_round=False),
        encoder.embed(audio * 0.5, 16000, bf16_round=False),
        rtol=1e-3,
        atol=1e-3,
    )


def test_campplus_input_is_addressed_by_position(campplus: Path, tmp_path: Path) -> None:
    model = onnx.load(str(campplus))
    model.graph.input[0].name = "feats"
    for node in model.graph.node:
        node.input[:] = ["feats" if name == "input" else name for name in node.input]
    renamed = tmp_path / "renamed.onnx"
    onnx.save(model, str(renamed))
    audio = _voice(1.0, 16000, 150, 3)
    np.testing.assert_array_equal(
        SpeakerEncoder.load(renamed).embed(audio, 16000),
        SpeakerEncoder.load(campplus).embed(audio, 16000),
    )


def test_missing_campplus_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"campplus\.onnx: file is missing"):
        SpeakerEncoder.load(tmp_path / "campplus.onnx")


def test_real_clips_give_distinct_speakers(data_dir: Path, encoder: SpeakerEncoder) -> None:
    embeddings = []
    for name in ("en_ljspeech_LJ001-0001.wav", "zh_stepaudio_vad.wav"):
        data, rate = soundfile.read(data_dir / name, dtype="float32", always_2d=True)
        prompt = prepare_prompt(data.T)
        mel = prompt_mel(prompt, rate)
        assert mel.shape[0] == -(-prompt.shape[0] * 24000 // rate) // 480
        embeddings.append(encoder.embed(prompt, rate))
    assert not np.allclose(embeddings[0], embeddings[1])
