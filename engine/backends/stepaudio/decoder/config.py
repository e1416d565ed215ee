"""The decoder's numbers, read from ``cosyvoice.yaml`` (parsed as plain data).

Values the YAML leaves out take the official constructors' defaults (spec §5); head counts
are later checked against the tensors (``pos_bias_u`` and ``q_norm`` fix them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DecoderConfig", "DiTConfig", "EncoderConfig", "FlowConfig", "HiftConfig"]

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
