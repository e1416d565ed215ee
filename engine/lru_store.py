"""A key -> bytes store in SQLite (WAL), bounded in size, least recently used evicted first.

The engine's caches (transcripts, audio tokenizer prompts) keep their entries here, keyed by
:func:`content_key` over the audio they were computed from, so the same samples cut from
another file or project hit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

import numpy as np

__all__ = ["LruStore", "content_key"]

_LOG = logging.getLogger(__name__)

_TABLE_NAME = re.compile(r"[a-z_]+")


def content_key(audio: np.ndarray, header: Mapping[str, object]) -> str:
    """Hex SHA-256 over ``header`` (JSON, sorted keys), the samples' shape and the samples
    as ``float32``: what a cache entry computed from ``audio`` is stored under.

    Args:
        audio: The samples, any shape.
        header: Everything else the entry depends on (rate, model, version, ...).
    """
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    digest = hashlib.sha256()
    digest.update(json.dumps({**header, "shape": samples.shape}, sort_keys=True).encode())
    digest.update(samples.tobytes())
    return digest.hexdigest()


class LruStore:
    """One table of a SQLite file; safe to share between threads and processes.

    A cache never fails its caller: a database error on ``get`` or ``put`` (disk full, a
    lock held too long, a damaged file) is logged and counts as a miss or a skipped store.

    Args:
        path: The database file (its folder must exist).
        table: Table name (lower-case letters and ``_``).
        max_bytes: Bound on the stored values' total size; past it the least recently used
            entries are evicted.

    Raises:
        ValueError: for a bound that is not positive or a bad table name.
    """

    def __init__(self, path: Path, table: str, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"table name must be lower-case letters and '_', got {table!r}")
        self.path = path
        self.table = table
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(
                f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
                " size INTEGER NOT NULL, used REAL NOT NULL);"
                f"CREATE INDEX IF NOT EXISTS {table}_used ON {table}(used);"
            )

    def _connect(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        return closing(db)

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key`` (marking it recently used), or ``None``."""
        try:
            with self._lock, self._connect() as db:
                row = db.execute(f"SELECT value FROM {self.table} WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                db.execute(f"UPDATE {self.table} SET used = ? WHERE key = ?", (time.time(), key))
        except sqlite3.Error as e:
            _LOG.warning("%s: cannot read %s, counted as a miss: %s", self.table, self.path, e)
            return None
        value = row[0]
        return value.encode() if isinstance(value, str) else bytes(value)  # str: a TEXT row

    def put(self, key: str, value: bytes) -> None:
        """Stores ``value`` under ``key``, then evicts the least recently used entries until
        the total fits ``max_bytes`` (the new entry stays, even when alone too big)."""
        try:
            self._put(key, value)
        except sqlite3.Error as e:
            _LOG.warning("%s: cannot store in %s, not cached: %s", self.table, self.path, e)

    def _put(self, key: str, value: bytes) -> None:
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                f"INSERT OR REPLACE INTO {self.table} (key, value, size, used) VALUES (?, ?, ?, ?)",
                (key, value, len(value), time.time()),
            )
            total = db.execute(f"SELECT COALESCE(SUM(size), 0) FROM {self.table}").fetchone()[0]
            if total > self.max_bytes:
                evicted = 0
                for old_key, old_size in db.execute(
                    f"SELECT key, size FROM {self.table} WHERE key != ? ORDER BY used", (key,)
                ).fetchall():
                    if total <= self.max_bytes:
                        break
                    db.execute(f"DELETE FROM {self.table} WHERE key = ?", (old_key,))
                    total -= old_size
                    evicted += 1
                _LOG.debug("%s: evicted %d entries", self.table, evicted)
            db.execute("COMMIT")

    def delete(self, key: str) -> None:
        """Forgets ``key`` (no error if absent)."""
        with self._lock, self._connect() as db:
            db.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))

    def __len__(self) -> int:
        with self._lock, self._connect() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def total_bytes(self) -> int:
        """The stored values' total size in bytes."""
        with self._lock, self._connect() as db:
            return int(db.execute(f"SELECT COALESCE(SUM(size), 0) FROM {self.table}").fetchone()[0])
