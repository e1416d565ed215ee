"""Writes a tiny random-weight ``Step-Audio-EditX/`` in the official layout and formats.

Same file names and formats as the published directory: ``config.json`` with the official
keys, ``model-00001.safetensors`` (bf16) plus ``model.safetensors.index.json`` with the
official tensor names, a SentencePiece ``tokenizer.model`` with the official id layout
(spec §4.2, Appendix B) built by editing a ``ModelProto``, ``tokenizer_config.json``, and
``CosyVoice-300M-25Hz/`` with a HyperPyYAML ``cosyvoice.yaml``, ``flow.pt`` (official keys),
``hift.pt`` (saved from weight-normed modules, so the ``parametrizations.weight.original0/1``
names appear), ``campplus.onnx``, the unused ``speech_tokenizer_v1.onnx`` copy and
``FLOW_VERSION``. Official depths, head counts and vocabularies are kept; only widths shrink.

Text-tokenizer ids (hand-computable): 0 ``<unk>``, 1 ``<s>``, 2 ``</s>``, 3 ``<|EOT|>``,
4 ``<|BOT|>``, 5-67 control placeholders, 68 + b the byte ``<0xBB>`` (``"\\n"`` -> 78),
324 ``"▁"``, 325 + i the word piece ``WORDS[i]`` (325 ``"▁human"``, 326 ``"▁system"``,
327 ``"▁assistant"``, then the words of the prompt templates, so prompts stay short), then
one piece per printable ASCII character (``CHAR_IDS``), unused user-defined pieces up to
65535, and 65536 + N ``<audio_N>``. Words outscore characters, so a word piece is used
wherever it matches after a "▁".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from sentencepiece import sentencepiece_model_pb2
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from tests.engine.backends.stepaudio.fixture_tokenizer import (
    write_campplus_onnx,
    write_s3_tokenizer_onnx,
)

__all__ = [
    "CHAR_IDS",
    "FIXTURE_HIFT",
    "FIXTURE_LLM",
    "PIECE_IDS",
    "SHARD_NAME",
    "WORDS",
    "reference_encode",
    "write_editx_dir",
    "write_text_tokenizer",
]

# protoc's generated module has no type stubs.
sp_pb2: Any = sentencepiece_model_pb2

SHARD_NAME = "model-00001.safetensors"
VOCAB = 74752

# config.json: the published keys; official depth, heads, groups and vocabulary, width 96.
FIXTURE_LLM: dict = {
    "architectures": ["Step1ForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_step1.Step1Config",
        "AutoModelForCausalLM": "modeling_step1.Step1ForCausalLM",
    },
    "model_type": "step1",
    "bos_token_id": 1,
    "eos_token_id": 3,
    "pad_token_id": 0,
    "hidden_size": 96,
    "intermediate_size": 128,
    "num_attention_heads": 48,
    "num_attention_groups": 4,
    "num_hidden_layers": 32,
    "max_seq_len": 32768,
    "vocab_size": VOCAB,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "transformers_version": "4.53.3",
}

# Widths of the decoder fixture (official: 512 flow, 512 DiT, 512 HiFT base, 192 speaker).
_FLOW_WIDTH = 32
_FLOW_FF = 64
_DIT_WIDTH = 32
_DIT_HEAD_DIM = 4
_HEADS = 8  # official, encoder and DiT
FIXTURE_HIFT: dict = {
    "base_channels": 16,
    "f0_cond_channels": 16,
    "upsample_rates": [8, 5, 3],
    "upsample_kernel_sizes": [16, 11, 7],
    "resblock_kernel_sizes": [3, 7, 11],
    "source_resblock_kernel_sizes": [7, 7, 11],
    "dilations": [1, 3, 5],
    "n_fft": 16,
    "hop": 4,
}

_COSYVOICE_YAML = f"""\
# Tiny CosyVoice-300M-25Hz decoder fixture: published structure, small widths.
sample_rate: 24000
spk_embed_dim: 192

mel_conf:
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: 8000

flow: !new:stepvocoder.cosyvoice2.flow.flow.CausalMaskedDiffWithXvec
    input_size: {_FLOW_WIDTH}
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: mel
    vocab_size: 5121
    input_embedding: !new:stepvocoder.cosyvoice2.embedding.dual_codebook.DualCodebookEmbedding
        vocab_size: 5121
        input_size: {_FLOW_WIDTH}
    encoder: !new:stepvocoder.cosyvoice2.transformer.upsample_encoder_v2.UpsampleConformerEncoderV2
        input_size: {_FLOW_WIDTH}
        output_size: {_FLOW_WIDTH}
        input_layer: linear
        pre_lookahead_len: 3
        num_blocks: 6
        num_up_blocks: 4
        up_stride: 2
        up_scale_factor: 2
        attention_heads: {_HEADS}
        pos_enc_layer_type: rel_pos_espnet
        selfattention_layer_type: rel_selfattn
        key_bias: true
        linear_units: {_FLOW_FF}
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: true
        activation_type: swish
    decoder: !new:stepvocoder.cosyvoice2.flow.flow_matching.CausalConditionalCFM
        inference_cfg_rate: 0.7
        estimator: !new:stepvocoder.cosyvoice2.flow.decoder_dit.DiT
            in_channels: 320
            out_channels: 80
            mlp_ratio: 4.0
            depth: 16
            num_heads: {_HEADS}
            head_dim: {_DIT_HEAD_DIM}
            hidden_size: {_DIT_WIDTH}

hift: !new:stepvocoder.cosyvoice2.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: {FIXTURE_HIFT["base_channels"]}
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: {FIXTURE_HIFT["upsample_rates"]}
    upsample_kernel_sizes: {FIXTURE_HIFT["upsample_kernel_sizes"]}
    istft_params:
        n_fft: {FIXTURE_HIFT["n_fft"]}
        hop_len: {FIXTURE_HIFT["hop"]}
    resblock_kernel_sizes: {FIXTURE_HIFT["resblock_kernel_sizes"]}
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: {FIXTURE_HIFT["source_resblock_kernel_sizes"]}
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:stepvocoder.cosyvoice2.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: {FIXTURE_HIFT["f0_cond_channels"]}
"""

_TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": None,
    "clean_up_tokenization_spaces": False,
    "legacy": True,
    "model_max_length": 1000000000000000019884624838656,
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
}

# Word pieces: the role words, then the words of the official prompt templates.
# fmt: off
_WORD_LIST = (
    "human", "system", "assistant", "Add", "Adjustments", "As", "Audio", "Editing",
    "Emotional", "Enhancement", "Ensure", "Generate", "Make", "Non", "Note", "Remove",
    "Speaking", "Style", "The", "Transfer", "Tuning", "You", "Your", "a", "accurately",
    "adjustments", "all", "and", "any", "applying", "are", "audio", "but", "capabilities",
    "clearly", "content", "corresponding", "distortion", "editing", "edits", "eliminate",
    "emotion", "enhancement", "enhancements", "excel", "execute", "expected", "expertise",
    "following", "from", "given", "highly", "in", "including", "instructions", "intact",
    "interpret", "interpreting", "is", "language", "limited", "make", "meet", "minimal",
    "more", "most", "name", "natural", "needs", "new", "noise", "non", "not", "of",
    "portions", "precise", "preserving", "prompt", "prosody", "quality", "range", "receive",
    "reference", "remains", "silence", "silent", "skilled", "some", "sounds", "spans",
    "speaker", "speaking", "specialist", "speech", "style", "styles", "suitable", "text",
    "that", "the", "their", "timbre", "to", "tokens", "tuning", "user", "voice", "while",
    "wide", "will", "with", "you",
)
# fmt: on
WORDS = tuple("▁" + word for word in _WORD_LIST)
# Ids of the named pieces (see the module docstring).
PIECE_IDS = {"▁": 324} | {word: 325 + i for i, word in enumerate(WORDS)}
CHAR_IDS = {chr(c): 325 + len(WORDS) + c - 0x21 for c in range(0x21, 0x7F)}


def reference_encode(text: str) -> list[int]:
    """What the fixture tokenizer must return, computed by hand rules, not SentencePiece.

    Dummy prefix, spaces as "▁", the longest word piece after each "▁", printable ASCII as
    single pieces, ``<audio_N>`` as 65536 + N, anything else as UTF-8 byte pieces.
    """
    escaped = "▁" + text.replace(" ", "▁")
    ids: list[int] = []
    i = 0
    while i < len(escaped):
        words = [w for w in WORDS if escaped.startswith(w, i)]
        if escaped.startswith("<audio_", i) and ">" in escaped[i:]:
            end = escaped.index(">", i)
            ids.append(65536 + int(escaped[i + 7 : end]))
            i = end + 1
        elif words:
            word = max(words, key=len)
            ids.append(PIECE_IDS[word])
            i += len(word)
        else:
            ch = escaped[i]
            if ch in PIECE_IDS:
                ids.append(PIECE_IDS[ch])
            elif ch in CHAR_IDS:
                ids.append(CHAR_IDS[ch])
            else:
                ids.extend(68 + b for b in ch.encode("utf-8"))
            i += 1
    return ids


def write_text_tokenizer(path: Path) -> Path:
    """Writes the SentencePiece ``tokenizer.model`` with the official id layout."""
    model = sp_pb2.ModelProto()
    kind = sp_pb2.ModelProto.SentencePiece

    def add(piece: str, piece_type: int, score: float = 0.0) -> None:
        entry = model.pieces.add()
        entry.piece, entry.type, entry.score = piece, piece_type, score

    add("<unk>", kind.UNKNOWN)
    add("<s>", kind.CONTROL)
    add("</s>", kind.CONTROL)
    add("<|EOT|>", kind.USER_DEFINED)
    add("<|BOT|>", kind.USER_DEFINED)
    for i in range(5, 68):
        add(f"<|control_{i}|>", kind.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", kind.BYTE)
    add("▁", kind.NORMAL, -3.0)
    for word in WORDS:
        add(word, kind.NORMAL, -1.0)
    for char in CHAR_IDS:
        add(char, kind.NORMAL, -5.0)
    while len(model.pieces) < 65536:
        add(f"<|unused_{len(model.pieces)}|>", kind.USER_DEFINED)
    for n in range(VOCAB - 65536):
        add(f"<audio_{n}>", kind.USER_DEFINED)
    trainer = model.trainer_spec
    trainer.model_type = sp_pb2.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(model.pieces)
    trainer.byte_fallback = True
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, -1
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    path.write_bytes(model.SerializeToString())
    return path


def _llm_tensors(config: dict, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    d, ff = config["hidden_size"], config["intermediate_size"]
    kv = config["num_attention_groups"] * d // config["num_attention_heads"]

    def normal(*shape: int, std: float) -> torch.Tensor:
        return (torch.randn(shape, generator=gen) * std).to(torch.bfloat16)

    head = torch.randn((VOCAB, d), generator=gen) * 0.02
    # Larger rows for the audio ids, so random weights mostly sample audio tokens.
    head[65536 : 65536 + 5120] *= 25
    tensors = {
        "model.embed_tokens.weight": normal(VOCAB, d, std=1.0),
        "model.norm.weight": torch.ones(d, dtype=torch.bfloat16),
        "lm_head.weight": head.to(torch.bfloat16),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors |= {
            p + "self_attn.q_proj.weight": normal(d, d, std=d**-0.5),
            p + "self_attn.k_proj.weight": normal(kv, d, std=d**-0.5),
            p + "self_attn.v_proj.weight": normal(kv, d, std=d**-0.5),
            p + "self_attn.o_proj.weight": normal(d, d, std=0.5 * d**-0.5),
            p + "mlp.gate_proj.weight": normal(ff, d, std=d**-0.5),
            p + "mlp.up_proj.weight": normal(ff, d, std=d**-0.5),
            p + "mlp.down_proj.weight": normal(d, ff, std=0.5 * ff**-0.5),
            p + "input_layernorm.weight": torch.ones(d, dtype=torch.bfloat16),
            p + "post_attention_layernorm.weight": torch.ones(d, dtype=torch.bfloat16),
        }
    return tensors


def _flow_shapes() -> dict[str, tuple[int, ...]]:
    """Every flow.pt key of the official model, at the fixture's widths."""
    w, ff, h = _FLOW_WIDTH, _FLOW_FF, _DIT_WIDTH
    inner = _HEADS * _DIT_HEAD_DIM
    shapes: dict[str, tuple[int, ...]] = {
        "input_embedding.embedding.weight": (5121, _FLOW_WIDTH // 2),
        "spk_embed_affine_layer.weight": (80, 192),
        "spk_embed_affine_layer.bias": (80,),
        "encoder.pre_lookahead_layer.conv1.weight": (w, w, 4),
        "encoder.pre_lookahead_layer.conv1.bias": (w,),
        "encoder.pre_lookahead_layer.conv2.weight": (w, w, 3),
        "encoder.pre_lookahead_layer.conv2.bias": (w,),
        "encoder.up_layer.conv.weight": (w, w, 5),
        "encoder.up_layer.conv.bias": (w,),
        "encoder.after_norm.weight": (w,),
        "encoder.after_norm.bias": (w,),
        "encoder_proj.weight": (80, w),
        "encoder_proj.bias": (80,),
        "decoder.estimator.t_embedder.mlp.0.weight": (h, 256),
        "decoder.estimator.t_embedder.mlp.0.bias": (h,),
        "decoder.estimator.t_embedder.mlp.2.weight": (h, h),
        "decoder.estimator.t_embedder.mlp.2.bias": (h,),
        "decoder.estimator.in_proj.weight": (h, 320),
        "decoder.estimator.in_proj.bias": (h,),
        "decoder.estimator.final_layer.adaLN_modulation.1.weight": (2 * h, h),
        "decoder.estimator.final_layer.adaLN_modulation.1.bias": (2 * h,),
        "decoder.estimator.final_layer.linear.weight": (80, h),
        "decoder.estimator.final_layer.linear.bias": (80,),
    }
    for embed in ("embed", "up_embed"):
        shapes |= {
            f"encoder.{embed}.out.0.weight": (w, w),
            f"encoder.{embed}.out.0.bias": (w,),
            f"encoder.{embed}.out.1.weight": (w,),
            f"encoder.{embed}.out.1.bias": (w,),
        }
    layers = [f"encoder.encoders.{i}." for i in range(6)]
    layers += [f"encoder.up_encoders.{i}." for i in range(4)]
    for p in layers:
        for name in ("linear_q", "linear_k", "linear_v", "linear_out"):
            shapes |= {f"{p}self_attn.{name}.weight": (w, w), f"{p}self_attn.{name}.bias": (w,)}
        shapes |= {
            p + "self_attn.linear_pos.weight": (w, w),
            p + "self_attn.pos_bias_u": (_HEADS, w // _HEADS),
            p + "self_attn.pos_bias_v": (_HEADS, w // _HEADS),
            p + "feed_forward.w_1.weight": (ff, w),
            p + "feed_forward.w_1.bias": (ff,),
            p + "feed_forward.w_2.weight": (w, ff),
            p + "feed_forward.w_2.bias": (w,),
            p + "norm_mha.weight": (w,),
            p + "norm_mha.bias": (w,),
            p + "norm_ff.weight": (w,),
            p + "norm_ff.bias": (w,),
        }
    for i in range(16):
        p = f"decoder.estimator.blocks.{i}."
        for name in ("to_q", "to_k", "to_v"):
            shapes |= {f"{p}attn.{name}.weight": (inner, h), f"{p}attn.{name}.bias": (inner,)}
        shapes |= {
            p + "attn.q_norm.weight": (_DIT_HEAD_DIM,),
            p + "attn.q_norm.bias": (_DIT_HEAD_DIM,),
            p + "attn.k_norm.weight": (_DIT_HEAD_DIM,),
            p + "attn.k_norm.bias": (_DIT_HEAD_DIM,),
            p + "attn.proj.weight": (h, inner),
            p + "attn.proj.bias": (h,),
            p + "mlp.fc1.weight": (4 * h, h),
            p + "mlp.fc1.bias": (4 * h,),
            p + "mlp.fc2.weight": (h, 4 * h),
            p + "mlp.fc2.bias": (h,),
            p + "conv.block.1.weight": (h, h, 3),
            p + "conv.block.1.bias": (h,),
            p + "conv.block.3.weight": (h,),
            p + "conv.block.3.bias": (h,),
            p + "conv.block.6.weight": (h, h, 3),
            p + "conv.block.6.bias": (h,),
            p + "adaLN_modulation.1.weight": (9 * h, h),
            p + "adaLN_modulation.1.bias": (9 * h,),
        }
    return shapes


def _flow_state(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in _flow_shapes().items():
        if len(shape) == 1 and key.endswith(".weight"):  # norms
            state[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # biases
            state[key] = 0.02 * torch.randn(shape, generator=gen)
        elif "pos_bias" in key or "embedding" in key:
            state[key] = torch.randn(shape, generator=gen) * (0.1 if "pos_bias" in key else 1.0)
        else:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=gen) * fan_in**-0.5
    return state


class _Snake(nn.Module):
    def __init__(self, channels: int, gen: torch.Generator) -> None:
        super().__init__()
        self.alpha = nn.Parameter(0.5 + torch.rand(channels, generator=gen))


class _ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, gen: torch.Generator) -> None:
        super().__init__()
        dilations = FIXTURE_HIFT["dilations"]
        self.convs1 = nn.ModuleList(
            weight_norm(
                nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2))
            for _ in dilations
        )
        self.activations1 = nn.ModuleList(_Snake(channels, gen) for _ in dilations)
        self.activations2 = nn.ModuleList(_Snake(channels, gen) for _ in dilations)


def _hift_module(seed: int) -> nn.Module:
    """A module tree with the official HiFTGenerator names, weight norm as parametrizations."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    spec = FIXTURE_HIFT
    base, n_fft, cond = spec["base_channels"], spec["n_fft"], spec["f0_cond_channels"]
    hift = nn.Module()
    hift.conv_pre = weight_norm(nn.Conv1d(80, base, 7, padding=3))
    hift.ups = nn.ModuleList(
        weight_norm(nn.ConvTranspose1d(base >> i, base >> (i + 1), k, u, padding=(k - u) // 2))
        for i, (u, k) in enumerate(
            zip(spec["upsample_rates"], spec["upsample_kernel_sizes"], strict=True)
        )
    )
    hift.source_downs = nn.ModuleList(
        [
            nn.Conv1d(n_fft + 2, base >> 1, 30, 15, padding=7),
            nn.Conv1d(n_fft + 2, base >> 2, 6, 3, padding=1),
            nn.Conv1d(n_fft + 2, base >> 3, 1, 1),
        ]
    )
    hift.source_resblocks = nn.ModuleList(
        _ResBlock(base >> (i + 1), k, gen)
        for i, k in enumerate(spec["source_resblock_kernel_sizes"])
    )
    hift.resblocks = nn.ModuleList(
        _ResBlock(base >> (i + 1), k, gen) for i in range(3) for k in spec["resblock_kernel_sizes"]
    )
    hift.conv_post = weight_norm(nn.Conv1d(base >> 3, n_fft + 2, 7, padding=3))
    hift.m_source = nn.Module()
    hift.m_source.l_linear = nn.Linear(9, 1)
    hift.f0_predictor = nn.Module()
    layers: list[nn.Module] = []
    for i in range(5):
        layers += [weight_norm(nn.Conv1d(80 if i == 0 else cond, cond, 3, padding=1)), nn.ELU()]
    hift.f0_predictor.condnet = nn.Sequential(*layers)
    hift.f0_predictor.classifier = nn.Linear(cond, 1)
    with torch.no_grad():
        # Voiced F0 around 150 Hz, so both source branches are exercised.
        hift.f0_predictor.classifier.bias.fill_(150.0)
    return hift


def write_editx_dir(root: Path, *, single_file: bool = False, seed: int = 0) -> Path:
    """Writes ``root/Step-Audio-EditX/`` and returns its path.

    Args:
        root: The model root (which also holds ``Step-Audio-Tokenizer/``).
        single_file: Write one ``model.safetensors`` instead of the published shard + index.
        seed: Seeds every random weight.
    """
    editx = root / "Step-Audio-EditX"
    decoder = editx / "CosyVoice-300M-25Hz"
    decoder.mkdir(parents=True, exist_ok=True)
    (editx / "config.json").write_text(json.dumps(FIXTURE_LLM, indent=2), encoding="utf-8")
    tensors = _llm_tensors(FIXTURE_LLM, seed)
    if single_file:
        save_file(tensors, str(editx / "model.safetensors"), metadata={"format": "pt"})
    else:
        save_file(tensors, str(editx / SHARD_NAME), metadata={"format": "pt"})
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
            "weight_map": dict.fromkeys(sorted(tensors), SHARD_NAME),
        }
        (editx / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    write_text_tokenizer(editx / "tokenizer.model")
    (editx / "tokenizer_config.json").write_text(json.dumps(_TOKENIZER_CONFIG, indent=2))
    (decoder / "cosyvoice.yaml").write_text(_COSYVOICE_YAML, encoding="utf-8")
    torch.save(_flow_state(seed + 1), decoder / "flow.pt")
    torch.save(_hift_module(seed + 2).state_dict(), decoder / "hift.pt")
    write_campplus_onnx(decoder / "campplus.onnx")
    write_s3_tokenizer_onnx(decoder / "speech_tokenizer_v1.onnx")
    (decoder / "FLOW_VERSION").write_text("fixture\n", encoding="utf-8")
    return editx
