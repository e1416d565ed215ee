"""The Step1 LLM: ALiBi slopes and sqrt penalty, grouped heads, KV cache, config, weights."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from engine.backends.stepaudio.llm.alibi import alibi_bias, alibi_slopes
from engine.backends.stepaudio.llm.config import Step1Config
from engine.backends.stepaudio.llm.model import KVCache, Step1ForCausalLM, Step1Layer
from engine.backends.stepaudio.llm.weights import load_step1
from engine.errors import CheckpointError
from tests.engine.backends.stepaudio.fixture_editx import FIXTURE_LLM, write_editx_dir

TINY = Step1Config(
    hidden_size=48,
    intermediate_size=64,
    num_attention_heads=12,
    num_attention_groups=3,
    num_hidden_layers=2,
    vocab_size=97,
)


def tiny_model(seed: int = 0, config: Step1Config = TINY) -> Step1ForCausalLM:
    torch.manual_seed(seed)
    model = Step1ForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name else torch.randn_like(p) * 0.3)
    return model.eval()


def test_slopes_for_48_heads() -> None:
    slopes = alibi_slopes(48)
    assert len(slopes) == 48
    assert slopes[0] == 2**-0.25
    assert slopes[31] == 2**-8.0
    assert slopes[32] == 2**-0.125
    assert slopes[33] == 2**-0.375
    assert slopes[47] == 2 ** (-31 / 8)


def test_slopes_for_a_power_of_two() -> None:
    assert alibi_slopes(8) == [2.0 ** -(h + 1) for h in range(8)]


def test_bias_is_minus_slope_times_sqrt_distance_and_causal() -> None:
    slopes = torch.tensor([0.5, 0.25])
    bias = alibi_bias(slopes, query_start=3, num_queries=2, num_keys=5)
    assert bias.shape == (2, 2, 5)
    # Row 0 is position 3: keys 0..3 visible, key 4 in the future.
    assert torch.allclose(bias[1, 0, :4], -0.25 * torch.tensor([3.0, 2.0, 1.0, 0.0]).sqrt())
    assert bias[0, 0, 4] == float("-inf")
    assert torch.allclose(bias[0, 1], -0.5 * torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]).sqrt())


def reference_logits(model: Step1ForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """Step1 written out head by head, straight from spec §4.1."""
    cfg = model.config
    d, per_group = cfg.head_dim, cfg.num_attention_heads // cfg.num_attention_groups
    slopes = alibi_slopes(cfg.num_attention_heads)
    scale = cfg.attention_scale or 1 / math.sqrt(d)

    def rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w

    h = model.model.embed_tokens.weight[ids[0]]
    n = h.shape[0]
    pos = torch.arange(n, dtype=torch.float32)
    dist = pos[:, None] - pos[None, :]
    for layer in model.model.layers:
        assert isinstance(layer, Step1Layer)
        a = layer.self_attn
        x = rms(h, layer.input_layernorm.weight)
        q = (x @ a.q_proj.weight.T).view(n, cfg.num_attention_heads, d)
        k = (x @ a.k_proj.weight.T).view(n, cfg.num_attention_groups, d)
        v = (x @ a.v_proj.weight.T).view(n, cfg.num_attention_groups, d)
        heads = []
        for head in range(cfg.num_attention_heads):
            if cfg.kv_group_layout == "contiguous":
                g = head // per_group
            else:
                g = head % cfg.num_attention_groups
            score = q[:, head] @ k[:, g].T * scale - slopes[head] * dist.clamp(min=0).sqrt()
            score = score.masked_fill(dist < 0, float("-inf"))
            heads.append(torch.softmax(score, -1) @ v[:, g])
        h = h + torch.cat(heads, -1) @ a.o_proj.weight.T
        x = rms(h, layer.post_attention_layernorm.weight)
        m = layer.mlp
        gate = torch.nn.functional.silu(x @ m.gate_proj.weight.T)
        h = h + (gate * (x @ m.up_proj.weight.T)) @ m.down_proj.weight.T
    return rms(h, model.model.norm.weight) @ model.lm_head.weight.T


@pytest.mark.parametrize(
    "switches",
    [{}, {"kv_group_layout": "interleaved"}, {"attention_scale": 0.3}],
    ids=["official", "interleaved-groups", "other-scale"],
)
@torch.inference_mode()
def test_forward_matches_the_written_out_math(switches: dict) -> None:
    model = tiny_model(config=dataclasses.replace(TINY, **switches))
    ids = torch.randint(0, TINY.vocab_size, (1, 9), generator=torch.Generator().manual_seed(1))
    expected = reference_logits(model, ids)
    assert torch.allclose(model(ids, all_logits=True)[0], expected, atol=1e-4)
    cache = KVCache(TINY.num_hidden_layers)
    steps = [model(ids[:, :4], cache, all_logits=True)]
    steps += [model(ids[:, i : i + 1], cache) for i in range(4, 9)]
    assert torch.allclose(torch.cat(steps, 1)[0], expected, atol=1e-4)


@torch.inference_mode()
def test_kv_cache_steps_equal_full_recompute() -> None:
    model = tiny_model()
    ids = torch.randint(0, TINY.vocab_size, (1, 300), generator=torch.Generator().manual_seed(2))
    full = model(ids, all_logits=True)
    cache = KVCache(TINY.num_hidden_layers)
    parts = [model(ids[:, :100], cache, all_logits=True), model(ids[:, 100:290], cache, True)]
    parts += [model(ids[:, i : i + 1], cache) for i in range(290, 300)]
    assert cache.length == 300
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4)
    assert torch.allclose(model(ids, None)[0, -1], full[0, -1], atol=1e-5)


def test_config_validation() -> None:
    base = {k: getattr(TINY, k) for k in ("hidden_size", "intermediate_size",
            "num_attention_heads", "num_attention_groups", "num_hidden_layers", "vocab_size")}  # fmt: skip
    assert Step1Config.from_dict(base) == TINY
    with pytest.raises(ValueError, match="tie_word_embeddings is True"):
        Step1Config.from_dict(base | {"tie_word_embeddings": True})
    with pytest.raises(ValueError, match="not a multiple of num_attention_groups"):
        Step1Config.from_dict(base | {"num_attention_groups": 5})
    with pytest.raises(ValueError, match="vocab_size is missing"):
        Step1Config.from_dict({k: v for k, v in base.items() if k != "vocab_size"})
    with pytest.raises(ValueError, match="kv_group_layout must be"):
        dataclasses.replace(TINY, kv_group_layout="mixed")
    with pytest.raises(ValueError, match="model_type is 'llama'"):
        Step1Config.from_dict(base | {"model_type": "llama"})


def test_official_tensor_inventory() -> None:
    official = Step1Config.from_dict(FIXTURE_LLM | {"hidden_size": 3072, "intermediate_size": 8192})
    shapes = official.tensor_shapes()
    assert len(shapes) == 291
    assert sum(math.prod(s) for s in shapes.values()) == pytest.approx(3.53e9, rel=0.01)
    assert shapes["model.layers.0.self_attn.k_proj.weight"] == (256, 3072)
    assert shapes["lm_head.weight"] == (74752, 3072)


@pytest.fixture(scope="module")
def editx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_editx_dir(tmp_path_factory.mktemp("root"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loads_the_shard_in_the_wanted_dtype(editx: Path, dtype: torch.dtype) -> None:
    config = Step1Config.from_dict(FIXTURE_LLM)
    model = load_step1([editx / "model-00001.safetensors"], config, "cpu", dtype)
    assert {p.dtype for p in model.parameters()} == {dtype}
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    with torch.inference_mode():
        logits = model(torch.tensor([[1, 4, 65536, 70000]]))
    assert logits.shape == (1, 1, 74752) and logits.dtype == torch.float32


def test_missing_tensors_are_reported(editx: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(editx / "model-00001.safetensors")
    del tensors["model.layers.3.mlp.up_proj.weight"]
    save_file(tensors, tmp_path / "model.safetensors")
    config = Step1Config.from_dict(FIXTURE_LLM)
    with pytest.raises(CheckpointError, match=r"lack 1 tensor.*layers\.3\.mlp\.up_proj"):
        load_step1([tmp_path / "model.safetensors"], config, "cpu", torch.float32)
