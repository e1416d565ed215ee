"""The job queue: ids, one render worker, cancel, status and progress events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.backends.base import Backend
from engine.edits import EditSpec
from engine.errors import JobCancelled, JobError, StepEditError
from engine.render import RenderLimits, check_supported, render_job

__all__ = ["EditJob", "Engine", "EngineConfig", "JobStatus", "Listener"]

_LOG = logging.getLogger(__name__)

# Progress events closer together than this are dropped, except at stage changes.
_PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class EditJob:
    """One requested edit.

    Attributes:
        job_id: Client-chosen id, unique per engine.
        input: Absolute path of the source file.
        edit: The validated edit.
        start: Slice start in seconds.
        length: Slice length in seconds, ``None`` for the rest of the file.
        output_dir: Folder for the result; ``None`` means the input's folder.
    """

    job_id: str
    input: Path
    edit: EditSpec
    start: float = 0.0
    length: float | None = None
    output_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id must not be empty")


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job, as listeners receive it.

    Attributes:
        job_id: The job's id.
        state: One of ``queued``, ``running``, ``done``, ``error``, ``cancelled``.
        progress: 0..1.
        stage: Current stage name.
        output_path: The result file once ``done``.
        result: The result JSON object once ``done``.
        error: ``(code, message)`` once ``error`` or ``cancelled``.
    """

    job_id: str
    state: str
    progress: float = 0.0
    stage: str = "queued"
    output_path: str = ""
    result: dict[str, Any] | None = None
    error: tuple[str, str] | None = None

    @property
    def finished(self) -> bool:
        return self.state in {"done", "error", "cancelled"}


Listener = Callable[[JobStatus], None]


@dataclass(frozen=True)
class EngineConfig:
    """Engine limits.

    Attributes:
        max_queue: Jobs that may wait behind the running one.
        max_input_seconds: Longest slice accepted.
        retain_finished: Finished jobs remembered for status queries and resends.
        shutdown_grace_s: How long a running job may finish when the engine stops.
    """

    max_queue: int = 32
    max_input_seconds: float = 600.0
    retain_finished: int = 1000
    shutdown_grace_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_input_seconds", "retain_finished"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class _Record:
    job: EditJob
    listener: Listener
    status: JobStatus
    submitted: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    last_event: float = 0.0


class Engine:
    """Owns the loaded backend and renders jobs one at a time, in submission order."""

    def __init__(self, backend: Backend, config: EngineConfig | None = None) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        self._limits = RenderLimits(max_input_seconds=self.config.max_input_seconds)
        self._jobs: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Record] = queue.Queue(self.config.max_queue)
        self._worker = threading.Thread(target=self._run, name="stepedit-render", daemon=True)
        self._stopping = False

    def start(self) -> None:
        """Loads the backend (once) and starts the render worker."""
        started = time.monotonic()
        self.backend.load()
        _LOG.info(
            "backend %s loaded on %s in %.2f s",
            self.backend.name,
            self.backend.device,
            time.monotonic() - started,
        )
        self._worker.start()

    def submit(self, job: EditJob, listener: Listener) -> tuple[JobStatus, bool]:
        """Queues a job, or returns the current status of a job with the same id.

        A known id is never rendered twice, so clients may resend requests over UDP.

        Returns:
            The job's status and whether this call created the job.

        Raises:
            UnsupportedEditError: the backend cannot render this edit.
            JobError: ``queue_full`` or ``shutting_down``.
        """
        with self._lock:
            known = self._jobs.get(job.job_id)
            if known is not None:
                return known.status, False
            if self._stopping:
                raise JobError("the engine is shutting down", "shutting_down")
            check_supported(self.backend, job.edit)
            record = _Record(job, listener, JobStatus(job.job_id, "queued"))
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                raise JobError(
                    f"{self.config.max_queue} jobs are already waiting; retry later", "queue_full"
                ) from None
            self._jobs[job.job_id] = record
            self._forget_old_jobs()
            # Still under the lock, so "accepted" always leaves before the first progress.
            accepted = record.status
            self._emit(record, accepted)
        return accepted, True

    def status(self, job_id: str) -> JobStatus:
        """The latest status of a job.

        Raises:
            JobError: ``unknown_job``.
        """
        with self._lock:
            return self._record(job_id).status

    def cancel(self, job_id: str) -> JobStatus:
        """Cancels a queued or running job; a finished job is left as it is.

        Returns:
            The status after the request (a running job reports ``cancelled`` once its
            render reaches its next progress point).
        """
        with self._lock:
            record = self._record(job_id)
            record.cancel.set()
            if record.status.state != "queued":
                return record.status
            status = self._finish(
                record, "cancelled", error=("cancelled", "cancelled by the client")
            )
        self._emit(record, status)
        return status

    def stop(self) -> None:
        """Takes no new jobs, cancels waiting ones, lets the running one finish within
        ``shutdown_grace_s`` and cancels it after that."""
        with self._lock:
            self._stopping = True
            records = list(self._jobs.values())
        for record in records:
            if record.status.state == "queued":
                self.cancel(record.job.job_id)
        if not self._worker.is_alive():
            return
        self._worker.join(self.config.shutdown_grace_s)
        if self._worker.is_alive():
            _LOG.warning("cancelling the running job to shut down")
            for record in records:
                record.cancel.set()
            self._worker.join()

    # -- internals -------------------------------------------------------------------------

    def _record(self, job_id: str) -> _Record:
        record = self._jobs.get(job_id)
        if record is None:
            raise JobError(f"no job with id {job_id!r}", "unknown_job")
        return record

    def _forget_old_jobs(self) -> None:
        finished = [k for k, r in self._jobs.items() if r.status.finished]
        for key in finished[: max(0, len(finished) - self.config.retain_finished)]:
            del self._jobs[key]

    def _finish(self, record: _Record, state: str, **fields: Any) -> JobStatus:
        record.status = replace(record.status, state=state, **fields)
        return record.status

    def _emit(self, record: _Record, status: JobStatus) -> None:
        try:
            record.listener(status)
        except Exception:  # a broken client must not stop the engine
            _LOG.exception("listener of job %s failed", status.job_id)

    def _progress(self, record: _Record, fraction: float, stage: str) -> None:
        if record.cancel.is_set():
            raise JobCancelled("cancelled by the client")
        now = time.monotonic()
        with self._lock:
            previous = record.status
            if stage == previous.stage and now - record.last_event < _PROGRESS_INTERVAL_S:
                return
            record.last_event = now
            status = record.status = replace(
                previous, state="running", progress=max(previous.progress, fraction), stage=stage
            )
        self._emit(record, status)

    def _run(self) -> None:
        while True:
            try:
                record = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping:
                    return
                continue
            if record.status.state == "queued":  # else cancelled while waiting
                self._render(record)

    def _render(self, record: _Record) -> None:
        job = record.job
        waited = time.monotonic() - record.submitted
        outcome: dict[str, Any]
        try:
            result = render_job(
                job, self.backend, self._limits, lambda f, s: self._progress(record, f, s)
            )
        except JobCancelled as e:
            outcome = dict(state="cancelled", error=(e.code, str(e)))
        except StepEditError as e:
            outcome = dict(state="error", error=(e.code, str(e)))
        except Exception as e:  # the worker must survive any backend bug
            _LOG.exception("job %s failed unexpectedly", job.job_id)
            outcome = dict(state="error", error=("internal", f"{type(e).__name__}: {e}"))
        else:
            result.timings["queued"] = round(waited, 4)
            outcome = dict(
                state="done",
                progress=1.0,
                stage="done",
                output_path=str(result.output_path),
                result=result.to_json(),
            )
        with self._lock:
            status = self._finish(record, **outcome)
        self._log_outcome(job, status, waited)
        self._emit(record, status)

    def _log_outcome(self, job: EditJob, status: JobStatus, waited: float) -> None:
        if status.state == "done" and status.result is not None:
            timings = status.result["timings"]
            _LOG.info(
                "job %s done: %s on %s (%.2f s audio) in %.2f s (waited %.2f s) -> %s",
                job.job_id,
                job.edit.type,
                job.input.name,
                status.result["duration"],
                timings["total"],
                waited,
                status.output_path,
            )
        else:
            code, message = status.error or ("internal", "")
            _LOG.info("job %s %s [%s]: %s", job.job_id, status.state, code, message)
