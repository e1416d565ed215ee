"""The decoder: token reshape, flow pieces, HiFT lengths, weight loading, YAML parsing."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from engine.backends.stepaudio.decoder import Token2Wav
from engine.backends.stepaudio.decoder.config import DecoderConfig
from engine.backends.stepaudio.decoder.encoder import RelPositionAttention, relative_positions
from engine.backends.stepaudio.decoder.flow import cosine_times
from engine.backends.stepaudio.decoder.hift import HiftVocoder
from engine.backends.stepaudio.decoder.tokens import flow_frames
from engine.backends.stepaudio.decoder.weights import fold_weight_norm, read_state
from engine.backends.stepaudio.hyperyaml import load_hyperyaml
from engine.backends.stepaudio.options import DecoderOptions
from engine.errors import CheckpointError
from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir


def test_reshape_groups_into_three_frames() -> None:
    values = [1, 2, 1024 + 7, 1024 + 8, 1024 + 9, 3, 4, 1030, 1031, 5119]
    assert flow_frames(values).tolist() == [
        [1, 1032], [2, 1033], [1024, 1034],
        [3, 1031], [4, 1032], [1024, 5120],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "tail"),
    [
        ([5, 6, 1100, 1101], [[5, 1101], [6, 1102], [1024, 1025]]),  # p = 1 appends [1024]
        ([5], [[5, 1025], [0, 1025], [1024, 1025]]),  # p = 4 appends [0, 1024, 1024, 1024]
        ([5, 6], [[5, 1025], [6, 1025], [1024, 1025]]),  # p = 3 appends [1024, 1024, 1024]
    ],
)
def test_reshape_pads_a_short_last_group(values: list[int], tail: list[list[int]]) -> None:
    assert flow_frames(values).tolist() == tail


def test_frame_counts() -> None:
    # 3 * ceil(n / 5) frames of 40 ms for n mixed values.
    assert [len(flow_frames(range(n))) for n in (0, 1, 5, 6, 10, 11)] == [0, 3, 3, 6, 6, 9]
    assert flow_frames([]).shape == (0, 2)


def test_cosine_time_grid() -> None:
    t = cosine_times(10)
    expected = [1 - math.cos(k / 10 * math.pi / 2) for k in range(11)]
    assert t.dtype == torch.float32 and t.tolist() == pytest.approx(expected, abs=1e-7)
    assert t[0] == 0 and t[-1] == pytest.approx(1.0) and bool((t.diff() > 0).all())


def test_relative_attention_matches_the_distance_formula() -> None:
    torch.manual_seed(0)
    attn = RelPositionAttention(width=16, heads=4, key_bias=True)
    with torch.no_grad():
        attn.pos_bias_u.normal_()
        attn.pos_bias_v.normal_()
    x = torch.randn(1, 7, 16)
    table = relative_positions(7, 16, x.device)  # rows: distances 6 .. -6
    with torch.no_grad():
        got = attn(x, table)
        q = attn.linear_q(x).view(7, 4, 4)
        k = attn.linear_k(x).view(7, 4, 4)
        v = attn.linear_v(x).view(7, 4, 4)
        p = attn.linear_pos(table[0]).view(13, 4, 4)
        out = torch.zeros(7, 4, 4)
        for h in range(4):
            scores = torch.empty(7, 7)
            for i in range(7):
                for j in range(7):
                    content = (q[i, h] + attn.pos_bias_u[h]) @ k[j, h]
                    position = (q[i, h] + attn.pos_bias_v[h]) @ p[6 - (i - j), h]
                    scores[i, j] = (content + position) / 2.0
            out[:, h] = torch.softmax(scores, -1) @ v[:, h]
        expected = attn.linear_out(out.reshape(1, 7, 16))
    assert torch.allclose(got, expected, atol=1e-5)


def test_relative_position_table() -> None:
    table = relative_positions(3, 4, torch.device("cpu"))[0]
    freqs = [1.0, 10000 ** (-2 / 4)]
    for row, r in enumerate([2, 1, 0, -1, -2]):
        expected = [f(r * w) for w in freqs for f in (math.sin, math.cos)]
        assert table[row].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("transpose", [False, True])
def test_weight_norm_folding(transpose: bool) -> None:
    torch.manual_seed(0)
    conv = (nn.ConvTranspose1d if transpose else nn.Conv1d)(6, 4, 5)
    normed = weight_norm(conv)
    with torch.no_grad():
        normed.parametrizations.weight.original0.mul_(1.7)
    state = normed.state_dict()
    assert set(state) == {"bias", "parametrizations.weight.original0",
                          "parametrizations.weight.original1"}  # fmt: skip
    folded = fold_weight_norm({f"m.{k}": v for k, v in state.items()})
    assert set(folded) == {"m.weight", "m.bias"}
    assert torch.allclose(folded["m.weight"], normed.weight, atol=1e-6)
    legacy = {"m.weight_g": state["parametrizations.weight.original0"],
              "m.weight_v": state["parametrizations.weight.original1"]}  # fmt: skip
    assert torch.allclose(fold_weight_norm(legacy)["m.weight"], normed.weight, atol=1e-6)


@pytest.fixture(scope="module")
def editx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_editx_dir(tmp_path_factory.mktemp("root"))


def decoder_config(editx: Path) -> DecoderConfig:
    yaml_text = (editx / "CosyVoice-300M-25Hz" / "cosyvoice.yaml").read_text()
    return DecoderConfig.from_yaml(load_hyperyaml(yaml_text))


def test_fixture_state_dicts_have_the_official_counts(editx: Path) -> None:
    folder = editx / "CosyVoice-300M-25Hz"
    assert len(torch.load(folder / "flow.pt", weights_only=True)) == 605
    raw = torch.load(folder / "hift.pt", weights_only=True)
    assert len(raw) == 328 and "conv_pre.parametrizations.weight.original0" in raw
    assert len(read_state(folder / "hift.pt")) == 246


def test_yaml_is_read_as_data(editx: Path) -> None:
    config = decoder_config(editx)
    assert config.flow.encoder.attention_heads == 8 and config.flow.dit.depth == 16
    assert config.flow.cfg_rate == 0.7 and config.hift.sampling_rate == 24000
    assert config.hift.upsample_rates == (8, 5, 3) and config.hift.samples_per_frame == 480
    assert config.mel_conf["sampling_rate"] == 24000


def test_hyperyaml_tags() -> None:
    data = load_hyperyaml(
        "rate: 24000\nhalf: !ref <rate> // 2\nwin: !ref <model[size]>\n"
        "model: !new:pkg.mod.Model\n  size: 3\n  act: !name:torch.nn.SiLU\n"
        "pair: !tuple (1, 2)\nseed: !apply:torch.manual_seed [7]\n"
    )
    assert data["half"] == 12000 and data["win"] == 3
    assert data["model"] == {"__new__": "pkg.mod.Model", "size": 3,
                             "act": {"__name__": "torch.nn.SiLU"}}  # fmt: skip
    assert data["seed"] == {"__apply__": "torch.manual_seed", "__args__": [7]}
    with pytest.raises(ValueError, match="unresolvable"):
        load_hyperyaml("a: !ref <missing>\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_hyperyaml("a: [1,\n")


def test_decoder_config_rejects_what_it_cannot_run(editx: Path) -> None:
    text = (editx / "CosyVoice-300M-25Hz" / "cosyvoice.yaml").read_text()
    bigvgan = text.replace("hifigan.generator.HiFTGenerator", "bigvgan.bigvgan.BigVGAN")
    with pytest.raises(ValueError, match="hift class is 'BigVGAN'"):
        DecoderConfig.from_yaml(load_hyperyaml(bigvgan))
    with pytest.raises(ValueError, match="hift is missing"):
        DecoderConfig.from_yaml({"mel_conf": {}, "flow": {}})


@pytest.fixture(scope="module")
def token2wav(editx: Path) -> Token2Wav:
    folder = editx / "CosyVoice-300M-25Hz"
    return Token2Wav.load(folder, decoder_config(editx), "cpu", DecoderOptions(steps=2))


def test_hift_gives_480_samples_per_mel_frame(editx: Path) -> None:
    vocoder = HiftVocoder(decoder_config(editx).hift).eval()
    for frames in (1, 6, 13):
        audio = vocoder(torch.randn(1, 80, frames), torch.Generator().manual_seed(0))
        assert audio.shape == (1, 480 * frames)


@pytest.mark.parametrize(("values", "samples"), [(5, 2880), (7, 5760), (10, 5760), (25, 14400)])
def test_output_is_2880_samples_per_5_tokens(
    token2wav: Token2Wav, values: int, samples: int
) -> None:
    rng = np.random.default_rng(values)
    audio = token2wav(
        rng.integers(0, 5120, values).tolist(),
        rng.integers(0, 5120, 15).tolist(),
        rng.standard_normal((40, 80)).astype(np.float32),
        rng.standard_normal(192).astype(np.float32),
    )
    assert audio.shape == (samples,) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 0.99


def test_noise_is_fixed_and_drawn_lazily(editx: Path) -> None:
    folder = editx / "CosyVoice-300M-25Hz"
    decoder = Token2Wav.load(folder, decoder_config(editx), "cpu", DecoderOptions(steps=2))
    assert decoder.flow._noise is None
    rng = np.random.default_rng(0)
    args = (rng.integers(0, 5120, 10).tolist(), rng.integers(0, 5120, 10).tolist(),
            rng.standard_normal((30, 80)).astype(np.float32),
            rng.standard_normal(192).astype(np.float32))  # fmt: skip
    first = decoder(*args, seed=4)
    assert decoder.flow._noise is not None and decoder.flow._noise.shape == (1, 80, 30000)
    assert np.array_equal(decoder(*args, seed=4), first)
    assert not np.array_equal(decoder(*args, seed=5), first)  # only HiFT's noise differs


def test_sizes_come_from_the_tensors(
    editx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "CosyVoice-300M-25Hz"
    shutil.copytree(editx / "CosyVoice-300M-25Hz", folder)
    text = (folder / "cosyvoice.yaml").read_text()
    text = text.replace("attention_heads: 8", "attention_heads: 4").replace("depth: 16", "")
    config = DecoderConfig.from_yaml(load_hyperyaml(text))
    with caplog.at_level(logging.WARNING):
        decoder = Token2Wav.load(folder, config, "cpu", DecoderOptions(steps=1))
    assert decoder.config.flow.encoder.attention_heads == 8
    assert decoder.config.flow.dit.depth == 16  # the constructor default would be 28
    assert "says flow.encoder.attention_heads = 4, flow.pt has 8" in caplog.text


def test_flow_weights_that_do_not_fit_are_reported(editx: Path, tmp_path: Path) -> None:
    folder = tmp_path / "CosyVoice-300M-25Hz"
    shutil.copytree(editx / "CosyVoice-300M-25Hz", folder)
    state = torch.load(folder / "flow.pt", weights_only=True)
    del state["decoder.estimator.blocks.3.conv.block.6.bias"]
    state["encoder_proj.weight"] = torch.zeros(80, 7)
    torch.save(state, folder / "flow.pt")
    with pytest.raises(CheckpointError) as error:
        Token2Wav.load(folder, decoder_config(editx), "cpu", DecoderOptions())
    message = str(error.value)
    assert "flow.pt: does not match cosyvoice.yaml" in message
    assert "blocks.3.conv.conv2.bias" in message and "encoder_proj.weight (80, 7)" in message
