"""Uploaded audio and downloadable results, per key, in the state folder under a byte budget.

Layout: ``<root>/<owner folder>/uploads/<sha256>.wav`` (complete, verified uploads),
``<sha256>.<size>.part`` beside them (uploads under way) and ``<root>/<owner folder>/results/``
(what jobs on uploads write). An upload grows only at its end (the offset the client sends
must be the bytes held), is checked against its SHA-256 and published by a rename, so no
job ever reads a partial file. Files are evicted least recently used first when the budget
needs room, never one a queued or running job uses; uploads under way expire after
``partial_ttl_s`` without a chunk, everything else after ``ttl_s`` unused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile

from engine import audio
from engine.errors import InputError, JobError, QueueFullError, StepEditError

__all__ = ["TransferLimits", "TransferStore", "owner_folder"]

_LOG = logging.getLogger(__name__)

_UPLOADS, _RESULTS = "uploads", "results"
# How long a client is told to wait when the budget is held by files in use.
_FULL_RETRY_S = 5.0


@dataclass(frozen=True)
class TransferLimits:
    """What the store holds at most.

    Attributes:
        max_bytes: All files of all keys together.
        max_upload_bytes: One upload (also bounded by ``max_seconds`` of its audio).
        max_seconds: Longest audio an upload may hold.
        max_partial: Uploads under way per key.
        max_files: Files (uploads and results) per key.
        partial_ttl_s: An upload under way without a chunk for this long is removed.
        ttl_s: Complete uploads and results unused for this long are removed.
    """

    max_bytes: int = 4 << 30
    max_upload_bytes: int = 1 << 30
    max_seconds: float = 600.0
    max_partial: int = 4
    max_files: int = 256
    partial_ttl_s: float = 3600.0
    ttl_s: float = 86_400.0


def owner_folder(owner: str) -> str:
    """The folder name of a key's files (never the key's name itself, which may be odd)."""
    return "k-" + hashlib.sha256(owner.encode()).hexdigest()[:16] if owner else "local"


class _Partial:
    """An upload under way: its file, declared size and running hash (``None`` after a
    restart until its bytes are hashed again)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self.offset = path.stat().st_size if path.exists() else 0
        self.hash: hashlib._Hash | None = None


class TransferStore:
    """Thread-safe store of uploads and results under ``root``.

    Args:
        root: Its folder (created).
        limits: Bounds on size, counts and age.
        in_use: The files queued and running jobs use (never evicted).
    """

    def __init__(self, root: Path, limits: TransferLimits, in_use: Callable[[], set[Path]]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.limits, self._in_use = root.resolve(), limits, in_use
        self._lock = threading.Lock()
        self._partials: dict[tuple[Path, str], _Partial] = {}  # (folder, upload id)

    # -- uploads ---------------------------------------------------------------------------

    def begin(self, owner: str, upload_id: str, size: int) -> int:
        """Starts or resumes an upload of ``size`` bytes.

        Returns:
            The bytes the store holds already (``size`` when the upload is complete).

        Raises:
            StepEditError: ``too_long`` for a size over the limits, ``queue_full`` when the
                budget or the key's counts leave no room now, ``bad_request`` when the
                same id was begun with another size.
        """
        limits = self.limits
        if size > limits.max_upload_bytes:
            raise InputError(
                f"an upload of {size} bytes exceeds the engine's {limits.max_upload_bytes}",
                "too_long",
            )
        folder = self._folder(owner, _UPLOADS)
        with self._lock:
            done = folder / f"{upload_id}.wav"
            if done.exists():
                os.utime(done)
                return size
            partial = self._partial(folder, upload_id)
            if partial is not None and partial.size != size:
                raise InputError(
                    f"upload {upload_id!r} is under way with another size; release it first"
                )
            if partial is None:
                under_way = sum(1 for key in self._partials if key[0] == folder)
                if under_way >= limits.max_partial:
                    raise QueueFullError(
                        f"{limits.max_partial} uploads of this key are under way; finish one",
                        _FULL_RETRY_S,
                    )
                if sum(1 for _ in folder.parent.glob("*/*")) >= limits.max_files:
                    raise QueueFullError(
                        f"this key holds {limits.max_files} files; release some", _FULL_RETRY_S
                    )
                self._make_room(size)
                path = folder / f"{upload_id}.{size}.part"
                path.touch()
                partial = self._partials[folder, upload_id] = _Partial(path, size)
            return partial.offset

    def write(self, owner: str, upload_id: str, offset: int, data: bytes) -> tuple[int, int]:
        """Appends a chunk at ``offset``; a chunk at another offset than the bytes held is
        ignored (a resend, or one past a gap), and the answer tells the client where to go
        on. The last chunk publishes the upload once its SHA-256 is ``upload_id`` and it is
        readable audio within ``max_seconds``.

        Returns:
            The bytes held and the declared size.

        Raises:
            StepEditError: ``input_not_found`` for an upload never begun (or expired),
                ``input_corrupt`` when the bytes do not match the id (the upload is
                dropped), ``too_long`` or ``input_not_audio`` for what the bytes hold.
        """
        folder = self._folder(owner, _UPLOADS)
        with self._lock:
            done = folder / f"{upload_id}.wav"
            partial = self._partial(folder, upload_id)
            if partial is None:
                if done.exists():
                    size = done.stat().st_size
                    return size, size
                raise InputError(f"no upload {upload_id!r} under way", "input_not_found")
            if offset != partial.offset or offset + len(data) > partial.size:
                return partial.offset, partial.size
            if partial.hash is None:
                partial.hash = _hash_of(partial.path)
            with partial.path.open("ab") as f:
                f.write(data)
            partial.hash.update(data)
            partial.offset += len(data)
            if partial.offset == partial.size:
                del self._partials[folder, upload_id]
                self._publish(partial, done, upload_id)
            return partial.offset, partial.size

    def upload_path(self, owner: str, upload_id: str, check: bool = True) -> Path:
        """The file of a complete upload of ``owner``, marked as used now.

        Args:
            check: Whether it must exist; else the path it has or had.

        Raises:
            StepEditError: ``input_not_found`` when this key has no such complete upload.
        """
        path = self._folder(owner, _UPLOADS) / f"{upload_id}.wav"
        try:
            os.utime(path)
        except FileNotFoundError:
            if check:
                raise InputError(
                    f"no complete upload {upload_id!r} (released or expired): upload it again",
                    "input_not_found",
                ) from None
        return path

    def release_upload(self, owner: str, upload_id: str) -> None:
        """Removes an upload (complete or under way) unless a job uses it."""
        folder = self._folder(owner, _UPLOADS)
        with self._lock:
            in_use = self._in_use()
            for path in folder.glob(f"{upload_id}.*"):
                if path not in in_use:
                    self._remove(path)

    # -- results ---------------------------------------------------------------------------

    def results_dir(self, owner: str) -> Path:
        """Where jobs on ``owner``'s uploads write (created)."""
        return self._folder(owner, _RESULTS)

    def read_result(
        self, owner: str, path: Path, offset: int, length: int
    ) -> tuple[bytes, int, str]:
        """Up to ``length`` bytes of a result of ``owner`` from ``offset``.

        Returns:
            The bytes, the file's size and its SHA-256 (hex).

        Raises:
            StepEditError: ``unknown_job`` when the file is not one of ``owner``'s results
                (released, expired, or written elsewhere); ``bad_slice`` for an offset past
                its end.
        """
        folder = self.results_dir(owner)
        if path.parent != folder or path.name.startswith("."):
            raise JobError("this job's result is not in the engine's transfer store")
        try:
            with path.open("rb") as f:
                total = os.fstat(f.fileno()).st_size
                if offset > total:
                    raise InputError(
                        f"offset {offset} is past the result's {total} bytes", "bad_slice"
                    )
                f.seek(offset)
                data = f.read(length)
        except FileNotFoundError:
            raise JobError("this job's result was released or expired") from None
        os.utime(path)
        return data, total, self._digest(path, total)

    def release_result(self, owner: str, path: Path) -> None:
        """Removes a result of ``owner`` (no error when it is gone already)."""
        if path.parent == self.results_dir(owner):
            with self._lock:
                self._remove(path)

    # -- internals -------------------------------------------------------------------------

    def _folder(self, owner: str, kind: str) -> Path:
        folder = self.root / owner_folder(owner) / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _partial(self, folder: Path, upload_id: str) -> _Partial | None:
        """The upload under way with this id, taken up from disk after a restart; under
        the lock."""
        partial = self._partials.get((folder, upload_id))
        if partial is None:
            for path in folder.glob(f"{upload_id}.*.part"):
                size = path.name.split(".")[1]
                if size.isdigit():
                    partial = self._partials[folder, upload_id] = _Partial(path, int(size))
        return partial

    def _publish(self, partial: _Partial, done: Path, upload_id: str) -> None:
        """Checks a complete upload and renames it into place; under the lock."""
        try:
            assert partial.hash is not None
            if partial.hash.hexdigest() != upload_id:
                raise InputError(
                    "the uploaded bytes do not match their SHA-256 (the upload id); "
                    "it was dropped: upload it again",
                    "input_corrupt",
                )
            os.replace(partial.path, done)
            audio.check_input_file(done)
            seconds = soundfile.info(str(done)).duration
            if seconds > self.limits.max_seconds:
                raise InputError(
                    f"the upload holds {seconds:.1f} s of audio; the engine takes at most "
                    f"{self.limits.max_seconds:g} s",
                    "too_long",
                )
        except (StepEditError, RuntimeError) as e:  # RuntimeError: soundfile's
            self._remove(partial.path)
            self._remove(done)
            if isinstance(e, StepEditError):
                raise
            raise InputError(f"the upload is not readable audio: {e}", "input_not_audio") from e
        _LOG.info("upload %s complete: %d bytes", upload_id[:12], partial.size)

    def _make_room(self, size: int) -> None:
        """Removes expired files, then least recently used ones until ``size`` more bytes
        fit the budget; under the lock.

        Raises:
            QueueFullError: files in use hold the budget.
        """
        now = time.time()
        in_use = self._in_use()
        files: list[tuple[float, int, Path]] = []
        total = 0
        for path in self.root.glob("*/*/*"):
            if path.name.startswith("."):  # a result being written
                continue
            try:
                status = path.stat()
            except FileNotFoundError:
                continue
            held = status.st_size
            if path.suffix == ".part":  # an upload under way holds its declared size
                held = max(held, int(path.name.split(".")[1]))
            ttl = self.limits.partial_ttl_s if path.suffix == ".part" else self.limits.ttl_s
            if path not in in_use and now - status.st_mtime > ttl:
                self._remove(path)
                continue
            total += held
            if path not in in_use:
                files.append((status.st_mtime, held, path))
        for _, held, path in sorted(files):
            if total + size <= self.limits.max_bytes:
                break
            self._remove(path)
            total -= held
        if total + size > self.limits.max_bytes:
            raise QueueFullError(
                f"the engine's transfer budget ({self.limits.max_bytes} bytes) is held by "
                "files in use; retry later",
                _FULL_RETRY_S,
            )

    def _remove(self, path: Path) -> None:
        if path.suffix == ".part":
            self._partials.pop((path.parent, path.name.split(".")[0]), None)
        for sidecar in path.parent.glob(f".{path.name}.*.sha256"):
            sidecar.unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _LOG.info("transfer store: removed %s", path.name)

    def _digest(self, path: Path, size: int) -> str:
        """The SHA-256 of a result, computed once and kept beside it in a hidden file."""
        sidecar = path.with_name(f".{path.name}.{size}.sha256")
        try:
            return sidecar.read_text(encoding="ascii")
        except FileNotFoundError:
            digest = _hash_of(path).hexdigest()
            audio.atomic_write_bytes(sidecar, digest.encode("ascii"))
            return digest


def _hash_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest
