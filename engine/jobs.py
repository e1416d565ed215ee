"""Jobs: a request checked into a ``Job`` (an edit or a transcription), and its output name."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.protocol import EditRequest, JobRequest, JobStatus, TranscribeRequest
from engine import audio
from engine.backends.base import Backend
from engine.capabilities import check_supported
from engine.edits import EditSpec, edit_label, parse_edit
from engine.errors import EditError, InputError, OutputError
from engine.roots import resolve_within
from engine.text.transcript import LANGUAGES

__all__ = ["Job", "Listener", "Transcription", "build_job", "job_from_request", "output_stem"]

# Receives every status change of a job, in order, on the engine's event thread.
Listener = Callable[[JobStatus], None]


@dataclass(frozen=True)
class Transcription:
    """What a transcription job asks for.

    Attributes:
        language: ``auto``, ``en`` or ``zh``.
        text: The slice's transcript when known; its words are aligned, not recognised.
    """

    language: str = "auto"
    text: str = ""

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise EditError(f"unknown language {self.language!r}; allowed: {', '.join(LANGUAGES)}")


@dataclass(frozen=True)
class Job:
    """One accepted job.

    Attributes:
        job_id: Client-chosen id, unique per engine.
        input: Absolute path of the source file.
        work: The validated edit, or the transcription asked for.
        start: Slice start in seconds.
        length: Slice length in seconds, ``None`` for the rest of the file.
        output_dir: Folder for the result; ``None`` means the input's folder.
        status_file: File the engine rewrites at every state change, or ``None``.
    """

    job_id: str
    input: Path
    work: EditSpec | Transcription
    start: float = 0.0
    length: float | None = None
    output_dir: Path | None = None
    status_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id must not be empty")

    @property
    def output_folder(self) -> Path:
        return self.output_dir or self.input.parent


def job_from_request(
    job_id: str,
    request: JobRequest,
    backend: Backend,
    *,
    input_roots: Sequence[Path] = (),
    output_roots: Sequence[Path] = (),
) -> Job:
    """Every check a request passes before it is queued: vocabulary, support, roots, paths.

    Cheap checks only (no audio is decoded), so obvious mistakes fail at once; the render
    checks the audio itself. Paths are checked against the roots (empty: anywhere) before
    anything else looks at them.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    job = build_job(job_id, request, input_roots=input_roots, output_roots=output_roots)
    if job.status_file is not None and not job.status_file.parent.is_dir():
        raise InputError(f"status_file folder does not exist: {job.status_file.parent}")
    audio.check_input_file(job.input)
    if not job.output_folder.is_dir():
        raise OutputError(f"output folder does not exist: {job.output_folder}")
    if not os.access(job.output_folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {job.output_folder}")
    if isinstance(job.work, EditSpec):
        check_supported(backend, job.work)
    return job


def build_job(
    job_id: str,
    request: JobRequest,
    *,
    input_roots: Sequence[Path] = (),
    output_roots: Sequence[Path] = (),
) -> Job:
    """The ``Job`` a request describes, checked for vocabulary and roots only (no file is
    looked at): for requests already accepted once, such as journaled ones.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    work: EditSpec | Transcription
    if isinstance(request, EditRequest):
        work = parse_edit(request.edit)
    elif isinstance(request, TranscribeRequest):
        work = Transcription(request.language.lower(), request.text)
    else:
        raise TypeError(f"not a job request: {request!r}")
    source = resolve_within(Path(request.input), input_roots, "input")
    output_dir, status_file = (
        resolve_within(Path(path), output_roots, "output") if path else None
        for path in (request.output_dir, request.status_file)
    )
    if output_dir is None:  # the input's folder: an output root must hold it too
        resolve_within(source.parent, output_roots, "output")
    return Job(
        job_id=job_id,
        input=source,
        work=work,
        start=request.start,
        length=request.length,
        output_dir=output_dir,
        status_file=status_file,
    )


def output_stem(job: Job) -> str:
    """``<source stem>.stepedit.<label>.<job id prefix>``, safe on every file system; the
    label is the edit's, or ``transcript``."""
    work = job.work
    label = edit_label(work).replace(" ", "") if isinstance(work, EditSpec) else "transcript"
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "", job.job_id)[:8] or "job"
    return f"{job.input.stem}.stepedit.{re.sub(r'[^A-Za-z0-9_+-]', '-', label)}.{safe_id}"
