"""Transcripts cached per slice content in SQLite (WAL), bounded in size, least recently used
evicted first.

The key is a SHA-256 over the slice's samples (``float32``, with its shape), its rate, the
model, the language asked for, the known text and :data:`PIPELINE_VERSION`, so the same
audio cut from another file or project hits, and a changed pipeline misses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from engine.lru_store import LruStore, content_key
from engine.state import CACHE_SUBDIR, state_dir
from engine.text.transcript import Transcript

__all__ = ["DEFAULT_MAX_BYTES", "PIPELINE_VERSION", "TranscriptCache", "cache_key"]

_LOG = logging.getLogger(__name__)

# Bump when transcription changes what it returns for the same input.
PIPELINE_VERSION = 1
# A minute of speech is about 20 kB of transcript JSON: 64 MiB holds thousands of slices.
DEFAULT_MAX_BYTES = 64 << 20


def cache_key(
    audio: np.ndarray, sample_rate: int, model: str, language: str, text: str = ""
) -> str:
    """The cache key of one transcription request (hex SHA-256)."""
    header = {
        "v": PIPELINE_VERSION,
        "rate": sample_rate,
        "model": model,
        "language": language,
        "text": text,
    }
    return content_key(audio, header)


class TranscriptCache:
    """A folder-backed transcript cache; safe to share between threads and processes.

    Args:
        folder: Where ``transcripts.sqlite3`` lives; default ``<state dir>/cache``.
        max_bytes: Bound on the stored transcripts' total size (JSON bytes); the least
            recently used are evicted past it.
    """

    def __init__(self, folder: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder if folder is not None else state_dir() / CACHE_SUBDIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "transcripts.sqlite3"
        self.max_bytes = max_bytes
        self._store = LruStore(self.path, "transcripts", max_bytes)

    def get(self, key: str) -> Transcript | None:
        """The transcript stored under ``key`` (marking it recently used), or ``None``."""
        value = self._store.get(key)
        if value is None:
            return None
        try:
            return Transcript.from_json(json.loads(value))
        except (ValueError, KeyError, TypeError) as e:
            _LOG.warning("dropping an unreadable cached transcript: %s", e)
            self.delete(key)
            return None

    def put(self, key: str, transcript: Transcript) -> None:
        """Stores ``transcript`` under ``key``, then evicts the least recently used entries
        until the total fits ``max_bytes`` (the new entry stays, even when alone too big)."""
        value = json.dumps(transcript.to_json(), ensure_ascii=False, separators=(",", ":"))
        self._store.put(key, value.encode())

    def delete(self, key: str) -> None:
        """Forgets ``key`` (no error if absent)."""
        self._store.delete(key)

    def __len__(self) -> int:
        return len(self._store)

    def total_bytes(self) -> int:
        """The stored transcripts' total size in bytes."""
        return self._store.total_bytes()
