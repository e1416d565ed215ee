"""``stepedit batch``: one edit on many files through a running engine, resumable.

Every audio file named (folders are searched recursively) becomes one engine job whose
result lands in the output folder, under the file's subfolder when it was found in a folder.
Each result is written atomically under a new name, so nothing is ever overwritten and an
interrupted batch leaves no partial file. An engine that cannot read the files (another
machine) gets each file's audio and sends the result back (``bridge.remote``): the CLI
decides as for ``stepedit edit`` (``bridge.remote_cli``) and passes ``run_job``.

Resuming: ``<output folder>/.stepedit-batch.json`` (rewritten atomically) maps each
(source path, size, modification time, edit) to its job id and, once done, its output. A
rerun skips the files whose output exists for the same edit; a job that was in flight when
the batch stopped is asked for again under its id, so the engine answers with the result it
finished meanwhile (or the job's progress) instead of rendering it twice. That holds for a
remote job too: its audio is offered again (the engine keeps uploads by content hash, so
nothing is sent twice), the engine answers for the job id, and the result it still holds is
downloaded. Only a result downloaded and released just before the batch died is rendered
again, under a new id. A changed source file or another edit is a new entry. One batch at a
time may use an output folder.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from bridge import protocol
from bridge.client import ClientError, JobOutcome, Progress, StepEditClient, new_job_id
from engine.audio import atomic_write_bytes
from engine.edits import parse_edit

__all__ = [
    "AUDIO_SUFFIXES",
    "MANIFEST_NAME",
    "BatchReport",
    "FileResult",
    "JobRunner",
    "find_audio_files",
    "run_batch",
]

_LOG = logging.getLogger(__name__)

# File suffixes a folder is searched for (case ignored): what the engine reads.
AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".bwf", ".flac", ".mp3", ".ogg", ".oga", ".aif", ".aiff"}
)
MANIFEST_NAME = ".stepedit-batch.json"
_MANIFEST_VERSION = 1
# Seconds between redraws of the terminal display.
_REDRAW_S = 0.2
# Errors about reaching the engine, not about the job: a job asked for again by its id
# after them fails as it is, instead of being tried under a new id.
_CLIENT_SIDE = frozenset({"no_engine", "unauthorized", "queue_full"})

State = Literal["ok", "skipped", "failed"]
# Runs one edit request to the end under a job id, reporting progress; returns the local
# result (``client.edit``, or ``bridge.remote_cli.run_job`` for an engine elsewhere).
JobRunner = Callable[[Mapping[str, Any], Progress, str], JobOutcome]


@dataclass(frozen=True)
class FileResult:
    """What became of one file.

    Attributes:
        source: The file.
        state: ``ok`` (rendered now), ``skipped`` (its output exists for this edit) or
            ``failed``.
        output: The result file, for ``ok`` and ``skipped``.
        reason: Why it failed: ``[code] message``.
        seconds: Time spent on it in this run.
    """

    source: Path
    state: State
    output: Path | None = None
    reason: str = ""
    seconds: float = 0.0


@dataclass
class BatchReport:
    """The files of one run, in input order; ``pending`` lists those an interruption left."""

    results: list[FileResult] = field(default_factory=list)
    pending: list[Path] = field(default_factory=list)

    def of_state(self, state: State) -> list[FileResult]:
        return [r for r in self.results if r.state == state]

    @property
    def failed(self) -> list[FileResult]:
        return self.of_state("failed")


@dataclass(frozen=True)
class _Task:
    """One file: where its result goes (absolute) and its manifest key."""

    source: Path
    output_dir: Path
    key: str


def find_audio_files(
    inputs: Iterable[Path], exclude: Path | None = None
) -> list[tuple[Path, Path]]:
    """The files to edit, each with the subfolder its result goes to.

    Args:
        inputs: Files (taken whatever their suffix) and folders (searched recursively for
            ``AUDIO_SUFFIXES``; hidden files and folders are left out).
        exclude: A folder whose files are never taken (the output folder).

    Returns:
        ``(absolute source, relative result folder)`` pairs, without duplicates, folders'
        files sorted by path. A path that does not exist is returned too, so that it is
        reported as failed.
    """
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None

    def take(source: Path, subfolder: Path) -> None:
        if source not in seen and not (skip is not None and source.is_relative_to(skip)):
            seen.add(source)
            found.append((source, subfolder))

    for given in inputs:
        path = given.expanduser().resolve()
        if not path.is_dir():
            take(path, Path())
            continue
        for root, folders, files in os.walk(path):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                    take(Path(root) / name, Path(root).relative_to(path))
    return found


def _file_key(source: Path, edit: Mapping[str, Any]) -> str:
    """Names one source file in one state under one edit (``""`` when it cannot be read)."""
    try:
        st = source.stat()
    except OSError:
        return ""
    identity = [str(source), st.st_size, st.st_mtime_ns, dict(edit)]
    text = json.dumps(identity, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class _Manifest:
    """``MANIFEST_NAME``: key -> ``{source, job_id, output?}``; rewritten atomically on
    every change, so a kill at any moment leaves the last complete version."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        # A run killed while rewriting the manifest leaves its temporary copy (one batch
        # per output folder at a time, so no other run is writing it).
        for leftover in folder.glob(f".{MANIFEST_NAME}.*.tmp"):
            leftover.unlink(missing_ok=True)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            _LOG.warning(
                "ignoring the unreadable %s (%s): every file is edited again", self.path, e
            )
            return
        if isinstance(data, dict) and data.get("version") == _MANIFEST_VERSION:
            entries = data.get("entries")
            self._entries = entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entries.get(key)
            return dict(entry) if isinstance(entry, dict) else {}

    def put(self, key: str, entry: dict[str, Any] | None) -> None:
        with self._lock:
            if entry is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = entry
            document = {"version": _MANIFEST_VERSION, "entries": self._entries}
            text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
            atomic_write_bytes(self.path, text.encode("utf-8"))


class _Display:
    """Overall and per-file progress: a redrawn block on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream, self._total = stream, total
        self._tty = stream.isatty()
        self._lock = threading.Lock()
        self._active: dict[Path, tuple[float, str]] = {}
        self._counts: dict[str, int] = {"ok": 0, "skipped": 0, "failed": 0}
        self._drawn = 0  # lines of the live block now on screen

    def progress(self, source: Path, fraction: float, stage: str) -> None:
        with self._lock:
            before = self._active.get(source)
            self._active[source] = (fraction, stage)
            if not self._tty and (before is None or before[1] != stage):
                self._write(f"{fraction:4.0%} {stage:<10} {source.name}\n")

    def finished(self, result: FileResult) -> None:
        with self._lock:
            self._active.pop(result.source, None)
            self._counts[result.state] += 1
            done = sum(self._counts.values())
            where = result.reason if result.state == "failed" else str(result.output)
            self._clear()
            self._write(f"[{done}/{self._total}] {result.state:<7} {result.source.name}: {where}\n")
            self._draw()

    def redraw(self) -> None:
        with self._lock:
            self._clear()
            self._draw()

    def close(self) -> None:
        with self._lock:
            self._clear()

    def _overall(self) -> str:
        counts = " ".join(f"{n} {state}" for state, n in self._counts.items())
        return f"{sum(self._counts.values())}/{self._total} files ({counts})"

    def _draw(self) -> None:
        if not self._tty:
            return
        lines = [
            f"  [{'#' * int(f * 20):<20}] {f:4.0%} {stage:<10} {source.name}"
            for source, (f, stage) in self._active.items()
        ]
        lines.append(self._overall())
        self._write("".join(line[:200] + "\n" for line in lines))
        self._drawn = len(lines)

    def _clear(self) -> None:
        if self._tty and self._drawn:
            self._write(f"\x1b[{self._drawn}F\x1b[J")  # up to the block's start, erase below
        self._drawn = 0

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class _Batch:
    """The shared state of one run: the manifest, the display, the jobs in flight."""

    def __init__(
        self,
        edit: Mapping[str, Any],
        manifest: _Manifest,
        display: _Display,
        connect: Callable[[], StepEditClient],
        run_job: JobRunner,
    ) -> None:
        self.edit = dict(edit)
        self.manifest, self.display, self.connect = manifest, display, connect
        self.run_job = run_job
        self.stop = threading.Event()
        self._in_flight: dict[str, Path] = {}
        self._lock = threading.Lock()

    def run(self, task: _Task) -> FileResult | None:
        """Edits one file; ``None`` when the batch stopped before it ended."""
        if self.stop.is_set():
            return None
        started = time.monotonic()
        result = self._edit(task)
        if result is None:
            return None
        result = FileResult(
            result.source, result.state, result.output, result.reason, time.monotonic() - started
        )
        self.display.finished(result)
        return result

    def _edit(self, task: _Task) -> FileResult | None:
        if not task.key:
            return FileResult(
                task.source, "failed", reason="[input_not_found] cannot read the file"
            )
        entry = self.manifest.get(task.key)
        if entry.get("output") and (output := task.output_dir / entry["output"]).is_file():
            return FileResult(task.source, "skipped", output)
        # A job in flight when an earlier run stopped is asked for under its id first.
        ids = [entry["job_id"]] if isinstance(entry.get("job_id"), str) else []
        ids.append(new_job_id())
        request = {"input": str(task.source), "edit": self.edit, "output_dir": str(task.output_dir)}
        for attempt, job_id in enumerate(ids):
            resumed = attempt < len(ids) - 1
            if self.stop.is_set():
                return None
            self.manifest.put(task.key, {"source": str(task.source), "job_id": job_id})
            try:
                path = self._run_job(task, job_id, request)
            except ClientError as e:
                if e.code == "cancelled" and self.stop.is_set():
                    self.manifest.put(task.key, None)  # the next run starts it afresh
                    return None
                if resumed and e.code not in _CLIENT_SIDE:
                    continue  # e.g. cancelled when the earlier run stopped
                self.manifest.put(task.key, None)
                return FileResult(task.source, "failed", reason=f"[{e.code}] {e}")
            if path.is_file():
                relative = os.path.relpath(path, task.output_dir)
                self.manifest.put(
                    task.key, {"source": str(task.source), "job_id": job_id, "output": relative}
                )
                return FileResult(task.source, "ok", path)
            if not resumed:
                self.manifest.put(task.key, None)
                reason = f"[output_missing] the engine wrote {path}, which is not there"
                return FileResult(task.source, "failed", reason=reason)
        raise AssertionError("unreachable")  # the last id returned

    def _run_job(self, task: _Task, job_id: str, request: Mapping[str, Any]) -> Path:
        with self._lock:
            self._in_flight[job_id] = task.source
        self.display.progress(task.source, 0.0, "queued")
        try:
            outcome = self.run_job(
                request, lambda f, s: self.display.progress(task.source, f, s), job_id
            )
        finally:
            with self._lock:
                self._in_flight.pop(job_id, None)
        return Path(outcome.output_path)

    def cancel_in_flight(self) -> None:
        """Asks the engine to cancel the jobs in flight; their workers then end."""
        with self._lock:
            job_ids = list(self._in_flight)
        if not job_ids:
            return
        try:
            with self.connect() as client:
                for job_id in job_ids:
                    client.query(protocol.ADDRESS["cancel"], job_id)
        except ClientError as e:
            _LOG.warning("could not cancel the jobs in flight: [%s] %s", e.code, e)


def run_batch(
    inputs: Sequence[Path],
    edit: Mapping[str, Any],
    output_dir: Path,
    *,
    jobs: int = 2,
    connect: Callable[[], StepEditClient],
    run_job: JobRunner | None = None,
    progress_stream: TextIO | None = None,
    summary_stream: TextIO | None = None,
) -> BatchReport:
    """Edits every audio file of ``inputs`` through the engine; resumable (module docstring).

    Args:
        inputs: Files and folders (searched recursively).
        edit: The request's ``edit`` object, the same for every file.
        output_dir: Folder for the results (created if missing).
        jobs: Files in flight at once.
        connect: Opens a client of the engine: the first ping, cancelling, and each file's
            job unless ``run_job`` is given.
        run_job: Runs one file's job (default: ``client.edit`` on a ``connect`` client,
            for an engine that reads the files itself).
        progress_stream: Where progress goes (default ``sys.stderr``).
        summary_stream: Where the summary table goes (default ``sys.stdout``).

    Returns:
        One result per file, and the files left when the batch was interrupted.

    Raises:
        ValueError: ``jobs`` < 1.
        engine.errors.EditError: the edit is invalid (checked before any file is sent).
        bridge.client.ClientError: no engine answers (checked first), or it refuses us.
        KeyboardInterrupt: after cancelling the jobs in flight and printing the summary.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    parse_edit(edit)
    with connect() as client:
        client.ping()
    output_dir = output_dir.expanduser().resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        _Task(source, output_dir / subfolder, _file_key(source, edit))
        for source, subfolder in find_audio_files(inputs, exclude=output_dir)
    ]
    display = _Display(progress_stream or sys.stderr, len(tasks))
    batch = _Batch(edit, _Manifest(output_dir), display, connect, run_job or _edit_on(connect))
    finished: dict[Path, FileResult] = {}
    interrupted = False
    futures: list[concurrent.futures.Future[FileResult | None]] = []
    pool = concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="stepedit-batch")
    try:
        for task in tasks:
            task.output_dir.mkdir(parents=True, exist_ok=True)
            futures.append(pool.submit(batch.run, task))
        waiting = set(futures)
        while waiting:
            done, waiting = concurrent.futures.wait(waiting, timeout=_REDRAW_S)
            display.redraw()
            for future in done:
                if (result := future.result()) is not None:
                    finished[result.source] = result
    except KeyboardInterrupt:
        interrupted = True
        batch.stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        batch.cancel_in_flight()
        for future in futures:  # the running ones end with their job's cancellation
            if not future.cancelled() and (result := future.result()) is not None:
                finished[result.source] = result
    finally:
        pool.shutdown(wait=True)
        display.close()
    report = BatchReport(
        [finished[t.source] for t in tasks if t.source in finished],
        [t.source for t in tasks if t.source not in finished],
    )
    _print_summary(report, summary_stream or sys.stdout)
    if interrupted:
        raise KeyboardInterrupt
    return report


def _edit_on(connect: Callable[[], StepEditClient]) -> JobRunner:
    """Runs each job with ``client.edit`` on a new client of ``connect``."""

    def run_job(request: Mapping[str, Any], on_progress: Progress, job_id: str) -> JobOutcome:
        with connect() as client:
            return client.edit(request, on_progress, job_id)

    return run_job


def _print_summary(report: BatchReport, stream: TextIO) -> None:
    """The table: one row per file (state, file, output or reason), then the counts."""
    rows: list[tuple[str, str, str]] = [
        (r.state, str(r.source), r.reason if r.state == "failed" else str(r.output))
        for r in report.results
    ]
    rows += [
        ("pending", str(source), "interrupted: run the batch again") for source in report.pending
    ]
    if rows:
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for state, source, what in rows:
            stream.write(f"{state:<{widths[0]}}  {source:<{widths[1]}}  {what}\n")
    counts = ", ".join(
        f"{len(report.of_state(state))} {state}" for state in ("ok", "skipped", "failed")
    )
    pending = f", {len(report.pending)} pending" if report.pending else ""
    stream.write(f"{len(rows)} files: {counts}{pending}\n")
    stream.flush()
