"""Status files: one JSON object per job, rewritten at every state change, never over a file
the engine did not create."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from bridge.protocol import JobStatus, encode_status
from engine.audio import atomic_write_bytes

__all__ = ["StatusFiles", "create_status_file"]

_LOG = logging.getLogger(__name__)


class StatusFiles:
    """Writes the status files of this engine's jobs.

    A path is claimed by creating it (it must not exist yet); only claimed paths are
    rewritten afterwards, atomically. A file that was there before is left untouched.

    Args:
        claimed: Paths created by this engine before a restart (from its journal).
        on_create: Told of each newly created file and its job id (to journal it).
    """

    def __init__(
        self,
        claimed: Iterable[Path] = (),
        on_create: Callable[[Path, str], None] | None = None,
    ) -> None:
        self._claimed: set[Path] = set(claimed)
        self._on_create = on_create
        self._lock = threading.Lock()

    def foreign(self, path: Path) -> bool:
        """Whether ``path`` exists but was not created by the engine (so is never written)."""
        with self._lock:
            return path not in self._claimed and path.exists()

    def write(self, path: Path, status: JobStatus) -> None:
        """Creates or rewrites ``path`` with ``status``; logs instead of raising."""
        data = _status_text(status).encode("utf-8")
        with self._lock:
            claimed = path in self._claimed
        try:
            if claimed:
                atomic_write_bytes(path, data)
            elif create_status_file(path, status):
                with self._lock:
                    self._claimed.add(path)
                if self._on_create is not None:
                    self._on_create(path, status.job_id)
            else:
                _LOG.warning("status file %r exists and is not the engine's: left as it is", path)
        except OSError as e:
            _LOG.warning("cannot write status file %r: %s", str(path), e)


def create_status_file(path: Path, status: JobStatus) -> bool:
    """Writes ``status`` to ``path`` as a new file, whole and atomically; never replaces one.

    Returns:
        False when ``path`` already exists (it is left untouched).

    Raises:
        OSError: the folder is missing or not writable.
    """
    return _create(path, _status_text(status).encode("utf-8"))


def _status_text(status: JobStatus) -> str:
    return encode_status(
        status.job_id,
        status.state,
        status.progress,
        status.stage,
        status.output_path,
        status.result,
        status.error,
        status.retry_after,
    )


def _create(path: Path, data: bytes) -> bool:
    """Writes a new file whole, atomically; False when ``path`` already exists."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing file
        except FileExistsError:
            return False
        except OSError:  # no hard links here: claim the name, then replace it
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)
