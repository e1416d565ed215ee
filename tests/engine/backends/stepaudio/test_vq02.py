"""The vq02 stream: streaming front end, SAN-M encoder, codebook and their loader."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.backends.stepaudio.tokenizer.files import CODEBOOK_FILE, PARAFORMER_SUBDIR
from engine.backends.stepaudio.tokenizer.paraformer_frontend import (
    FrontendConfig,
    StreamingFrontend,
    parse_cmvn,
)
from engine.backends.stepaudio.tokenizer.vq02 import LinguisticTokenizer
from engine.errors import CheckpointError
from tests.engine.backends.stepaudio.fixture_tokenizer import ENCODER_WIDTH, write_tokenizer_dir

_CMVN_IDENTITY = np.stack([np.zeros(560, np.float32), np.ones(560, np.float32)])


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer_dir(tmp_path_factory.mktemp("vq02"))


@pytest.fixture(scope="module")
def linguistic(tokenizer_dir: Path) -> LinguisticTokenizer:
    return LinguisticTokenizer.load(
        tokenizer_dir / PARAFORMER_SUBDIR, tokenizer_dir / CODEBOOK_FILE, "cpu", dither=0.0
    )


@pytest.fixture
def copy_dir(tokenizer_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tokenizer_dir, tmp_path / "Step-Audio-Tokenizer"))


def _speechlike(samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    tone = np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (0.4 * envelope * tone + 0.02 * rng.standard_normal(samples)).astype(np.float32)


def _frontend() -> StreamingFrontend:
    return StreamingFrontend(FrontendConfig(dither=0.0), _CMVN_IDENTITY)


def test_parse_cmvn_reads_shift_and_scale() -> None:
    text = (
        "<Nnet>\n<Splice> 3 3\n[ 0 ]\n<AddShift> 3 3\n<LearnRateCoef> 0 [ -1.5 2 3 ]\n"
        "<Rescale> 3 3\n<LearnRateCoef> 0 [ 0.5 0.25 1 ]\n</Nnet>\n"
    )
    np.testing.assert_array_equal(parse_cmvn(text), [[-1.5, 2, 3], [0.5, 0.25, 1]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n", "no <Rescale>"),
        (
            "<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n<Rescale> 1 1\n<LearnRateCoef> 0 [ 1 ]\n",
            "2 values but <Rescale> has 1",
        ),
        ("<AddShift> 1 1\n[ 1 ]\n", "<LearnRateCoef>"),
    ],
)
def test_parse_cmvn_rejects_malformed_files(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cmvn(text)


def test_first_3840_sample_piece_gives_4_lfr_frames() -> None:
    frames = _frontend().accept(torch.from_numpy(_speechlike(3840)), is_final=False)
    assert frames.shape == (4, 560)


def test_every_full_piece_gives_4_lfr_frames() -> None:
    frontend = _frontend()
    audio = torch.from_numpy(_speechlike(5 * 3840))
    counts = [
        frontend.accept(audio[i * 3840 : (i + 1) * 3840], is_final=False).shape[0] for i in range(5)
    ]
    assert counts == [4, 4, 4, 4, 4]


@pytest.mark.parametrize(("tail", "extra"), [(0, 0), (79, 0), (879, 0), (880, 1), (3839, 4)])
def test_final_piece_adds_frames_only_from_880_samples(tail: int, extra: int) -> None:
    frontend = _frontend()
    audio = torch.from_numpy(_speechlike(3840 + tail))
    first = frontend.accept(audio[:3840], is_final=False).shape[0]
    last = frontend.accept(audio[3840:], is_final=True).shape[0] if tail else 0
    assert (first, last) == (4, extra)


def test_lfr_frame_stacks_7_fbank_frames_and_applies_cmvn() -> None:
    audio = torch.from_numpy(_speechlike(3840))
    plain = _frontend().accept(audio, is_final=False)
    shift = np.linspace(-1, 1, 560).astype(np.float32)
    scale = np.linspace(0.5, 2, 560).astype(np.float32)
    normed = StreamingFrontend(FrontendConfig(dither=0.0), np.stack([shift, scale])).accept(
        audio, is_final=False
    )
    torch.testing.assert_close(normed, (plain + torch.from_numpy(shift)) * torch.from_numpy(scale))
    # The first LFR frame is 3 copies of fbank frame 0 (left context) then frames 0..3.
    first = plain[0].reshape(7, 80)
    torch.testing.assert_close(first[0], first[3])
    torch.testing.assert_close(first[1], first[3])


def test_frontend_dither_defaults_to_funasr_one() -> None:
    assert FrontendConfig.from_mapping({"n_mels": 80, "lfr_m": 7, "lfr_n": 6}).dither == 1.0
    assert FrontendConfig.from_mapping({"dither": 0.0}).dither == 0.0


def test_loaded_dither_is_official_unless_overridden(tokenizer_dir: Path) -> None:
    paraformer = tokenizer_dir / PARAFORMER_SUBDIR
    official = LinguisticTokenizer.load(paraformer, tokenizer_dir / CODEBOOK_FILE)
    assert (
        official.frontend_config.dither == 1.0
    )  # the fixture config, like the real one, sets none
    audio = _speechlike(8000)
    assert not torch.equal(official.encode(audio), official.encode(audio))


def test_encoder_outputs_one_frame_per_lfr_frame(linguistic: LinguisticTokenizer) -> None:
    features = linguistic.encode(_speechlike(4 * 3840 + 2000))
    assert features.shape == (4 * 4 + 2, ENCODER_WIDTH)
    codes = linguistic.quantize(features)
    assert len(codes) == 18
    assert all(0 <= c < 1024 for c in codes)
    assert len(set(codes)) > 1


def test_codes_are_deterministic_without_dither(linguistic: LinguisticTokenizer) -> None:
    audio = _speechlike(20000, seed=3)
    assert linguistic.tokenize(audio) == linguistic.tokenize(audio)


def test_quantize_takes_the_nearest_centroid(linguistic: LinguisticTokenizer) -> None:
    centroids = linguistic.codebook[[7, 500, 1023]]
    assert linguistic.quantize(centroids + 1e-4) == [7, 500, 1023]


def test_too_short_audio_gives_no_codes(linguistic: LinguisticTokenizer) -> None:
    assert linguistic.tokenize(_speechlike(300)) == []


def _resave(path: Path, transform: Callable[[dict], dict]) -> None:
    torch.save(transform(torch.load(path)), path)


def _load(directory: Path) -> LinguisticTokenizer:
    return LinguisticTokenizer.load(
        directory / PARAFORMER_SUBDIR, directory / CODEBOOK_FILE, dither=0.0
    )


def test_state_dict_wrapper_and_module_prefix_are_accepted(
    copy_dir: Path, linguistic: LinguisticTokenizer
) -> None:
    model = copy_dir / PARAFORMER_SUBDIR / "model.pt"
    _resave(model, lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}})
    audio = _speechlike(9000)
    assert _load(copy_dir).tokenize(audio) == linguistic.tokenize(audio)


def test_legacy_torch_save_format_is_accepted(
    copy_dir: Path, linguistic: LinguisticTokenizer
) -> None:
    model = copy_dir / PARAFORMER_SUBDIR / "model.pt"
    torch.save(torch.load(model), model, _use_new_zipfile_serialization=False)
    audio = _speechlike(9000)
    assert _load(copy_dir).tokenize(audio) == linguistic.tokenize(audio)


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("model.pt", "model.pt: file is missing"),
        ("config.yaml", "config.yaml: file is missing"),
        ("am.mvn", "am.mvn: file is missing"),
        ("configuration.json", "configuration.json: file is missing"),
    ],
)
def test_missing_paraformer_file_is_named(copy_dir: Path, file: str, message: str) -> None:
    (copy_dir / PARAFORMER_SUBDIR / file).unlink()
    with pytest.raises(CheckpointError, match=message) as caught:
        _load(copy_dir)
    assert str(copy_dir) in str(caught.value)
    assert "download the Step-Audio-Tokenizer directory again" in str(caught.value)


def test_missing_encoder_tensor_is_named(copy_dir: Path) -> None:
    model = copy_dir / PARAFORMER_SUBDIR / "model.pt"
    _resave(model, lambda sd: {k: v for k, v in sd.items() if "encoders.48." not in k})
    with pytest.raises(CheckpointError, match=r"lacks 13 encoder tensors \(encoder\.encoders\.48"):
        _load(copy_dir)


def test_encoder_shape_mismatch_is_named(copy_dir: Path) -> None:
    model = copy_dir / PARAFORMER_SUBDIR / "model.pt"
    key = "encoder.encoders.3.feed_forward.w_1.weight"
    _resave(model, lambda sd: {**sd, key: torch.zeros(7, ENCODER_WIDTH)})
    with pytest.raises(CheckpointError, match=rf"{key} has shape \(7, 16\)"):
        _load(copy_dir)


def test_corrupt_model_is_reported(copy_dir: Path) -> None:
    (copy_dir / PARAFORMER_SUBDIR / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"model\.pt: not a readable torch checkpoint"):
        _load(copy_dir)


def test_wrong_encoder_class_is_reported(copy_dir: Path) -> None:
    config = copy_dir / PARAFORMER_SUBDIR / "config.yaml"
    config.write_text(config.read_text().replace("SANMEncoderChunkOpt", "SANMEncoder"))
    with pytest.raises(CheckpointError, match=r"config\.yaml: encoder is 'SANMEncoder'"):
        _load(copy_dir)


def test_malformed_cmvn_is_reported(copy_dir: Path) -> None:
    (copy_dir / PARAFORMER_SUBDIR / "am.mvn").write_text("<Nnet>\n</Nnet>\n")
    with pytest.raises(CheckpointError, match=r"am\.mvn: not a Kaldi-nnet CMVN file"):
        _load(copy_dir)


def test_codebook_width_must_match_encoder(copy_dir: Path) -> None:
    np.save(copy_dir / CODEBOOK_FILE, np.zeros((1024, 8), np.float32))
    with pytest.raises(CheckpointError, match=r"linguistic_tokenizer.npy: codebook has shape"):
        _load(copy_dir)
