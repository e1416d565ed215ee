"""The tokenizer cache: each prompt's codes, prompt mel and speaker embedding on disk.

Entries are keyed by the prompt's samples (the mono signal the models read) and rate, and by
the identity of the models that computed them (a hash of their files and settings), so every
edit of a slice shares one entry, a restart keeps it, and other model files miss. Stored in
SQLite (WAL) with the engine's other caches, bounded in size, least recently used evicted first.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends.stepaudio.tokenizer.interleave import DualCodes
from engine.lru_store import LruStore, content_key

__all__ = ["CACHE_FILE", "CACHE_VERSION", "PromptFeatures", "TokenizerCache", "model_identity"]

_LOG = logging.getLogger(__name__)

# Bump when tokenize() changes what it returns for the same samples and models.
CACHE_VERSION = 1
# The database file in the cache folder.
CACHE_FILE = "stepaudio_prompts.sqlite3"
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class PromptFeatures:
    """What the tokenizer cache keeps of one prompt: the costly part of ``tokenize``.

    Attributes:
        codes: Both code streams.
        mel: ``(frames, 80)`` float32 24 kHz log-mel.
        speaker: ``(192,)`` float32 speaker embedding.
    """

    codes: DualCodes
    mel: np.ndarray
    speaker: np.ndarray

    def to_bytes(self) -> bytes:
        """The features as an ``.npz`` archive (no pickles)."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            vq02=np.asarray(self.codes.vq02, dtype=np.int32),
            vq06=np.asarray(self.codes.vq06, dtype=np.int32),
            mel=np.asarray(self.mel, dtype=np.float32),
            speaker=np.asarray(self.speaker, dtype=np.float32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PromptFeatures:
        """Reads what ``to_bytes`` wrote.

        Raises:
            ValueError: for anything else (a truncated or foreign archive).
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                vq02, vq06 = archive["vq02"], archive["vq06"]
                mel, speaker = archive["mel"], archive["speaker"]
        except (OSError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"not a cached prompt: {e}") from e
        if vq02.ndim != 1 or vq06.ndim != 1 or mel.ndim != 2 or speaker.ndim != 1:
            raise ValueError("not a cached prompt: arrays of the wrong rank")
        return cls(DualCodes.from_codes(vq02.tolist(), vq06.tolist()), mel, speaker)


def model_identity(files: Iterable[Path], settings: Mapping[str, object]) -> str:
    """Hex SHA-256 over the contents of ``files`` (in order, with their names) and
    ``settings`` (JSON): what a cached prompt depends on besides its samples.

    Raises:
        OSError: when a file cannot be read.
    """
    started = time.perf_counter()
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    total = 0
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_READ_CHUNK):
                digest.update(chunk)
                total += len(chunk)
    _LOG.debug(
        "hashed %.1f MB of model files in %.2f s", total / 1e6, time.perf_counter() - started
    )
    return digest.hexdigest()


class TokenizerCache:
    """Prompt features per prompt content, for one model identity.

    Args:
        folder: The cache folder (created if missing); ``CACHE_FILE`` lives there.
        identity: ``model_identity`` of the tokenizer and speaker models.
        max_bytes: Bound on the stored entries' total size.

    Raises:
        ValueError: for a bound that is not positive.
    """

    def __init__(self, folder: Path, identity: str, max_bytes: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.store = LruStore(folder / CACHE_FILE, "prompts", max_bytes)

    def key(self, mono: np.ndarray, sample_rate: int) -> str:
        """The key of the prompt ``mono`` (1-D, after ``prepare_prompt``) at ``sample_rate``."""
        header = {"v": CACHE_VERSION, "rate": sample_rate, "models": self.identity}
        return content_key(mono, header)

    def get(self, key: str) -> PromptFeatures | None:
        """The features under ``key`` (marked recently used), or ``None``; an unreadable
        entry is dropped and reported as a miss."""
        data = self.store.get(key)
        if data is None:
            return None
        try:
            return PromptFeatures.from_bytes(data)
        except ValueError as e:
            _LOG.warning("dropping an unreadable cached prompt: %s", e)
            self.store.delete(key)
            return None

    def put(self, key: str, features: PromptFeatures) -> None:
        """Stores ``features`` under ``key``, evicting the least recently used past the bound."""
        self.store.put(key, features.to_bytes())
