"""The decoder's numbers, read from ``cosyvoice.yaml`` (parsed as plain data).

Values the YAML leaves out take the official constructors' defaults (spec §5); every size
that the flow's tensors fix (widths, depths, head counts) is then taken from the tensors
(``fit_flow_to_shapes``), with a warning where the YAML disagrees.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DecoderConfig",
    "DiTConfig",
    "EncoderConfig",
    "FlowConfig",
    "HiftConfig",
    "fit_flow_to_shapes",
]

_LOG = logging.getLogger(__name__)
_Section = TypeVar("_Section", "EncoderConfig", "DiTConfig", "FlowConfig")

_ACTIVATIONS = ("swish", "relu", "gelu", "tanh")


def _section(data: Mapping[str, Any], key: str, problems: list[str], where: str) -> dict:
    value = data.get(key)
    if not isinstance(value, Mapping):
        problems.append(f"{where}{key} is missing or not a mapping")
        return {}
    return dict(value)


def _expect(value: Any, allowed: tuple, what: str, problems: list[str]) -> None:
    if value not in allowed:
        problems.append(
            f"{what} is {value!r}; this decoder supports {', '.join(map(str, allowed))}"
        )


@dataclass(frozen=True)
class EncoderConfig:
    """``UpsampleConformerEncoderV2`` settings."""

    input_size: int
    output_size: int
    attention_heads: int
    linear_units: int
    num_blocks: int
    num_up_blocks: int
    pre_lookahead_len: int
    up_stride: int
    up_scale_factor: float
    key_bias: bool
    activation: str


@dataclass(frozen=True)
class DiTConfig:
    """The CFM estimator's settings."""

    in_channels: int
    out_channels: int
    hidden_size: int
    depth: int
    num_heads: int
    head_dim: int
    mlp_ratio: float


@dataclass(frozen=True)
class FlowConfig:
    """``CausalMaskedDiffWithXvec`` settings."""

    input_size: int
    output_size: int
    spk_embed_dim: int
    vocab_size: int
    encoder: EncoderConfig
    dit: DiTConfig
    cfg_rate: float


@dataclass(frozen=True)
class HiftConfig:
    """``HiFTGenerator`` settings."""

    in_channels: int
    base_channels: int
    nb_harmonics: int
    sampling_rate: int
    nsf_alpha: float
    nsf_sigma: float
    nsf_voiced_threshold: float
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    istft_n_fft: int
    istft_hop: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    source_resblock_kernel_sizes: tuple[int, ...]
    source_resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    lrelu_slope: float
    audio_limit: float
    f0_cond_channels: int

    @property
    def samples_per_frame(self) -> int:
        """Output samples per mel frame: the upsampling product times the iSTFT hop."""
        product = 1
        for rate in self.upsample_rates:
            product *= rate
        return product * self.istft_hop


def _encoder(node: Mapping[str, Any], problems: list[str]) -> EncoderConfig:
    where = "flow.encoder."
    _expect(node.get("input_layer", "linear"), ("linear",), where + "input_layer", problems)
    _expect(
        node.get("pos_enc_layer_type", "rel_pos_espnet"),
        ("rel_pos_espnet",),
        where + "pos_enc_layer_type",
        problems,
    )
    _expect(
        node.get("selfattention_layer_type", "rel_selfattn"),
        ("rel_selfattn",),
        where + "selfattention_layer_type",
        problems,
    )
    _expect(node.get("normalize_before", True), (True,), where + "normalize_before", problems)
    activation = node.get("activation_type", "swish")
    _expect(activation, _ACTIVATIONS, where + "activation_type", problems)
    return EncoderConfig(
        input_size=int(node.get("input_size", 512)),
        output_size=int(node.get("output_size", 256)),
        attention_heads=int(node.get("attention_heads", 4)),
        linear_units=int(node.get("linear_units", 2048)),
        num_blocks=int(node.get("num_blocks", 6)),
        num_up_blocks=int(node.get("num_up_blocks", 4)),
        pre_lookahead_len=int(node.get("pre_lookahead_len", 3)),
        up_stride=int(node.get("up_stride", 2)),
        up_scale_factor=float(node.get("up_scale_factor", node.get("up_stride", 2))),
        key_bias=bool(node.get("key_bias", True)),
        activation=str(activation),
    )


def _dit(node: Mapping[str, Any]) -> DiTConfig:
    return DiTConfig(
        in_channels=int(node.get("in_channels", 320)),
        out_channels=int(node.get("out_channels", 80)),
        hidden_size=int(node.get("hidden_size", 256)),
        depth=int(node.get("depth", 28)),
        num_heads=int(node.get("num_heads", 8)),
        head_dim=int(node.get("head_dim", 64)),
        mlp_ratio=float(node.get("mlp_ratio", 4.0)),
    )


def _flow(node: Mapping[str, Any], problems: list[str]) -> FlowConfig:
    _expect(node.get("output_type", "mel"), ("mel",), "flow.output_type", problems)
    decoder = _section(node, "decoder", problems, "flow.")
    encoder = _encoder(_section(node, "encoder", problems, "flow."), problems)
    dit = _dit(_section(decoder, "estimator", problems, "flow.decoder.")) if decoder else None
    config = FlowConfig(
        input_size=int(node.get("input_size", 512)),
        output_size=int(node.get("output_size", 80)),
        spk_embed_dim=int(node.get("spk_embed_dim", 192)),
        vocab_size=int(node.get("vocab_size", 5121)),
        encoder=encoder,
        dit=dit or _dit({}),
        cfg_rate=float(decoder.get("inference_cfg_rate", 0.7)),
    )
    if config.input_size % 2:
        problems.append(f"flow.input_size {config.input_size} must be even (two codebooks)")
    if encoder.input_size != encoder.output_size:
        problems.append(
            f"flow.encoder.input_size {encoder.input_size} differs from output_size "
            f"{encoder.output_size}; the upsampled stream re-enters the input embedding"
        )
    if config.dit.in_channels != 4 * config.output_size:
        problems.append(
            f"flow.decoder.estimator.in_channels {config.dit.in_channels} is not 4 x "
            f"output_size {config.output_size}"
        )
    return config


def _int_tuple(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _hift(node: Mapping[str, Any], problems: list[str]) -> HiftConfig:
    kind = str(node.get("__new__", "HiFTGenerator")).rsplit(".", 1)[-1]
    _expect(kind, ("HiFTGenerator",), "hift class", problems)
    istft = node.get("istft_params", {"n_fft": 16, "hop_len": 4})
    f0 = node.get("f0_predictor") or {}
    return HiftConfig(
        in_channels=int(node.get("in_channels", 80)),
        base_channels=int(node.get("base_channels", 512)),
        nb_harmonics=int(node.get("nb_harmonics", 8)),
        sampling_rate=int(node.get("sampling_rate", 22050)),
        nsf_alpha=float(node.get("nsf_alpha", 0.1)),
        nsf_sigma=float(node.get("nsf_sigma", 0.003)),
        nsf_voiced_threshold=float(node.get("nsf_voiced_threshold", 10)),
        upsample_rates=_int_tuple(node.get("upsample_rates", (8, 8))),
        upsample_kernel_sizes=_int_tuple(node.get("upsample_kernel_sizes", (16, 16))),
        istft_n_fft=int(istft["n_fft"]),
        istft_hop=int(istft["hop_len"]),
        resblock_kernel_sizes=_int_tuple(node.get("resblock_kernel_sizes", (3, 7, 11))),
        resblock_dilation_sizes=tuple(
            _int_tuple(d) for d in node.get("resblock_dilation_sizes", [[1, 3, 5]] * 3)
        ),
        source_resblock_kernel_sizes=_int_tuple(node.get("source_resblock_kernel_sizes", (7, 11))),
        source_resblock_dilation_sizes=tuple(
            _int_tuple(d) for d in node.get("source_resblock_dilation_sizes", [[1, 3, 5]] * 2)
        ),
        lrelu_slope=float(node.get("lrelu_slope", 0.1)),
        audio_limit=float(node.get("audio_limit", 0.99)),
        f0_cond_channels=int(f0.get("cond_channels", 512)),
    )


@dataclass(frozen=True)
class DecoderConfig:
    """Everything ``cosyvoice.yaml`` says that the decoder uses."""

    flow: FlowConfig
    hift: HiftConfig
    mel_conf: dict[str, Any]

    @classmethod
    def from_yaml(cls, data: Mapping[str, Any]) -> DecoderConfig:
        """Builds the configuration from the parsed YAML.

        Raises:
            ValueError: listing every missing section or unsupported setting.
        """
        problems: list[str] = []
        mel_node = _section(data, "mel_conf", problems, "")
        flow_node = _section(data, "flow", problems, "")
        hift_node = _section(data, "hift", problems, "")
        flow = _flow(flow_node, problems) if flow_node else None
        hift = _hift(hift_node, problems) if hift_node else None
        num_mels, hop = mel_node.get("num_mels", 80), mel_node.get("hop_size", 480)
        if flow and num_mels != flow.output_size:
            problems.append(f"mel_conf.num_mels {num_mels} != flow.output_size {flow.output_size}")
        if hift and hift.samples_per_frame != hop:
            problems.append(
                f"hift upsampling x iSTFT hop = {hift.samples_per_frame}, but the mel hop is {hop}"
            )
        if problems or flow is None or hift is None:
            raise ValueError("; ".join(problems))
        return cls(flow=flow, hift=hift, mel_conf=mel_node)


def _count(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> int | None:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in shapes if (m := pattern.match(key))}
    return len(indices) or None


def _merge(section: _Section, found: Mapping[str, Any], where: str) -> _Section:
    changes = {
        name: value
        for name, value in found.items()
        if value is not None and value != getattr(section, name)
    }
    for name, value in changes.items():
        _LOG.warning(
            "cosyvoice.yaml says %s.%s = %r, flow.pt has %r; using the tensors",
            where,
            name,
            getattr(section, name),
            value,
        )
    return dataclasses.replace(section, **changes)


def fit_flow_to_shapes(config: FlowConfig, shapes: Mapping[str, tuple[int, ...]]) -> FlowConfig:
    """Takes every size the flow tensors fix from the tensors.

    Args:
        config: The configuration from the YAML.
        shapes: Tensor shapes by this package's key names (see ``decoder.weights``).

    Returns:
        The configuration with widths, depths and head counts of the tensors.
    """

    def dim(key: str, axis: int, then: Callable[[int], Any] = int) -> Any:
        shape = shapes.get(key)
        return None if shape is None or len(shape) <= axis else then(shape[axis])

    head_dim = dim("decoder.estimator.blocks.0.attn.q_norm.weight", 0)
    hidden = dim("decoder.estimator.in_proj.weight", 0)
    inner = dim("decoder.estimator.blocks.0.attn.to_q.weight", 0)
    mlp = dim("decoder.estimator.blocks.0.mlp.fc1.weight", 0)
    encoder = _merge(
        config.encoder,
        {
            "input_size": dim("encoder.embed.linear.weight", 1),
            "output_size": dim("encoder.after_norm.weight", 0),
            "attention_heads": dim("encoder.encoders.0.self_attn.pos_bias_u", 0),
            "linear_units": dim("encoder.encoders.0.feed_forward.w_1.weight", 0),
            "num_blocks": _count(shapes, "encoder.encoders."),
            "num_up_blocks": _count(shapes, "encoder.up_encoders."),
            "pre_lookahead_len": dim(
                "encoder.pre_lookahead_layer.conv1.weight", 2, lambda k: k - 1
            ),
        },
        "flow.encoder",
    )
    dit = _merge(
        config.dit,
        {
            "in_channels": dim("decoder.estimator.in_proj.weight", 1),
            "out_channels": dim("decoder.estimator.final_layer.linear.weight", 0),
            "hidden_size": hidden,
            "depth": _count(shapes, "decoder.estimator.blocks."),
            "head_dim": head_dim,
            "num_heads": inner // head_dim if inner and head_dim else None,
            "mlp_ratio": mlp / hidden if mlp and hidden else None,
        },
        "flow.decoder.estimator",
    )
    flow = _merge(
        config,
        {
            "input_size": dim("input_embedding.embedding.weight", 1, lambda w: 2 * w),
            "vocab_size": dim("input_embedding.embedding.weight", 0),
            "spk_embed_dim": dim("spk_embed_affine_layer.weight", 1),
            "output_size": dim("encoder_proj.weight", 0),
        },
        "flow",
    )
    return dataclasses.replace(flow, encoder=encoder, dit=dit)
