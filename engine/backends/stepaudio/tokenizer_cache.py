"""The tokenizer cache: each prompt's codes, prompt mel and speaker embedding on disk, and
the last pass of each rendered edit.

Prompt entries are keyed by the prompt's samples (the mono signal the models read) and rate,
pass entries by the engine's key of the edit's result; both by the identity of the models
that computed them (a hash of their files and settings), so every edit of a slice shares one
entry, a restart keeps it, and other model files miss. A pass is also keyed by the identity
of the LLM that generated it (its config, its weight files' names, sizes and times, and the
settings that change its output): another checkpoint, dtype or quantization misses. Stored in
SQLite (WAL) with the engine's other caches, one table each, bounded in size, least recently
used evicted first; the content hashes of the model files are remembered there too, by path,
size, modification time and inode, so a restart does not read the files again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from engine.backends.stepaudio.llm.generate import Generation
from engine.backends.stepaudio.tokenizer.interleave import DualCodes
from engine.lru_store import LruStore, content_key

__all__ = [
    "CACHE_FILE",
    "CACHE_VERSION",
    "PromptFeatures",
    "StoredPass",
    "TokenizerCache",
    "file_hashes",
    "llm_identity",
    "model_identity",
]

_LOG = logging.getLogger(__name__)

# Bump when tokenize() changes what it returns for the same samples and models.
CACHE_VERSION = 1
# The database file in the cache folder.
CACHE_FILE = "stepaudio_prompts.sqlite3"
_READ_CHUNK = 1 << 20
# Bound of the remembered file hashes (about 200 bytes a file: thousands of files).
_FILE_HASHES_BYTES = 1 << 20
# The arrays of a stored prompt, and those a stored pass adds to its voice's.
_FEATURE_ARRAYS = ("vq02", "vq06", "mel", "speaker")
_PASS_ARRAYS = ("values", "counts", "stop_reason", "codes", "speaker_sample", "levels")


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
        return _archive(self._arrays())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "vq02": np.asarray(self.codes.vq02, dtype=np.int32),
            "vq06": np.asarray(self.codes.vq06, dtype=np.int32),
            "mel": np.asarray(self.mel, dtype=np.float32),
            "speaker": np.asarray(self.speaker, dtype=np.float32),
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> PromptFeatures:
        """Reads what ``to_bytes`` wrote.

        Raises:
            ValueError: for anything else (a truncated or foreign archive).
        """
        return cls._from_arrays(_unarchive(data, "prompt", _FEATURE_ARRAYS))

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> PromptFeatures:
        vq02, vq06, mel, speaker = (arrays[name] for name in _FEATURE_ARRAYS)
        if vq02.ndim != 1 or vq06.ndim != 1 or mel.ndim != 2 or speaker.ndim != 1:
            raise ValueError("not a cached prompt: arrays of the wrong rank")
        return cls(DualCodes.from_codes(vq02.tolist(), vq06.tolist()), mel, speaker)


@dataclass(frozen=True)
class StoredPass:
    """What the cache keeps of an edit's last pass: what the next pass continues from.

    Attributes:
        generation: What the pass generated.
        codes: The tokens its prompt gave the LLM (kept as their mixed stream:
            ``DualCodes.from_values``).
        voice: The decoder's prompt: the input's codes, mel and speaker embedding.
        speaker_sample: The input's samples that the clone speaker name hashes
            (``prompts.speaker_sample``).
        duration: Seconds of audio ``codes`` stand for.
        loudness: The next pass's loudness reference (LUFS): that of the edit's result.
    """

    generation: Generation
    codes: DualCodes
    voice: PromptFeatures
    speaker_sample: np.ndarray
    duration: float
    loudness: float

    def to_bytes(self) -> bytes:
        """The pass as an ``.npz`` archive (no pickles)."""
        g = self.generation
        counts = [g.max_new_tokens, g.drawn, g.dropped, g.prompt_length, g.seed]
        return _archive(
            {
                **self.voice._arrays(),
                "values": np.asarray(g.values, dtype=np.int32),
                "counts": np.asarray(counts, dtype=np.int64),
                "stop_reason": np.asarray(g.stop_reason),
                "codes": np.asarray(self.codes.values, dtype=np.int32),
                "speaker_sample": np.asarray(self.speaker_sample, dtype=np.float32),
                "levels": np.asarray([self.duration, self.loudness], dtype=np.float64),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredPass:
        """Reads what ``to_bytes`` wrote.

        Raises:
            ValueError: for anything else (a truncated or foreign archive).
        """
        arrays = _unarchive(data, "pass", (*_FEATURE_ARRAYS, *_PASS_ARRAYS))
        values, counts, codes = arrays["values"], arrays["counts"], arrays["codes"]
        levels, sample = arrays["levels"], arrays["speaker_sample"]
        if values.ndim != 1 or codes.ndim != 1 or sample.ndim != 2:
            raise ValueError("not a stored pass: arrays of the wrong rank")
        if counts.shape != (5,) or levels.shape != (2,):
            raise ValueError("not a stored pass: counts or levels of the wrong shape")
        max_new_tokens, drawn, dropped, prompt_length, seed = (int(c) for c in counts)
        stop_reason = str(arrays["stop_reason"])
        generation = Generation(
            values.tolist(), stop_reason, max_new_tokens, drawn, dropped, prompt_length, seed
        )
        return cls(
            generation=generation,
            codes=DualCodes.from_values(codes.tolist()),
            voice=PromptFeatures._from_arrays(arrays),
            speaker_sample=sample,
            duration=float(levels[0]),
            loudness=float(levels[1]),
        )


def _archive(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _unarchive(data: bytes, what: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` archive, read eagerly.

    Raises:
        ValueError: naming ``what`` for a truncated or foreign archive.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in names}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"not a cached {what}: {e}") from e


def file_hashes(folder: Path) -> LruStore:
    """The store in the cache folder ``folder`` (which must exist) that remembers model
    files' content hashes for ``model_identity``.

    Raises:
        OSError, sqlite3.Error: when the folder's database cannot be used.
    """
    return LruStore(folder / CACHE_FILE, "file_hashes", _FILE_HASHES_BYTES)


def model_identity(
    files: Iterable[Path], settings: Mapping[str, object], memo: LruStore | None = None
) -> str:
    """Hex SHA-256 over the contents of ``files`` (in order, with their names) and
    ``settings`` (JSON): what a cached prompt depends on besides its samples.

    Args:
        files: The model files.
        settings: Settings that change the models' output.
        memo: Remembers each file's content hash by its path, size, modification time and
            inode (``file_hashes``): a file none of these changed is not read again.

    Raises:
        OSError: when a file cannot be read.
    """
    started = time.perf_counter()
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    read = 0
    for path in files:
        stat = path.stat()
        row = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino])
        known = memo.get(row) if memo is not None else None
        if known is None:
            known = _file_digest(path).encode()
            read += stat.st_size
            if memo is not None:
                memo.put(row, known)
        digest.update(path.name.encode() + b"\0" + known)
    if read:
        _LOG.info(
            "hashed %.1f MB of model files in %.2f s", read / 1e6, time.perf_counter() - started
        )
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    """Hex SHA-256 of the file's contents, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def llm_identity(config: Path, weights: Iterable[Path], settings: Mapping[str, object]) -> str:
    """Hex SHA-256 identifying an LLM without reading its weights: the contents of its
    ``config`` file, each weight file's name, size and modification time, and ``settings``
    (JSON: the dtype, the quantization, anything else that changes what it generates).

    Raises:
        OSError: when a file cannot be read or stat'ed.
    """
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    digest.update(config.read_bytes())
    for path in weights:
        stat = path.stat()
        digest.update(json.dumps([path.name, stat.st_size, stat.st_mtime_ns]).encode())
    return digest.hexdigest()


class TokenizerCache:
    """Prompt features per prompt content, and edits' last passes per key of their result,
    for one model identity.

    Args:
        folder: The cache folder (created if missing); ``CACHE_FILE`` lives there.
        identity: ``model_identity`` of the tokenizer and speaker models.
        max_bytes: Bound on the stored entries' total size, in each table.
        llm: ``llm_identity`` of the LLM whose passes are stored (prompts do not depend
            on it); a pass of another LLM is not recalled.

    Raises:
        ValueError: for a bound that is not positive.
    """

    def __init__(self, folder: Path, identity: str, max_bytes: int, llm: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.llm = llm
        self.store = LruStore(folder / CACHE_FILE, "prompts", max_bytes)
        self.passes = LruStore(folder / CACHE_FILE, "passes", max_bytes)

    def key(self, mono: np.ndarray, sample_rate: int) -> str:
        """The key of the prompt ``mono`` (1-D, after ``prepare_prompt``) at ``sample_rate``."""
        header = {"v": CACHE_VERSION, "rate": sample_rate, "models": self.identity}
        return content_key(mono, header)

    def get(self, key: str) -> PromptFeatures | None:
        """The features under ``key`` (marked recently used), or ``None``; an unreadable
        entry is dropped and reported as a miss."""
        return _load(self.store, key, PromptFeatures.from_bytes, "cached prompt")

    def put(self, key: str, features: PromptFeatures) -> None:
        """Stores ``features`` under ``key``, evicting the least recently used past the bound."""
        self.store.put(key, features.to_bytes())

    def get_pass(self, key: str) -> StoredPass | None:
        """The pass remembered under the result key ``key`` (marked recently used), or
        ``None``; an unreadable entry is dropped and reported as a miss."""
        return _load(self.passes, self._pass_row(key), StoredPass.from_bytes, "stored pass")

    def put_pass(self, key: str, stored: StoredPass) -> None:
        """Stores ``stored`` under the result key ``key``, evicting the least recently used
        past the bound."""
        self.passes.put(self._pass_row(key), stored.to_bytes())

    def _pass_row(self, key: str) -> str:
        """The row of result key ``key`` for these models and this LLM."""
        header = {"v": CACHE_VERSION, "models": self.identity, "llm": self.llm, "result": key}
        return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


_Entry = TypeVar("_Entry")


def _load(store: LruStore, row: str, parse: Callable[[bytes], _Entry], what: str) -> _Entry | None:
    """The entry at ``row`` parsed, or ``None``; an unreadable one is dropped (a miss)."""
    data = store.get(row)
    if data is None:
        return None
    try:
        return parse(data)
    except ValueError as e:
        _LOG.warning("dropping an unreadable %s: %s", what, e)
        store.delete(row)
        return None
