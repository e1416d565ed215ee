"""Checks a Step-Audio model folder up front and reads its configuration files.

``ROOT`` must hold ``Step-Audio-Tokenizer/`` and ``Step-Audio-EditX/`` exactly as the
official Hugging Face repositories lay them out. Every file the backend needs is checked
before anything is loaded; all problems are reported in one ``CheckpointError`` that names
each file and what to do. Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.stepaudio.decoder.config import DecoderConfig
from engine.backends.stepaudio.decoder.files import (
    DECODER_CONFIG_FILE,
    DECODER_DIR,
    FLOW_FILE,
    HIFT_FILE,
    SPEAKER_ONNX_FILE,
)
from engine.backends.stepaudio.hyperyaml import load_hyperyaml
from engine.backends.stepaudio.llm.config import Step1Config
from engine.backends.stepaudio.options import SamplingConfig
from engine.backends.stepaudio.tokenizer.files import (
    CODEBOOK_FILE,
    PARAFORMER_SUBDIR,
    SEMANTIC_ONNX_FILE,
)
from engine.backends.stepaudio.vocab import (
    AUDIO_ID_OFFSET,
    AUDIO_VALUES,
    BOT_ID,
    EOT_ID,
    VQ02_CODES,
)
from engine.errors import CheckpointError

__all__ = [
    "DECODER_DIR",
    "EDITX_DIR",
    "TOKENIZER_DIR",
    "StepAudioCheckpoint",
    "check_checkpoint",
]

_LOG = logging.getLogger(__name__)

TOKENIZER_DIR = "Step-Audio-Tokenizer"
EDITX_DIR = "Step-Audio-EditX"
_HF_REPOS = {
    TOKENIZER_DIR: "stepfun-ai/Step-Audio-Tokenizer",
    EDITX_DIR: "stepfun-ai/Step-Audio-EditX",
}
_SAFETENSORS_DTYPES = {"BF16", "F16", "F32"}
# Pieces whose ids the prompt layout and the audio id scheme rely on (spec §4.2).
_SPECIAL_PIECES = {
    EOT_ID: "<|EOT|>",
    BOT_ID: "<|BOT|>",
    AUDIO_ID_OFFSET: "<audio_0>",
    AUDIO_ID_OFFSET + AUDIO_VALUES - 1: f"<audio_{AUDIO_VALUES - 1}>",
}
_REDOWNLOAD = "re-download it"


@dataclass(frozen=True)
class StepAudioCheckpoint:
    """A checked model folder and what its configuration files say.

    Attributes:
        root: The folder holding both checkpoint directories.
        tokenizer_dir: ``ROOT/Step-Audio-Tokenizer``.
        editx_dir: ``ROOT/Step-Audio-EditX``.
        decoder_dir: ``ROOT/Step-Audio-EditX/CosyVoice-300M-25Hz``.
        llm_config: The parsed ``config.json``.
        llm_shards: The safetensors files holding the LLM weights.
        decoder: The parsed ``cosyvoice.yaml``.
        add_bos_token: ``tokenizer_config.json``'s ``add_bos_token`` (``True``, the Llama
            default, when absent).
        sampling: The official sampling settings: temperature 0.7 (passed by the official
            call) with ``top_k``/``top_p`` from ``generation_config.json`` when the folder has
            one, else transformers' defaults 50 / 1.0 (spec §10.4).
    """

    root: Path
    tokenizer_dir: Path
    editx_dir: Path
    decoder_dir: Path
    llm_config: Step1Config
    llm_shards: tuple[Path, ...]
    decoder: DecoderConfig
    add_bos_token: bool
    sampling: SamplingConfig


class _Report:
    """Collects problems as (path relative to the root, what is wrong and what to do)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[tuple[Path, str]] = []

    def add(self, path: Path, text: str) -> None:
        self.problems.append((path, text))

    def require(self, path: Path, what: str) -> bool:
        """Records a missing file; returns whether it exists."""
        if path.is_file() and path.stat().st_size > 0:
            return True
        state = "is empty" if path.is_file() else "is missing"
        self.add(path, f"{state} ({what}); download it")
        return False

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        lines = [
            f"the Step-Audio model folder {self.root} cannot be used "
            f"({len(self.problems)} problem{'s' * (len(self.problems) > 1)}):"
        ]
        lines += [f"  - {self._relative(path)}: {text}" for path, text in self.problems]
        repos = sorted({self._repo_dir(path) for path, _ in self.problems} & set(_HF_REPOS))
        if repos:
            lines.append("Get the official files (StepEdit never downloads weights), e.g.:")
            lines += [
                f"  huggingface-cli download {_HF_REPOS[r]} --local-dir {self.root / r}"
                for r in repos
            ]
        raise CheckpointError("\n".join(lines))

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _repo_dir(self, path: Path) -> str:
        parts = Path(self._relative(path)).parts
        return parts[0] if parts else ""


def _read_json(report: _Report, path: Path, what: str) -> Any:
    if not report.require(path, what):
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        report.add(path, f"is not valid JSON ({e}); {_REDOWNLOAD}")
        return None


def _is_torch_file(path: Path) -> bool:
    """True for torch.save output: a zip archive, or the legacy pickle format."""
    if zipfile.is_zipfile(path):
        return True
    with path.open("rb") as f:
        return f.read(1) == b"\x80"


def _check_torch_file(report: _Report, path: Path, what: str) -> None:
    if report.require(path, what) and not _is_torch_file(path):
        report.add(path, f"is not a PyTorch checkpoint; {_REDOWNLOAD}")


def _safetensors_header(path: Path) -> dict[str, Any]:
    """Reads a safetensors header (the tensors' dtypes and shapes) without the data."""
    size = path.stat().st_size
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > size - 8:
            raise ValueError("header length exceeds the file")
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    if 8 + length + end > size:
        raise ValueError("the file is truncated")
    return header


def _llm_shards(report: _Report, editx: Path) -> list[Path]:
    index = editx / "model.safetensors.index.json"
    single = editx / "model.safetensors"
    if not index.is_file() and single.is_file():
        return [single]
    data = _read_json(report, index, "the LLM weight map")
    if data is None:
        return []
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        report.add(index, f"has no weight_map; {_REDOWNLOAD}")
        return []
    shards = []
    for name in sorted(set(weight_map.values())):
        if report.require(editx / name, "LLM weights listed in model.safetensors.index.json"):
            shards.append(editx / name)
    return shards


def _check_llm_weights(report: _Report, shards: list[Path], config: Step1Config) -> None:
    expected = config.tensor_shapes()
    found: dict[str, tuple[int, ...]] = {}
    for shard in shards:
        try:
            header = _safetensors_header(shard)
        except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
            report.add(shard, f"is not a readable safetensors file ({e}); {_REDOWNLOAD}")
            continue
        for key, info in header.items():
            if info.get("dtype") not in _SAFETENSORS_DTYPES:
                report.add(shard, f"tensor {key} has dtype {info.get('dtype')}; {_REDOWNLOAD}")
                return
            found[key] = tuple(info["shape"])
    if len(found) == 0:
        return
    missing = sorted(set(expected) - set(found))
    wrong = [k for k in expected if k in found and found[k] != expected[k]]
    if missing:
        report.add(
            shards[0],
            f"the LLM weights lack {len(missing)} tensor(s), e.g. {', '.join(missing[:3])}; "
            "the download is incomplete",
        )
    if wrong:
        report.add(
            shards[0],
            f"{len(wrong)} LLM tensor(s) do not match config.json, e.g. {wrong[0]} is "
            f"{found[wrong[0]]}, expected {expected[wrong[0]]}; {_REDOWNLOAD}",
        )
    unknown = sorted(set(found) - set(expected))
    if unknown:
        _LOG.warning("ignoring %d unknown LLM tensor(s), e.g. %s", len(unknown), unknown[:3])


def _check_text_tokenizer(report: _Report, path: Path, vocab_size: int | None) -> None:
    if not report.require(path, "the SentencePiece text tokenizer"):
        return
    import sentencepiece

    try:
        sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as e:
        report.add(path, f"is not a SentencePiece model ({e}); {_REDOWNLOAD}")
        return
    size = sp.get_piece_size()
    if vocab_size is not None and size != vocab_size:
        report.add(path, f"has {size} pieces but config.json says {vocab_size}; {_REDOWNLOAD}")
        return
    wrong = [
        f"id {i} is {sp.id_to_piece(i) if i < size else 'absent'!r}, expected {piece!r}"
        for i, piece in _SPECIAL_PIECES.items()
        if i >= size or sp.id_to_piece(i) != piece
    ]
    if wrong:
        report.add(path, f"is not the Step-Audio vocabulary ({'; '.join(wrong)}); {_REDOWNLOAD}")


def _check_tokenizer_dir(report: _Report, folder: Path) -> None:
    codebook = folder / CODEBOOK_FILE
    if report.require(codebook, "the vq02 k-means codebook"):
        try:
            table = np.load(codebook, mmap_mode="r")
            ok = table.ndim == 2 and table.shape[0] == VQ02_CODES and table.dtype == np.float32
        except (OSError, ValueError) as e:
            report.add(codebook, f"is not a NumPy array ({e}); {_REDOWNLOAD}")
        else:
            if not ok:
                report.add(
                    codebook,
                    f"holds {table.dtype} {table.shape}, expected float32 ({VQ02_CODES}, D); "
                    f"{_REDOWNLOAD}",
                )
    report.require(folder / SEMANTIC_ONNX_FILE, "the vq06 ONNX tokenizer")
    paraformer = folder / PARAFORMER_SUBDIR
    _read_json(report, paraformer / "configuration.json", "the Paraformer model card")
    config = paraformer / "config.yaml"
    if report.require(config, "the Paraformer configuration"):
        try:
            parsed = load_hyperyaml(config.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            report.add(config, f"is not valid YAML ({e}); {_REDOWNLOAD}")
        else:
            if not isinstance(parsed.get("encoder_conf"), dict):
                report.add(config, f"has no encoder_conf section; {_REDOWNLOAD}")
    _check_torch_file(report, paraformer / "model.pt", "the Paraformer weights")
    mvn = paraformer / "am.mvn"
    if report.require(mvn, "the Paraformer feature normalisation"):
        text = mvn.read_text(encoding="utf-8", errors="replace")
        if "<AddShift>" not in text or "<Rescale>" not in text:
            report.add(mvn, f"lacks the <AddShift>/<Rescale> blocks; {_REDOWNLOAD}")


def _sampling(settings: dict[str, Any]) -> SamplingConfig:
    """The official settings with a generation config's ``top_k``/``top_p`` (null = off)."""
    defaults = SamplingConfig()
    return dataclasses.replace(
        defaults,
        top_k=int(settings.get("top_k", defaults.top_k) or 0),
        top_p=float(settings.get("top_p", defaults.top_p) or 1.0),
    )


def _check_decoder_dir(report: _Report, folder: Path) -> DecoderConfig | None:
    config_path = folder / DECODER_CONFIG_FILE
    decoder = None
    if report.require(config_path, "the decoder configuration"):
        try:
            decoder = DecoderConfig.from_yaml(
                load_hyperyaml(config_path.read_text(encoding="utf-8"))
            )
        except (ValueError, UnicodeDecodeError) as e:
            report.add(config_path, f"is not a usable decoder configuration ({e}); {_REDOWNLOAD}")
    _check_torch_file(report, folder / FLOW_FILE, "the flow decoder weights")
    _check_torch_file(report, folder / HIFT_FILE, "the HiFT vocoder weights")
    report.require(folder / SPEAKER_ONNX_FILE, "the CAM++ speaker encoder")
    return decoder


def check_checkpoint(root: Path) -> StepAudioCheckpoint:
    """Checks every file the stepaudio backend needs under ``root``.

    Args:
        root: The folder that holds ``Step-Audio-Tokenizer/`` and ``Step-Audio-EditX/``.

    Returns:
        The checked layout with the parsed configurations.

    Raises:
        CheckpointError: one message listing every missing or malformed file, what is wrong
            with it and how to get it.
    """
    root = Path(root).expanduser().resolve()
    report = _Report(root)
    if not root.is_dir():
        raise CheckpointError(
            f"the Step-Audio model folder {root} does not exist; pass --model-dir with the "
            f"folder that holds {TOKENIZER_DIR}/ and {EDITX_DIR}/"
        )
    tokenizer_dir, editx = root / TOKENIZER_DIR, root / EDITX_DIR
    decoder_dir = editx / DECODER_DIR
    for folder in (tokenizer_dir, editx):
        if not folder.is_dir():
            report.add(folder, "folder is missing; download it")
    if tokenizer_dir.is_dir():
        _check_tokenizer_dir(report, tokenizer_dir)
    llm_config = decoder = None
    shards: list[Path] = []
    add_bos = True
    sampling = SamplingConfig()
    if editx.is_dir():
        data = _read_json(report, editx / "config.json", "the LLM configuration")
        if isinstance(data, dict):
            try:
                llm_config = Step1Config.from_dict(data)
            except ValueError as e:
                report.add(editx / "config.json", f"{e}; {_REDOWNLOAD}")
        shards = _llm_shards(report, editx)
        if llm_config is not None and shards:
            _check_llm_weights(report, shards, llm_config)
        _check_text_tokenizer(
            report, editx / "tokenizer.model", llm_config.vocab_size if llm_config else None
        )
        tokenizer_config = editx / "tokenizer_config.json"
        if tokenizer_config.is_file():
            settings = _read_json(report, tokenizer_config, "the text tokenizer settings")
            if isinstance(settings, dict):
                add_bos = bool(settings.get("add_bos_token", True))
        generation_config = editx / "generation_config.json"
        if generation_config.is_file():
            settings = _read_json(report, generation_config, "the generation defaults")
            if isinstance(settings, dict):
                sampling = _sampling(settings)
        if decoder_dir.is_dir():
            decoder = _check_decoder_dir(report, decoder_dir)
        else:
            report.add(decoder_dir, "folder is missing; download it")
    report.raise_if_any()
    assert llm_config is not None and decoder is not None  # guaranteed when no problems
    return StepAudioCheckpoint(
        root=root,
        tokenizer_dir=tokenizer_dir,
        editx_dir=editx,
        decoder_dir=decoder_dir,
        llm_config=llm_config,
        llm_shards=tuple(shards),
        decoder=decoder,
        add_bos_token=add_bos,
        sampling=sampling,
    )
