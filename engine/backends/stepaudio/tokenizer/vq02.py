"""The linguistic (vq02) stream: Paraformer streaming encoder + k-means codebook (spec §3.1-3.3).

Loads the official Paraformer directory (``configuration.json``, ``config.yaml``, ``am.mvn``
and the ``encoder.*`` tensors of ``model.pt``) and the ``linguistic_tokenizer.npy`` codebook,
then tokenizes 16 kHz audio in 3840-sample pieces exactly as the official tokenizer streams it.

Dither: FunASR's front end adds Gaussian dither (std 1.0 on the 16-bit scale) unless
``config.yaml`` sets ``frontend_conf.dither``; the published config does not set it, so the
official codes vary slightly from run to run (spec §10.5, Appendix B). ``dither=None`` keeps
that official behaviour; pass ``dither=0.0`` for reproducible codes. Reading
``frontend_conf`` in the published ``config.yaml`` settles which default is official.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from engine.backends.stepaudio.state_dicts import read_state_dict
from engine.backends.stepaudio.tokenizer.files import TOKENIZER_FIX
from engine.backends.stepaudio.tokenizer.paraformer_frontend import (
    FrontendConfig,
    StreamingFrontend,
    load_cmvn,
)
from engine.backends.stepaudio.tokenizer.sanm_encoder import (
    EncoderConfig,
    SanmEncoder,
    StreamingSettings,
)
from engine.backends.stepaudio.vocab import VQ02_CODES
from engine.errors import CheckpointError

__all__ = ["LinguisticTokenizer"]

_LOG = logging.getLogger(__name__)


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}; {TOKENIZER_FIX}")


def _read_metas(directory: Path) -> dict[str, Path]:
    """Resolves model, config and CMVN paths through ``configuration.json``."""
    path = directory / "configuration.json"
    try:
        metas = json.loads(path.read_text(encoding="utf-8")).get("file_path_metas", {})
    except FileNotFoundError:
        raise _fail(path, "file is missing") from None
    except (OSError, UnicodeError, json.JSONDecodeError, AttributeError) as e:
        raise _fail(path, f"not a readable JSON object ({e})") from e
    if not isinstance(metas, dict):
        raise _fail(path, "file_path_metas is not an object")
    frontend = metas.get("frontend_conf", {})
    cmvn = frontend.get("cmvn_file", "am.mvn") if isinstance(frontend, dict) else "am.mvn"
    return {
        "model": directory / str(metas.get("init_param", "model.pt")),
        "config": directory / str(metas.get("config", "config.yaml")),
        "cmvn": directory / str(cmvn),
    }


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "file is missing") from None
    except (OSError, UnicodeError, yaml.YAMLError) as e:
        raise _fail(path, f"not readable YAML ({e})") from e
    if not isinstance(config, dict):
        raise _fail(path, "not a YAML mapping")
    for key, expected in (("encoder", "SANMEncoderChunkOpt"), ("frontend", "WavFrontendOnline")):
        if config.get(key) != expected:
            raise _fail(path, f"{key} is {config.get(key)!r}, expected {expected!r}")
    return config


def _encoder_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` tensors of ``model.pt`` with that prefix removed.

    A ``state_dict`` wrapper and a ``module.`` prefix are accepted (see ``read_state_dict``).
    """
    return {
        name.removeprefix("encoder."): value
        for name, value in read_state_dict(path, TOKENIZER_FIX).items()
        if name.startswith("encoder.") and isinstance(value, torch.Tensor)
    }


def _build_encoder(path: Path, config: EncoderConfig, settings: StreamingSettings) -> SanmEncoder:
    encoder = SanmEncoder(config, settings)
    tensors = _encoder_tensors(path)
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        shown = ", ".join(f"encoder.{k}" for k in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise _fail(path, f"lacks {len(missing)} encoder tensors ({shown}{more})")
    for key, value in expected.items():
        if tensors[key].shape != value.shape:
            raise _fail(
                path,
                f"encoder.{key} has shape {tuple(tensors[key].shape)} but config.yaml implies "
                f"{tuple(value.shape)}",
            )
    unused = sorted(set(tensors) - set(expected))
    if unused:
        _LOG.warning(
            "%s: ignoring %d unknown encoder tensors, e.g. encoder.%s", path, len(unused), unused[0]
        )
    encoder.load_state_dict({k: tensors[k].to(torch.float32) for k in expected})
    return encoder.eval()


def _read_codebook(path: Path, width: int) -> torch.Tensor:
    try:
        codebook = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _fail(path, "file is missing") from None
    except (OSError, ValueError) as e:
        raise _fail(path, f"not a readable .npy array ({e})") from e
    if codebook.ndim != 2 or codebook.shape[1] != width or not 0 < codebook.shape[0] <= VQ02_CODES:
        raise _fail(
            path,
            f"codebook has shape {codebook.shape}; expected (up to {VQ02_CODES}, {width}) to "
            "match the encoder width in config.yaml",
        )
    return torch.from_numpy(codebook.astype(np.float32))


class LinguisticTokenizer:
    """Streams 16 kHz audio through the Paraformer encoder and quantises each frame.

    Use ``load``; the constructor takes already-built parts.

    Args:
        frontend_config: Front-end settings (dither included).
        cmvn: ``(2, feature_size)`` CMVN rows.
        encoder: The encoder, on its device.
        codebook: Float32 ``(codes, width)`` centroids (kept on the CPU, as officially).
    """

    def __init__(
        self,
        frontend_config: FrontendConfig,
        cmvn: np.ndarray,
        encoder: SanmEncoder,
        codebook: torch.Tensor,
    ) -> None:
        self.frontend_config = frontend_config
        self._cmvn = cmvn
        self.encoder = encoder
        self.codebook = codebook

    @classmethod
    def load(
        cls,
        paraformer_dir: Path,
        codebook_path: Path,
        device: str = "cpu",
        dither: float | None = None,
    ) -> LinguisticTokenizer:
        """Loads the official Paraformer directory and the k-means codebook.

        Args:
            paraformer_dir: The ``dengcunqin/...`` directory.
            codebook_path: ``linguistic_tokenizer.npy``.
            device: Torch device of the encoder (``"cpu"``, ``"cuda"``, ``"mps"`` ...).
            dither: Front-end dither; ``None`` takes ``config.yaml``'s value or FunASR's
                default 1.0 (the official behaviour); 0 makes codes reproducible.

        Raises:
            CheckpointError: naming the missing or malformed file.
        """
        metas = _read_metas(paraformer_dir)
        config = _read_config(metas["config"])
        frontend_config = FrontendConfig.from_mapping(config.get("frontend_conf") or {})
        if dither is not None:
            frontend_config = replace(frontend_config, dither=float(dither))
        try:
            cmvn = load_cmvn(metas["cmvn"])
        except FileNotFoundError:
            raise _fail(metas["cmvn"], "file is missing") from None
        except (OSError, UnicodeError, ValueError) as e:
            raise _fail(metas["cmvn"], f"not a Kaldi-nnet CMVN file ({e})") from e
        if cmvn.shape[1] != frontend_config.feature_size:
            raise _fail(
                metas["cmvn"],
                f"has {cmvn.shape[1]} dims but the front end makes {frontend_config.feature_size}",
            )
        try:
            encoder_config = EncoderConfig.from_mapping(
                config.get("encoder_conf") or {}, frontend_config.feature_size
            )
        except ValueError as e:
            raise _fail(metas["config"], str(e)) from e
        encoder = _build_encoder(metas["model"], encoder_config, StreamingSettings())
        codebook = _read_codebook(codebook_path, encoder_config.output_size)
        _LOG.info(
            "vq02 encoder: %d layers, width %d, dither %s, on %s",
            encoder_config.num_blocks,
            encoder_config.output_size,
            frontend_config.dither,
            device,
        )
        return cls(frontend_config, cmvn, encoder.to(device), codebook)

    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Encoder outputs of 16 kHz audio, streamed in pieces of 3840 samples.

        Args:
            audio: 1-D float32 samples at 16 kHz.

        Returns:
            Float32 ``(frames, width)`` on the CPU, one frame per 60 ms.
        """
        settings = self.encoder.settings
        stride = settings.stride_samples
        samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        frontend = StreamingFrontend(self.frontend_config, self._cmvn)
        state = self.encoder.initial_state()
        device = self.encoder.after_norm.weight.device
        pieces = samples.numel() // stride + 1
        outputs = []
        for index in range(pieces):
            piece = samples[index * stride : (index + 1) * stride]
            is_final = index == pieces - 1
            if is_final and piece.numel() == 0:
                break
            features = frontend.accept(piece, is_final)
            if features.shape[0] == 0:
                continue
            outputs.append(self.encoder.forward_chunk(features[None].to(device), state)[0])
        if not outputs:
            return torch.zeros((0, self.encoder.config.output_size))
        return torch.cat(outputs).to("cpu", torch.float32)

    def quantize(self, features: torch.Tensor) -> list[int]:
        """Nearest centroid (Euclidean, first index on ties) of each frame."""
        if features.shape[0] == 0:
            return []
        return torch.cdist(features, self.codebook).argmin(dim=1).tolist()

    def tokenize(self, audio: np.ndarray) -> list[int]:
        """vq02 codes (0 … 1023) of 16 kHz audio, about 16.67 per second."""
        return self.quantize(self.encode(audio))
