"""The engine: the one way in for requests, one render worker, and the events they cause.

``Engine.submit`` takes a decoded request and does every check before queueing it; the
worker renders jobs one at a time in submission order; listeners (OSC replies, status files)
run in order on their own thread, outside the engine's lock and off the render thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.protocol import (
    JobRequest,
    JobStatus,
    build_result,
    build_transcript_result,
)
from engine import __version__
from engine.backends.base import Backend
from engine.capabilities import describe
from engine.edits import EditSpec
from engine.errors import InputError, JobCancelled, JobError, QueueFullError, StepEditError
from engine.jobs import Job, Listener, Transcription, job_from_request, output_stem
from engine.journal import Journal, JournaledJob
from engine.recovery import recover
from engine.state import CACHE_SUBDIR
from engine.status_files import StatusFiles
from engine.transfers import TransferLimits, TransferStore

if TYPE_CHECKING:
    from engine.render import WrittenEdit, WrittenTranscript
    from engine.text.cache import TranscriptCache

__all__ = ["MAX_GUARD_TRIES", "SEGMENT_SECONDS_RANGE", "Engine", "EngineConfig"]

_LOG = logging.getLogger(__name__)

# Progress events closer together than this are dropped, except at stage changes.
_PROGRESS_INTERVAL_S = 0.1
# Bounds of the queue_full retry hint, and the hint before any job has been rendered.
_MIN_RETRY_HINT_S, _MAX_RETRY_HINT_S, _FIRST_RETRY_HINT_S = 0.25, 60.0, 1.0
# The transfer store's folder inside the state folder (caches go in CACHE_SUBDIR).
_TRANSFERS_SUBDIR = "transfers"
# The most bytes a second of uploaded audio may take: 8 channels of 48 kHz float32, as
# ``audio.read_slice`` bounds a slice by default; plus room for a header.
_UPLOAD_BYTES_PER_S, _UPLOAD_HEADER_BYTES = 8 * 48_000 * 4, 1 << 16
# How often the worker looks whether the running job was cancelled.
_CANCEL_POLL_S = 0.05
# How long stop() waits for the worker to report a cancelled render (it abandons the
# render after _CANCEL_POLL_S) before shutting down without it.
_ABANDON_S = 1.0
_CLIENT_CANCEL = ("cancelled", "cancelled by the client")
_SHUTDOWN_CANCEL = ("shutting_down", "the engine stopped before this job finished; send it again")
# Each try of a checked generation is a whole generation: more than this is never worth it.
MAX_GUARD_TRIES = 10
# Segment lengths an engine may set: at ~42 audio tokens a second, a 90 s segment's prompt
# and generation take ~7,500 of the model's 8,192 tokens; under 5 s a segment is mostly cuts.
SEGMENT_SECONDS_RANGE = (5.0, 90.0)


@dataclass(frozen=True)
class EngineConfig:
    """Engine limits.

    Attributes:
        max_queue: Jobs that may wait behind the running one.
        max_input_seconds: Longest slice accepted.
        retain_finished: Finished jobs remembered for status queries and resends.
        shutdown_grace_s: How long a running job may finish when the engine stops before
            it is cancelled (0: at once, so a shutdown takes at most about a second).
        state_dir: Folder for what outlives the process (the job journal, the transcript
            cache); ``None`` keeps nothing, so a restart forgets every job.
        input_roots: Folders inputs must lie in; empty allows any readable file.
        output_roots: Folders outputs and status files must lie in; empty allows any.
        transfer_bytes: Budget of the uploads and results kept in the state folder for
            clients that cannot share files with the engine.
        guard_max_wer: Word error rate up to which a checked generation is kept (as
            ``engine.guard.Guard``'s default; 0 to 1).
        guard_tries: Generations of a checked edit at most (1 to ``MAX_GUARD_TRIES``).
        segment_seconds: Longest slice a token backend edits in one piece, overriding the
            backend's own (``SEGMENT_SECONDS_RANGE``); ``None`` keeps the backend's.
    """

    max_queue: int = 32
    max_input_seconds: float = 600.0
    retain_finished: int = 1000
    shutdown_grace_s: float = 0.0
    state_dir: Path | None = None
    input_roots: tuple[Path, ...] = ()
    output_roots: tuple[Path, ...] = ()
    transfer_bytes: int = 4 << 30
    guard_max_wer: float = 0.2
    guard_tries: int = 3
    segment_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_input_seconds", "retain_finished", "transfer_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.guard_max_wer <= 1:
            raise ValueError(f"guard_max_wer must be 0 to 1, got {self.guard_max_wer}")
        if not 1 <= self.guard_tries <= MAX_GUARD_TRIES:
            raise ValueError(f"guard_tries must be 1 to {MAX_GUARD_TRIES}, got {self.guard_tries}")
        low, high = SEGMENT_SECONDS_RANGE
        if self.segment_seconds is not None and not low <= self.segment_seconds <= high:
            raise ValueError(
                f"segment_seconds must be {low:g} to {high:g} s, got {self.segment_seconds:g} "
                "(shorter segments leave the model too little speech; longer ones do not fit "
                "a prompt and its generation in Step-Audio-EditX's 8192-token context)"
            )


@dataclass
class _Record:
    job: Job
    listener: Listener
    status: JobStatus
    owner: str = ""
    submitted: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: tuple[str, str] = _CLIENT_CANCEL
    last_event: float = 0.0


def _nobody(status: JobStatus) -> None:
    """The listener of a job recovered after a restart, until its client sends it again."""


# One status change to deliver: to whom, which status file, what.
_Event = tuple[Listener, Path | None, JobStatus]


class Engine:
    """Owns the loaded backend and renders jobs one at a time, in submission order."""

    def __init__(self, backend: Backend, config: EngineConfig | None = None) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        self._jobs: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Record] = queue.Queue()  # bounded by _enqueue
        self._events: queue.Queue[_Event | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="stepedit-render", daemon=True)
        self._notifier = threading.Thread(
            target=self._deliver_events, name="stepedit-events", daemon=True
        )
        self._stopping = False
        self._events_closed = False
        self._transcripts: TranscriptCache | None = None
        self._journal = Journal(self.config.state_dir) if self.config.state_dir else None
        self._status_files = StatusFiles(
            self._journal.status_files() if self._journal else (),
            on_create=self._journal.claimed if self._journal else None,
        )
        self._render_seconds: deque[float] = deque(maxlen=8)  # recent renders, for hints
        self._taken: _Record | None = None  # the job the worker took from the queue
        self.transfers = self._transfer_store()

    @property
    def version(self) -> str:
        return __version__

    def start(self) -> None:
        """Loads the backend (once), takes up the journaled jobs, starts the render worker."""
        started = time.monotonic()
        self.backend.load()
        _LOG.info(
            "backend %s loaded on %s in %.2f s",
            self.backend.name,
            self.backend.device,
            time.monotonic() - started,
        )
        if self._journal is not None:
            with self._lock:
                for entry in self._journal.jobs():
                    self._recover(entry)
        self._notifier.start()
        self._worker.start()

    def capabilities(self) -> dict[str, Any]:
        """The capability listing of this engine's backend and every registered one."""
        return describe(self.backend)

    def submit(
        self, job_id: str, request: JobRequest, listener: Listener, owner: str = ""
    ) -> JobStatus:
        """Checks a request (an edit or a transcription) and queues it; the one way in.

        Every outcome reaches ``listener`` (and the request's status file): ``queued`` then
        the job's progress and end for a new job; the latest status for a resend of a known
        id, which is never rendered twice (the resender hears the job's later events); an
        ``error`` status for a rejected request.

        Args:
            owner: Who sends it (the server passes the authenticated key); only the same
                owner may resend, query or cancel the job.

        Returns:
            The status the listener receives first.
        """
        with self._lock:
            known = self._resent(job_id, listener, owner)
        if known is not None:
            return known
        status_file = Path(request.status_file) if request.status_file else None
        try:
            placed, input_roots, output_roots = self._placed(request, owner)
            job = job_from_request(
                job_id, placed, self.backend, input_roots=input_roots, output_roots=output_roots
            )
            if job.status_file is not None and self._status_files.foreign(job.status_file):
                raise InputError(
                    f"status_file {str(job.status_file)!r} already exists; the engine "
                    "writes only status files it creates: name a new path"
                )
            with self._lock:
                # Checked again: the same id may have arrived while this one was checked.
                return self._resent(job_id, listener, owner) or self._enqueue(
                    job, request, listener, owner
                )
        except StepEditError as e:
            _LOG.info("rejected job %r [%s]: %r", job_id, e.code, str(e))
            status = JobStatus(
                job_id, "error", error=(e.code, str(e)), retry_after=getattr(e, "retry_after", None)
            )
            if status_file is not None and (
                e.code == "forbidden_path" or not status_file.parent.is_dir()
            ):
                status_file = None
            self._emit((listener, status_file, status))
            return status

    def status(self, job_id: str, owner: str = "") -> JobStatus:
        """The latest status of a job; an ``unknown_job`` error for an id never seen (or
        owned by someone else)."""
        with self._lock:
            self._supervise_worker()
            record = self._owned(job_id, owner)
        return record.status if record else _unknown(job_id)

    def cancel(self, job_id: str, owner: str = "") -> JobStatus:
        """Cancels a queued or running job of ``owner``; a finished job is left as it is.

        Returns:
            The status after the request (a running job reports ``cancelled`` once its
            render reaches its next progress point).
        """
        with self._lock:
            record = self._owned(job_id, owner)
            if record is None:
                return _unknown(job_id)
            return self._cancel(record, _CLIENT_CANCEL)

    def stop(self) -> None:
        """Takes no new jobs, cancels waiting ones, lets the running one finish within
        ``shutdown_grace_s`` and cancels it after that (its render is abandoned within a
        second if it does not stop); then delivers the last events."""
        with self._lock:
            self._stopping = True
            records = list(self._jobs.values())
            for record in records:
                if record.status.state == "queued":
                    self._cancel(record, _SHUTDOWN_CANCEL)
        if self._worker.is_alive():
            self._worker.join(self.config.shutdown_grace_s)
            with self._lock:
                running = [r for r in records if r.status.state == "running"]
                for record in running:
                    self._cancel(record, _SHUTDOWN_CANCEL)
            if running:
                _LOG.warning("cancelled the running job to shut down")
            self._worker.join(_ABANDON_S)
            if self._worker.is_alive():  # a backend that never checks for cancellation
                _LOG.error("the running job did not stop; shutting down without it")
        if self._notifier.is_alive():
            self._events_closed = True  # later events (rejections) are delivered directly
            self._events.put(None)
            self._notifier.join()

    def result_files(self, job_id: str, owner: str = "") -> list[Path]:
        """The files a finished job of ``owner`` wrote (for downloads): its result, then
        the pass files its result lists (``decode_passes``), in order.

        Raises:
            JobError: ``unknown_job`` for a job that is not ``owner``'s or not done.
        """
        status = self.status(job_id, owner)
        if status.state != "done":
            raise JobError(f"job {job_id!r} has no result (it is {status.state})")
        passes = (status.result or {}).get("passes", ())
        return [Path(status.output_path), *map(Path, passes)]

    # -- internals (the lock is held where a name says so) ---------------------------------

    def _transfer_store(self) -> TransferStore | None:
        """The store of uploads and results in the state folder (none without one)."""
        config = self.config
        if config.state_dir is None:
            return None
        most = int(config.max_input_seconds * _UPLOAD_BYTES_PER_S) + _UPLOAD_HEADER_BYTES
        limits = TransferLimits(
            max_bytes=config.transfer_bytes,
            max_upload_bytes=min(most, config.transfer_bytes),
            max_seconds=config.max_input_seconds,
        )
        return TransferStore(config.state_dir / _TRANSFERS_SUBDIR, limits, self._files_in_use)

    def _files_in_use(self) -> set[Path]:
        """The inputs of jobs not finished yet (the transfer store never evicts them)."""
        with self._lock:
            return {r.job.input for r in self._jobs.values() if not r.status.finished}

    def _placed(
        self, request: JobRequest, owner: str, check: bool = True
    ) -> tuple[JobRequest, tuple[Path, ...], tuple[Path, ...]]:
        """The request as its job reads it, and the input and output roots it is checked
        against. A request on an upload reads the upload of ``owner`` (the only input it
        may name) and, without an output folder, writes into the key's results.

        Args:
            check: Whether the upload must exist (not for jobs recovered as finished).

        Raises:
            StepEditError: ``input_not_found`` for an upload this key does not hold;
                ``bad_request`` on an engine without a state folder.
        """
        config = self.config
        if request.input_upload is None:
            return request, config.input_roots, config.output_roots
        if self.transfers is None:
            raise InputError("this engine keeps no uploads: it runs without a state folder")
        path = self.transfers.upload_path(owner, request.input_upload, check)
        output_roots = config.output_roots
        if request.output_dir is None:
            results = self.transfers.results_dir(owner)
            request = replace(request, output_dir=str(results))
            output_roots = (*output_roots, results) if output_roots else ()
        return replace(request, input=str(path)), (path,), output_roots

    def _cancel(self, record: _Record, reason: tuple[str, str]) -> JobStatus:
        """Cancels a queued job at once, a running one through the worker; under the lock."""
        if record.status.finished:
            return record.status
        record.cancel_reason = reason
        record.cancel.set()
        if record.status.state != "queued":
            return record.status
        return self._update(record, "cancelled", error=reason)

    def _recover(self, entry: JournaledJob) -> None:
        """Takes up one journaled job at start (as ``engine.recovery.recover`` decides);
        under the lock."""
        recovery = recover(
            entry, self.backend, lambda request, owner: self._placed(request, owner, check=False)
        )
        if recovery is None:
            self._journal_forget([entry.job_id])
            return
        record = _Record(recovery.job, _nobody, entry.status, entry.owner)
        self._jobs[entry.job_id] = record
        if recovery.action == "remember":
            return
        record.status = JobStatus(entry.job_id, "queued")
        if recovery.action == "fail":
            self._update(record, "error", error=recovery.error)
            return
        self._update(record, "queued")
        self._queue.put(record)

    def _owned(self, job_id: str, owner: str) -> _Record | None:
        """The record of ``job_id`` if ``owner`` owns it; under the lock."""
        record = self._jobs.get(job_id)
        return record if record is not None and record.owner == owner else None

    def _resent(self, job_id: str, listener: Listener, owner: str) -> JobStatus | None:
        """For a known id, queues its latest status to ``listener``, which also hears the
        job's later events (the client may have restarted); under the lock."""
        known = self._jobs.get(job_id)
        if known is None:
            return None
        if known.owner != owner:
            status = JobStatus(
                job_id, "error", error=("bad_request", f"job id {job_id!r} is taken: pick another")
            )
            self._emit((listener, None, status))
            return status
        known.listener = listener
        self._emit((listener, known.job.status_file, known.status))
        return known.status

    def _enqueue(self, job: Job, request: JobRequest, listener: Listener, owner: str) -> JobStatus:
        """Queues a checked job; under the lock, so "queued" always precedes its progress."""
        if self._stopping:
            raise JobError("the engine is shutting down", "shutting_down")
        self._supervise_worker()
        if self._queue.qsize() >= self.config.max_queue:
            raise QueueFullError(
                f"{self.config.max_queue} jobs are already waiting; retry later",
                self._retry_hint(),
            )
        record = _Record(job, listener, JobStatus(job.job_id, "queued"), owner)
        if self._journal is not None:  # first: a job is accepted once it is journaled
            try:
                self._journal.accepted(job.job_id, owner, request, record.status)
            except OSError as e:
                raise JobError(f"the engine cannot accept jobs now: {e}", "internal") from e
        self._queue.put(record)
        self._jobs[job.job_id] = record
        self._emit((listener, job.status_file, record.status))
        return record.status

    def _supervise_worker(self) -> None:
        """Restarts a render worker that died (a bug past ``Exception``), so accepted jobs
        never wait forever; the job it had taken is reported failed."""
        if not self._worker.ident or self._worker.is_alive():
            return  # not started yet, or fine
        _LOG.error("the render worker died; starting a new one")
        taken = self._taken
        if taken is not None and not taken.status.finished:
            self._update(taken, "error", error=("internal", "the render worker died"))
        self._worker = threading.Thread(target=self._run, name="stepedit-render", daemon=True)
        self._worker.start()

    def _retry_hint(self) -> float:
        """Seconds until the queue likely has room: about one render, as recent ones took."""
        recent = self._render_seconds
        typical = sum(recent) / len(recent) if recent else _FIRST_RETRY_HINT_S
        return min(max(typical, _MIN_RETRY_HINT_S), _MAX_RETRY_HINT_S)

    def _forget_old_jobs(self) -> None:
        finished = [k for k, r in self._jobs.items() if r.status.finished]
        forgotten = finished[: max(0, len(finished) - self.config.retain_finished)]
        for key in forgotten:
            del self._jobs[key]
        self._journal_forget(forgotten)

    def _journal_forget(self, job_ids: list[str]) -> None:
        if self._journal is not None and job_ids:
            try:
                self._journal.forget(job_ids)
            except OSError as e:  # kept rows are forgotten at the next chance
                _LOG.error("%s", e)

    def _update(self, record: _Record, state: str, **fields: Any) -> JobStatus:
        """Sets a record's status, journals a change of state and queues its event; call
        with the lock held."""
        previous = record.status.state
        record.status = replace(record.status, state=state, **fields)
        if self._journal is not None and state != previous:
            try:
                if state == "running":
                    self._journal.started(record.status)
                else:
                    self._journal.changed(record.status)
            except OSError as e:  # the job goes on; only a restart would miss this change
                _LOG.error("%s", e)
        if record.status.finished:
            self._forget_old_jobs()
        self._emit((record.listener, record.job.status_file, record.status))
        return record.status

    def _emit(self, event: _Event) -> None:
        if self._events_closed:
            self._deliver(event)
        else:
            self._events.put(event)

    def _deliver_events(self) -> None:
        while (event := self._events.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: _Event) -> None:
        listener, status_file, status = event
        # The file first: a client that hears "done" may read it at once.
        if status_file is not None:
            self._status_files.write(status_file, status)
        try:
            listener(status)
        except Exception:  # a broken client must not stop the engine
            _LOG.exception("listener of job %r failed", status.job_id)

    def _progress(self, record: _Record, fraction: float, stage: str) -> None:
        if record.cancel.is_set():
            raise JobCancelled("cancelled by the client")
        now = time.monotonic()
        with self._lock:
            previous = record.status
            if stage == previous.stage and now - record.last_event < _PROGRESS_INTERVAL_S:
                return
            record.last_event = now
            self._update(record, "running", progress=max(previous.progress, fraction), stage=stage)

    def _run(self) -> None:
        while True:
            try:
                record = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping:
                    return
                continue
            if record.status.state != "queued":  # cancelled while waiting
                continue
            self._taken = record
            try:
                self._render(record)
            except Exception:  # a bug after the render (reporting, logging): keep working
                _LOG.exception("render worker: job %r", record.job.job_id)
            self._taken = None

    def _transcript_cache(self) -> TranscriptCache | None:
        """The transcript cache in the state folder, opened by the first job (render thread)."""
        if self._transcripts is None and self.config.state_dir is not None:
            from engine.text.cache import TranscriptCache

            self._transcripts = TranscriptCache(self.config.state_dir / CACHE_SUBDIR)
        return self._transcripts

    def _render(self, record: _Record) -> None:
        """Renders one job on its own thread and reports it; a render still going a moment
        after its job is cancelled is abandoned: the job is reported at once, the render
        ends on its thread (at its next progress point), and the next job waits for it."""
        job = record.job
        started = time.monotonic()
        waited = started - record.submitted
        work: Future[tuple[Path, dict[str, Any]]] = Future()
        threading.Thread(
            target=_fulfil,
            args=(work, lambda: self._work(record, waited)),
            name="stepedit-render-job",
            daemon=True,
        ).start()
        while not futures.wait([work], _CANCEL_POLL_S).done:
            if record.cancel.is_set():
                break
        if work.done():
            outcome = self._outcome(record, work)
            self._render_seconds.append(time.monotonic() - started)
        else:
            outcome = dict(state="cancelled", error=record.cancel_reason)
        with self._lock:
            status = self._update(record, **outcome)
        _log_outcome(job, status, waited)
        if not work.done() and not self._stopping:
            futures.wait([work])  # one render at a time
            _remove_late_output(job, work)

    @staticmethod
    def _outcome(record: _Record, work: Future[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
        """The final status fields of a finished render."""
        try:
            path, result = work.result()
        except JobCancelled:
            return dict(state="cancelled", error=record.cancel_reason)
        except StepEditError as e:
            return dict(state="error", error=(e.code, str(e)))
        except BaseException as e:  # the engine survives any backend bug, native ones too
            _LOG.error("job %r failed unexpectedly", record.job.job_id, exc_info=e)
            return dict(state="error", error=("internal", f"{type(e).__name__}: {e}"))
        return dict(state="done", progress=1.0, stage="done", output_path=str(path), result=result)

    def _work(self, record: _Record, waited: float) -> tuple[Path, dict[str, Any]]:
        """Does a job's work; returns the file written and the result JSON."""
        # The render stack (and its DSP imports) loads with the first job, not the server.
        from engine.guard import Guard
        from engine.render import render_file, transcribe_file

        job, work = record.job, record.job.work
        where: dict[str, Any] = dict(
            source=job.input,
            start=job.start,
            length=job.length,
            output_dir=job.output_folder,
            stem=output_stem(job),
            max_input_seconds=self.config.max_input_seconds,
            progress=lambda f, s: self._progress(record, f, s),
            # Word edits, and edits whose backend reads the slice's text, transcribe it.
            transcripts=self._transcript_cache(),
        )
        if isinstance(work, Transcription):
            heard = transcribe_file(language=work.language, text=work.text, **where)
            return heard.path, _transcript_json(job, heard, waited)
        config = self.config
        written = render_file(
            self.backend,
            work,
            **where,
            guard=Guard(config.guard_max_wer, config.guard_tries),
            segment_seconds=config.segment_seconds,
        )
        return written.path, _result_json(job, work, written, self.backend.name, waited)


def _result_json(
    job: Job, edit: EditSpec, written: WrittenEdit, backend: str, queued: float
) -> dict[str, Any]:
    return build_result(
        duration=written.duration,
        sample_rate=written.sample_rate,
        channels=written.channels,
        backend=backend,
        edit={"type": edit.type, "option": edit.option, "iterations": edit.iterations},
        input=str(job.input),
        start=job.start,
        length=job.length,
        timings={**written.timings, "queued": queued},
        extra=written.info,
    )


def _transcript_json(job: Job, heard: WrittenTranscript, queued: float) -> dict[str, Any]:
    return build_transcript_result(
        duration=heard.duration,
        sample_rate=heard.sample_rate,
        channels=heard.channels,
        input=str(job.input),
        start=job.start,
        length=job.length,
        timings={**heard.timings, "queued": queued},
        transcript=heard.transcript.to_json(job.start),
        cache="hit" if heard.cache_hit else "miss",
    )


def _fulfil(future: Future[Any], work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as e:  # handed to the worker, which reports it
        future.set_exception(e)


def _remove_late_output(job: Job, work: Future[tuple[Path, dict[str, Any]]]) -> None:
    """Removes the files of an abandoned render that finished after all: its result and
    the passes it wrote beside it (``decode_passes``). Its job was reported cancelled, so
    nobody expects them; the render created each one, never overwriting a file."""
    if work.exception() is None:
        path, result = work.result()
        for written in (path, *map(Path, result.get("passes", ()))):
            written.unlink(missing_ok=True)
            _LOG.info(
                "job %r was cancelled while its render finished: removed %r",
                job.job_id,
                str(written),
            )


def _unknown(job_id: str) -> JobStatus:
    return JobStatus(job_id, "error", error=("unknown_job", f"no job with id {job_id!r}"))


def _log_outcome(job: Job, status: JobStatus, waited: float) -> None:
    # Client strings (ids, paths, messages naming them) are quoted: none can forge a line.
    if status.state == "done" and status.result is not None:
        _LOG.info(
            "job %r done: %s on %r (%.2f s audio) in %.2f s (waited %.2f s) -> %r",
            job.job_id,
            job.work.type if isinstance(job.work, EditSpec) else "transcribe",
            job.input.name,
            status.result["duration"],
            status.result["timings"]["total"],
            waited,
            status.output_path,
        )
    else:
        code, message = status.error or ("internal", "")
        _LOG.info("job %r %s [%s]: %r", job.job_id, status.state, code, message)
