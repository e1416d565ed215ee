"""Weight-only int8 of the Step1 LLM: the layer, the loader and the backend option."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
import torch
from torch import nn

from bridge import cli
from engine.backends import create_backend
from engine.backends.stepaudio import StepAudioBackend
from engine.backends.stepaudio.checkpoint import check_checkpoint
from engine.backends.stepaudio.llm import int8
from engine.backends.stepaudio.llm.int8 import (
    Int8Linear,
    quantize_linears,
    quantize_weight,
    weight_bytes,
)
from engine.backends.stepaudio.llm.model import KVCache, Step1ForCausalLM
from engine.backends.stepaudio.llm.weights import load_step1
from engine.edits import EditSpec
from engine.render import render_file
from tests.engine.backends.stepaudio.test_stepaudio_backend import FAST, RATE, clip

# Measured on the fixture LLM (32 layers, width 96; 40 random prompt ids): the largest
# logit change against fp32 was 0.69 for int8 (bf16 alone: 0.52) on logits up to 23, and
# the top-1 id agreed at 39 of 40 positions for both.
_MAX_LOGIT_CHANGE = 1.5
_MIN_TOP1_AGREEMENT = 0.9


def _linear(out_features: int, in_features: int, bias: bool = False) -> nn.Linear:
    torch.manual_seed(out_features * 1000 + in_features)
    layer = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        layer.weight[3] = 0.0  # an all-zero row must not divide by zero
    return layer


def test_quantization_error_is_at_most_half_a_step() -> None:
    weight = _linear(64, 48).weight.detach()
    q, scale = quantize_weight(weight)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and q.shape == weight.shape
    assert int(q.abs().max()) == 127 and scale[3] == 1.0 and not q[3].any()
    error = (q.float() * scale[:, None] - weight).abs()
    assert bool((error <= scale[:, None] / 2 * (1 + 1e-6)).all())


@pytest.mark.parametrize("rows", [1, int8.PACKED_MAX_ROWS // 2, int8.PACKED_MAX_ROWS])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("width", [2 * int8.PACKED_WIDTH_MULTIPLE, 24])
def test_int8_linear_matches_the_dequantized_product(
    rows: int, bias: bool, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = torch._weight_int8pack_mm
    calls: list[torch.dtype] = []

    def spy(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        calls.append(x.dtype)
        return kernel(x, weight, scale)

    monkeypatch.setattr(torch, "_weight_int8pack_mm", spy)
    linear = _linear(40, width, bias=bias)
    layer = Int8Linear.from_linear(linear)
    x = torch.randn(2, rows, width)
    expected = nn.functional.linear(x, layer.dequantized(), linear.bias)
    got = layer(x)
    assert got.shape == expected.shape and got.dtype == torch.float32
    packed = 2 * rows <= int8.PACKED_MAX_ROWS and width % int8.PACKED_WIDTH_MULTIPLE == 0
    assert calls == ([torch.bfloat16] if packed else [])
    if packed:  # the CPU kernel takes bf16 inputs (module docstring)
        torch.testing.assert_close(got, expected, atol=0.03, rtol=0.02)
    else:
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    bf16 = layer(x.bfloat16())
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), expected, atol=0.05, rtol=0.03)


def test_quantize_linears_skips_the_head_and_keeps_the_output() -> None:
    model = nn.Sequential()
    model.add_module("body", nn.Sequential(_linear(16, 8), nn.ReLU(), _linear(8, 16)))
    model.add_module("lm_head", _linear(4, 8))
    x = torch.randn(3, 8)
    before = model(x)
    replaced = quantize_linears(model)
    assert replaced == ["body.0", "body.2"] and isinstance(model.lm_head, nn.Linear)
    assert all(isinstance(model.get_submodule(f"body.{i}"), Int8Linear) for i in (0, 2))
    torch.testing.assert_close(model(x), before, atol=0.05, rtol=0.05)


@pytest.fixture(scope="module")
def llms(model_dir: Path) -> dict[str, Step1ForCausalLM]:
    ck = check_checkpoint(model_dir)
    return {
        "fp32": load_step1(ck.llm_shards, ck.llm_config, "cpu", torch.float32),
        "int8": load_step1(ck.llm_shards, ck.llm_config, "cpu", torch.float32, quantize="int8"),
    }


def test_loader_quantizes_the_layers_only(llms: dict[str, Step1ForCausalLM]) -> None:
    model = llms["int8"]
    assert isinstance(model.get_submodule("model.layers.0.self_attn.q_proj"), Int8Linear)
    assert isinstance(model.get_submodule("model.layers.31.mlp.down_proj"), Int8Linear)
    assert isinstance(model.lm_head, nn.Linear)
    assert model.model.embed_tokens.weight.dtype == torch.float32
    linears = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert len(linears) == 7 * model.config.num_hidden_layers
    names = [n for n, m in model.named_modules() if isinstance(m, Int8Linear)]
    float_linears = [llms["fp32"].get_submodule(n) for n in names]
    assert weight_bytes(linears) < 0.4 * weight_bytes(float_linears)


def test_int8_logits_stay_close_to_fp32(llms: dict[str, Step1ForCausalLM]) -> None:
    ids = torch.randint(0, 74752, (1, 40), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = llms["fp32"](ids, all_logits=True)
        prefill = llms["int8"](ids, all_logits=True)  # the converted-weight path
        cache = KVCache(llms["int8"].config.num_hidden_layers)
        llms["int8"](ids[:, :-1], cache)
        decode = llms["int8"](ids[:, -1:], cache)  # the packed-kernel path
    assert float((prefill - reference).abs().max()) < _MAX_LOGIT_CHANGE
    assert float((decode[0, -1] - reference[0, -1]).abs().max()) < _MAX_LOGIT_CHANGE
    agree = (prefill.argmax(-1) == reference.argmax(-1)).float().mean()
    assert float(agree) >= _MIN_TOP1_AGREEMENT


def test_an_int8_edit_renders_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    backend = StepAudioBackend(model_dir, "cpu", "fp32", options=FAST, quantize="int8")
    backend.load()
    source = tmp_path / "take.wav"
    soundfile.write(source, clip(1.2, channels=1).T, RATE, subtype="PCM_16")
    written = render_file(
        backend,
        EditSpec("emotion", "happy", text="hi there", guard=False),
        source=source,
        start=0.0,
        length=None,
        output_dir=tmp_path,
        stem="take.happy",
        max_input_seconds=600.0,
        progress=lambda f, s: None,
    )
    generation = written.info["generation"]
    assert generation["quantize"] == "int8" and generation["llm_dtype"] == "fp32"
    assert generation["audio_tokens"] > 0 and written.path.is_file()


def test_bad_quantize_values_are_refused(model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown quantize 'int4'; choose one of none, int8"):
        StepAudioBackend(model_dir, quantize="int4")
    with pytest.raises(ValueError, match="unknown quantize 'INT8'"):
        create_backend("stepaudio", model_dir=model_dir, quantize="INT8")
    ck = check_checkpoint(model_dir)
    with pytest.raises(ValueError, match="unknown quantize 'fp8'"):
        load_step1(ck.llm_shards, ck.llm_config, "cpu", torch.float32, quantize="fp8")


def test_the_cli_passes_quantize_to_the_backend(model_dir: Path) -> None:
    parser = cli._parser()
    flags = ["--backend", "stepaudio", "--model-dir", str(model_dir), "--quantize", "int8"]
    args = parser.parse_args(["eval", "clips", *flags])
    made = create_backend("stepaudio", **cli._backend_options(args))
    assert isinstance(made, StepAudioBackend) and made.quantize == "int8"
    default = parser.parse_args(["eval", "clips", "--model-dir", str(model_dir)])
    assert cli._backend_options(default)["quantize"] is None


def test_a_stored_pass_is_keyed_by_the_quantization(model_dir: Path) -> None:
    # A pass generated by the int8 LLM must not be recalled by the float one (and back).
    plain = StepAudioBackend(model_dir)._llm_settings()
    quantized = StepAudioBackend(model_dir, quantize="int8")._llm_settings()
    assert plain["quantize"] == "none" and quantized["quantize"] == "int8"
    assert {k: v for k, v in plain.items() if k != "quantize"} == {
        k: v for k, v in quantized.items() if k != "quantize"
    }
