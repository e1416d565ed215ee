"""Transcripts cached per slice content in SQLite (WAL), bounded in size, least recently used
evicted first.

The key is a SHA-256 over the slice's samples (``float32``, with its shape), its rate, the
model, the language asked for, the known text and :data:`PIPELINE_VERSION`, so the same
audio cut from another file or project hits, and a changed pipeline misses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import numpy as np

from engine.state import state_dir
from engine.text.transcript import Transcript

__all__ = ["DEFAULT_MAX_BYTES", "PIPELINE_VERSION", "TranscriptCache", "cache_key"]

_LOG = logging.getLogger(__name__)

# Bump when transcription changes what it returns for the same input.
PIPELINE_VERSION = 1
# A minute of speech is about 20 kB of transcript JSON: 64 MiB holds thousands of slices.
DEFAULT_MAX_BYTES = 64 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transcripts_used ON transcripts(used);
"""


def cache_key(
    audio: np.ndarray, sample_rate: int, model: str, language: str, text: str = ""
) -> str:
    """The cache key of one transcription request (hex SHA-256)."""
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    digest = hashlib.sha256()
    header = {
        "v": PIPELINE_VERSION,
        "shape": samples.shape,
        "rate": sample_rate,
        "model": model,
        "language": language,
        "text": text,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(samples.tobytes())
    return digest.hexdigest()


class TranscriptCache:
    """A folder-backed transcript cache; safe to share between threads and processes.

    Args:
        folder: Where ``transcripts.sqlite3`` lives; default ``<state dir>/cache``.
        max_bytes: Bound on the stored transcripts' total size (JSON bytes); the least
            recently used are evicted past it.
    """

    def __init__(self, folder: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.folder = folder if folder is not None else state_dir() / "cache"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "transcripts.sqlite3"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        return closing(db)

    def get(self, key: str) -> Transcript | None:
        """The transcript stored under ``key`` (marking it recently used), or ``None``."""
        with self._lock, self._connect() as db:
            row = db.execute("SELECT value FROM transcripts WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE transcripts SET used = ? WHERE key = ?", (time.time(), key))
        try:
            return Transcript.from_json(json.loads(row[0]))
        except (ValueError, KeyError, TypeError) as e:
            _LOG.warning("dropping an unreadable cached transcript: %s", e)
            self.delete(key)
            return None

    def put(self, key: str, transcript: Transcript) -> None:
        """Stores ``transcript`` under ``key``, then evicts the least recently used entries
        until the total fits ``max_bytes`` (the new entry stays, even when alone too big)."""
        value = json.dumps(transcript.to_json(), ensure_ascii=False, separators=(",", ":"))
        size = len(value.encode())
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR REPLACE INTO transcripts (key, value, size, used) VALUES (?, ?, ?, ?)",
                (key, value, size, time.time()),
            )
            total = db.execute("SELECT COALESCE(SUM(size), 0) FROM transcripts").fetchone()[0]
            if total > self.max_bytes:
                evicted = 0
                for old_key, old_size in db.execute(
                    "SELECT key, size FROM transcripts WHERE key != ? ORDER BY used", (key,)
                ).fetchall():
                    if total <= self.max_bytes:
                        break
                    db.execute("DELETE FROM transcripts WHERE key = ?", (old_key,))
                    total -= old_size
                    evicted += 1
                _LOG.debug("transcript cache: evicted %d entries", evicted)
            db.execute("COMMIT")

    def delete(self, key: str) -> None:
        """Forgets ``key`` (no error if absent)."""
        with self._lock, self._connect() as db:
            db.execute("DELETE FROM transcripts WHERE key = ?", (key,))

    def __len__(self) -> int:
        with self._lock, self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM transcripts").fetchone()[0])

    def total_bytes(self) -> int:
        """The stored transcripts' total size in bytes."""
        with self._lock, self._connect() as db:
            return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM transcripts").fetchone()[0])
