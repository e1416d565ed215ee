"""Writes a tiny random-weight ``Step-Audio-Tokenizer/`` in the official layout and formats.

Same file names (the ``dengcunqin/...`` Paraformer sub-folder included), the same file formats
(``configuration.json``, FunASR ``config.yaml``, ``torch.save`` state dict with official key
names, Kaldi-nnet ``am.mvn``, ``.npy`` codebook, ONNX models with the official input and output
names). Official depths, head counts, mel bins and LFR settings are kept; only widths shrink
(encoder width 16, feed-forward 32), so the 50-layer encoder still runs in milliseconds.

``write_campplus_onnx`` writes the CAM++ stand-in used in ``CosyVoice-300M-25Hz/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
import yaml
from onnx import TensorProto, helper, numpy_helper

from engine.backends.stepaudio.tokenizer.files import (
    CODEBOOK_FILE,
    PARAFORMER_SUBDIR,
    SEMANTIC_ONNX_FILE,
)

__all__ = [
    "ENCODER_WIDTH",
    "FIXTURE_CONFIG",
    "paraformer_state_dict",
    "write_campplus_onnx",
    "write_s3_tokenizer_onnx",
    "write_tokenizer_dir",
]

# Tiny encoder width (official 512); also the codebook width.
ENCODER_WIDTH = 16
_FEED_FORWARD = 32
_HEADS = 4  # official
_BLOCKS = 50  # official
_KERNEL = 11  # official
_MELS = 80  # official
_LFR_M, _LFR_N = 7, 6  # official
_FEATURES = _MELS * _LFR_M
_OPSET = 17

# config.yaml of the fixture: the published structure, tiny widths, no frontend dither
# (the published file sets none either).
FIXTURE_CONFIG: dict = {
    "model": "ParaformerStreaming",
    "model_conf": {
        "ctc_weight": 0.0,
        "lsm_weight": 0.1,
        "length_normalized_loss": True,
        "predictor_weight": 1.0,
        "predictor_bias": 1,
        "sampling_ratio": 0.75,
    },
    "encoder": "SANMEncoderChunkOpt",
    "encoder_conf": {
        "output_size": ENCODER_WIDTH,
        "attention_heads": _HEADS,
        "linear_units": _FEED_FORWARD,
        "num_blocks": _BLOCKS,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "attention_dropout_rate": 0.1,
        "input_layer": "pe_online",
        "pos_enc_class": "SinusoidalPositionEncoder",
        "normalize_before": True,
        "kernel_size": _KERNEL,
        "sanm_shfit": 0,
        "selfattention_layer_type": "sanm",
        "chunk_size": [12, 15],
        "stride": [8, 10],
        "pad_left": [0, 0],
        "encoder_att_look_back_factor": [4, 4],
        "decoder_att_look_back_factor": [1, 1],
    },
    "decoder": "ParaformerSANMDecoder",
    "decoder_conf": {
        "attention_heads": _HEADS,
        "linear_units": _FEED_FORWARD,
        "num_blocks": 1,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "self_attention_dropout_rate": 0.1,
        "src_attention_dropout_rate": 0.1,
        "att_layer_num": 1,
        "kernel_size": _KERNEL,
        "sanm_shfit": 5,
    },
    "predictor": "CifPredictorV2",
    "predictor_conf": {
        "idim": ENCODER_WIDTH,
        "threshold": 1.0,
        "l_order": 1,
        "r_order": 1,
        "tail_threshold": 0.45,
    },
    "frontend": "WavFrontendOnline",
    "frontend_conf": {
        "fs": 16000,
        "window": "hamming",
        "n_mels": _MELS,
        "frame_length": 25,
        "frame_shift": 10,
        "lfr_m": _LFR_M,
        "lfr_n": _LFR_N,
    },
    "specaug": "SpecAugLFR",
    "tokenizer": "CharTokenizer",
    "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    "normalize": None,
}

_CONFIGURATION = {
    "framework": "pytorch",
    "task": "auto-speech-recognition",
    "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"},
    "model_name_in_hub": {"ms": "", "hf": ""},
    "file_path_metas": {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"token_list": "tokens.json", "seg_dict_file": "seg_dict"},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    },
}

_TOKENS = ["<blank>", "<s>", "</s>", "a", "b", "c", "hello", "world", "你", "好", "<unk>"]


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    bound = 1.0 / np.sqrt(fan_in)
    return torch.from_numpy(rng.uniform(-bound, bound, size=shape).astype(np.float32))


def _layer(rng: np.random.Generator, prefix: str, width_in: int) -> dict[str, torch.Tensor]:
    d, units = ENCODER_WIDTH, _FEED_FORWARD
    return {
        f"{prefix}.self_attn.linear_out.weight": _uniform(rng, (d, d), d),
        f"{prefix}.self_attn.linear_out.bias": _uniform(rng, (d,), d),
        f"{prefix}.self_attn.linear_q_k_v.weight": _uniform(rng, (3 * d, width_in), width_in),
        f"{prefix}.self_attn.linear_q_k_v.bias": _uniform(rng, (3 * d,), width_in),
        f"{prefix}.self_attn.fsmn_block.weight": _uniform(rng, (d, 1, _KERNEL), _KERNEL),
        f"{prefix}.feed_forward.w_1.weight": _uniform(rng, (units, d), d),
        f"{prefix}.feed_forward.w_1.bias": _uniform(rng, (units,), d),
        f"{prefix}.feed_forward.w_2.weight": _uniform(rng, (d, units), units),
        f"{prefix}.feed_forward.w_2.bias": _uniform(rng, (d,), units),
        f"{prefix}.norm1.weight": 1.0 + _uniform(rng, (width_in,), 100),
        f"{prefix}.norm1.bias": _uniform(rng, (width_in,), 100),
        f"{prefix}.norm2.weight": 1.0 + _uniform(rng, (d,), 100),
        f"{prefix}.norm2.bias": _uniform(rng, (d,), 100),
    }


def paraformer_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Encoder tensors under their official names, plus a few unused decoder/predictor ones."""
    rng = np.random.default_rng(seed)
    tensors = _layer(rng, "encoder.encoders0.0", _FEATURES)
    for index in range(_BLOCKS - 1):
        tensors.update(_layer(rng, f"encoder.encoders.{index}", ENCODER_WIDTH))
    tensors["encoder.after_norm.weight"] = torch.ones(ENCODER_WIDTH)
    tensors["encoder.after_norm.bias"] = torch.zeros(ENCODER_WIDTH)
    # The real file also holds the ASR decoder and CIF predictor, which the tokenizer ignores.
    tensors["decoder.embed.0.weight"] = _uniform(rng, (len(_TOKENS), ENCODER_WIDTH), 16)
    tensors["decoder.decoders.0.self_attn.fsmn_block.weight"] = _uniform(
        rng, (ENCODER_WIDTH, 1, _KERNEL), _KERNEL
    )
    tensors["predictor.cif_output.weight"] = _uniform(rng, (1, ENCODER_WIDTH), ENCODER_WIDTH)
    tensors["predictor.cif_output.bias"] = torch.zeros(1)
    return tensors


def _am_mvn(shift: np.ndarray, scale: np.ndarray) -> str:
    def row(values: np.ndarray) -> str:
        return "<LearnRateCoef> 0 [ " + " ".join(f"{v:.6f}" for v in values) + " ]"

    n = shift.size
    return "\n".join(
        [
            "<Nnet>",
            f"<Splice> {n} {n}",
            "[ 0 ]",
            f"<AddShift> {n} {n}",
            row(shift),
            f"<Rescale> {n} {n}",
            row(scale),
            "</Nnet>",
            "",
        ]
    )


def write_s3_tokenizer_onnx(path: Path, seed: int = 1) -> Path:
    """S3 tokenizer stand-in: ``feats`` (1, 128, T) f32, ``feats_length`` (1,) i32 → ``indices``.

    Conv(128→8, kernel 4, stride 4, pads [0, 3]) then ArgMax over channels, so the output has
    ``ceil(T / 4)`` codes in 0 … 7 (25 per second, like the real model).
    """
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, 0.1, size=(8, 128, 4)).astype(np.float32)
    bias = rng.normal(0.0, 0.1, size=(8,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node(
                "Conv",
                ["feats", "conv_w", "conv_b"],
                ["scores"],
                strides=[4],
                pads=[0, 3],
                kernel_shape=[4],
            ),
            helper.make_node("ArgMax", ["scores"], ["indices"], axis=1, keepdims=0),
        ],
        "speech_tokenizer_v1",
        [
            helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, 128, "T"]),
            helper.make_tensor_value_info("feats_length", TensorProto.INT32, [1]),
        ],
        [helper.make_tensor_value_info("indices", TensorProto.INT64, [1, "T_tok"])],
        initializer=[
            numpy_helper.from_array(weight, "conv_w"),
            numpy_helper.from_array(bias, "conv_b"),
        ],
    )
    _save(graph, path)
    return path


def write_campplus_onnx(path: Path, seed: int = 2) -> Path:
    """CAM++ stand-in: ``input`` (B, T, 80) f32 → ``output`` (B, 192).

    sqrt(mean over time of x²) → MatMul(80 x 192). Because the official front end removes the
    time mean of the fbank first, the per-bin spread is what distinguishes voices here (a
    plain time average would give every voice the same embedding).
    """
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, 0.2, size=(80, 192)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["input", "input"], ["squared"]),
            helper.make_node("ReduceMean", ["squared"], ["spread"], axes=[1], keepdims=0),
            helper.make_node("Sqrt", ["spread"], ["deviation"]),
            helper.make_node("MatMul", ["deviation", "proj"], ["output"]),
        ],
        "campplus",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", "T", 80])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", 192])],
        initializer=[numpy_helper.from_array(weight, "proj")],
    )
    _save(graph, path)
    return path


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def write_tokenizer_dir(root: Path) -> Path:
    """Writes ``root/Step-Audio-Tokenizer/`` and returns its path.

    Args:
        root: An existing directory (the model root that also holds ``Step-Audio-EditX/``).

    Returns:
        The tokenizer directory.
    """
    directory = root / "Step-Audio-Tokenizer"
    paraformer = directory / PARAFORMER_SUBDIR
    paraformer.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)

    (paraformer / "configuration.json").write_text(
        json.dumps(_CONFIGURATION, indent=2), encoding="utf-8"
    )
    (paraformer / "config.yaml").write_text(
        yaml.safe_dump(FIXTURE_CONFIG, sort_keys=False), encoding="utf-8"
    )
    torch.save(paraformer_state_dict(), paraformer / "model.pt")
    shift = -(12.0 + rng.normal(0.0, 1.0, _FEATURES)).astype(np.float32)
    scale = (0.3 + rng.uniform(0.0, 0.1, _FEATURES)).astype(np.float32)
    (paraformer / "am.mvn").write_text(_am_mvn(shift, scale), encoding="utf-8")
    (paraformer / "tokens.json").write_text(
        json.dumps(_TOKENS, ensure_ascii=False), encoding="utf-8"
    )
    (paraformer / "tokens.txt").write_text("\n".join(_TOKENS) + "\n", encoding="utf-8")
    (paraformer / "seg_dict").write_text("hello h e l l o\nworld w o r l d\n", encoding="utf-8")

    codebook = rng.normal(0.0, 1.0, size=(1024, ENCODER_WIDTH)).astype(np.float32)
    np.save(directory / CODEBOOK_FILE, codebook)
    write_s3_tokenizer_onnx(directory / SEMANTIC_ONNX_FILE)
    return directory
