"""The job journal: every accepted job in SQLite (WAL), so that a restarted engine finishes,
re-runs or reports each one, and still answers for those finished before it stopped.

Written at the moments that matter for recovery (accepted, render started, finished, status
file created), not at every progress step. WAL with ``synchronous=NORMAL`` keeps each commit
through a killed process (only an operating-system crash can lose the last ones).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bridge.protocol import EditRequest, JobRequest, JobStatus, TranscribeRequest

__all__ = ["SCHEMA_VERSION", "Journal", "JournaledJob"]

# Bumped when the tables change; an engine refuses a journal of another version.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of acceptance
    job_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,                     -- the key that sent it ('' unauthenticated)
    kind TEXT NOT NULL,                      -- 'edit' or 'transcribe'
    request TEXT NOT NULL,                   -- the decoded request, as JSON
    state TEXT NOT NULL,                     -- one of JOB_STATES
    status TEXT NOT NULL,                    -- the latest status, as JSON
    attempts INTEGER NOT NULL DEFAULT 0,     -- renders started
    updated REAL NOT NULL                    -- Unix time of the last change
);
CREATE TABLE IF NOT EXISTS status_files (
    path TEXT PRIMARY KEY,                   -- a status file the engine created
    job_id TEXT NOT NULL
);
"""

_REQUEST_TYPES: dict[str, type[JobRequest]] = {
    "edit": EditRequest,
    "transcribe": TranscribeRequest,
}


@dataclass(frozen=True)
class JournaledJob:
    """One job as the journal remembers it.

    Attributes:
        job_id: The client's id.
        owner: Who sent it.
        request: The request as it was accepted.
        status: Its latest journaled status (``running`` when the engine stopped mid-render).
        attempts: How many renders of it were started.
    """

    job_id: str
    owner: str
    request: JobRequest
    status: JobStatus
    attempts: int


class Journal:
    """The jobs of one engine, in ``<state folder>/jobs.sqlite3``.

    Thread-safe: the engine calls it under its lock, the event thread when it creates a
    status file. Every method raises ``OSError`` when the database cannot be written.

    Raises:
        OSError: the journal cannot be opened, or was written by another schema version.
    """

    FILE_NAME = "jobs.sqlite3"

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / self.FILE_NAME
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OSError(
                    f"job journal {str(self.path)!r} has schema version {version}, this engine "
                    f"reads {SCHEMA_VERSION}: move it away to start with an empty journal"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise OSError(f"cannot open the job journal {str(self.path)!r}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def accepted(self, job_id: str, owner: str, request: JobRequest, status: JobStatus) -> None:
        """Records a newly accepted job."""
        kind = next(k for k, t in _REQUEST_TYPES.items() if isinstance(request, t))
        self._write(
            "INSERT INTO jobs (job_id, owner, kind, request, state, status, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                owner,
                kind,
                json.dumps(asdict(request)),
                status.state,
                _status_json(status),
                time.time(),
            ),
        )

    def started(self, status: JobStatus) -> None:
        """Records that a render of the job began (counted, so a job that kills the engine
        is not retried forever)."""
        self._write(
            "UPDATE jobs SET state = ?, status = ?, attempts = attempts + 1, updated = ? "
            "WHERE job_id = ?",
            (status.state, _status_json(status), time.time(), status.job_id),
        )

    def changed(self, status: JobStatus) -> None:
        """Records a job's new state (finished, or queued again after a restart)."""
        self._write(
            "UPDATE jobs SET state = ?, status = ?, updated = ? WHERE job_id = ?",
            (status.state, _status_json(status), time.time(), status.job_id),
        )

    def claimed(self, path: Path, job_id: str) -> None:
        """Records a status file the engine created (so it may rewrite it after a restart)."""
        self._write(
            "INSERT OR IGNORE INTO status_files (path, job_id) VALUES (?, ?)",
            (str(path), job_id),
        )

    def forget(self, job_ids: Iterable[str]) -> None:
        """Drops finished jobs the engine no longer remembers, with their status files."""
        for job_id in job_ids:
            self._write("DELETE FROM status_files WHERE job_id = ?", (job_id,))
            self._write("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def jobs(self) -> list[JournaledJob]:
        """Every journaled job, in the order they were accepted."""
        with self._lock, closing(self._db.cursor()) as rows:
            rows.execute(
                "SELECT job_id, owner, kind, request, status, attempts FROM jobs ORDER BY seq"
            )
            return [
                JournaledJob(
                    job_id=job_id,
                    owner=owner,
                    request=_REQUEST_TYPES[kind](**json.loads(request)),
                    status=_status_from_json(status),
                    attempts=attempts,
                )
                for job_id, owner, kind, request, status, attempts in rows.fetchall()
            ]

    def status_files(self) -> set[Path]:
        """The status files the engine created for the jobs it remembers."""
        with self._lock, closing(self._db.cursor()) as rows:
            rows.execute("SELECT path FROM status_files")
            return {Path(path) for (path,) in rows.fetchall()}

    def _write(self, sql: str, values: tuple[Any, ...]) -> None:
        try:
            with self._lock, self._db:
                self._db.execute(sql, values)
        except sqlite3.Error as e:  # disk full, folder gone: the caller decides
            raise OSError(f"cannot write the job journal {str(self.path)!r}: {e}") from e


def _status_json(status: JobStatus) -> str:
    return json.dumps(asdict(status), ensure_ascii=False)


def _status_from_json(text: str) -> JobStatus:
    fields = json.loads(text)
    if fields.get("error") is not None:
        fields["error"] = tuple(fields["error"])
    return JobStatus(**fields)
