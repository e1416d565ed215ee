"""Jobs: a request checked into an ``EditJob``, and the name of its output file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.protocol import EditRequest, JobStatus
from engine import audio
from engine.backends.base import Backend
from engine.capabilities import check_supported
from engine.edits import EditSpec, edit_label, parse_edit
from engine.errors import InputError, OutputError

__all__ = ["EditJob", "Listener", "job_from_request", "output_stem"]

# Receives every status change of a job, in order, on the engine's event thread.
Listener = Callable[[JobStatus], None]


@dataclass(frozen=True)
class EditJob:
    """One accepted edit.

    Attributes:
        job_id: Client-chosen id, unique per engine.
        input: Absolute path of the source file.
        edit: The validated edit.
        start: Slice start in seconds.
        length: Slice length in seconds, ``None`` for the rest of the file.
        output_dir: Folder for the result; ``None`` means the input's folder.
        status_file: File the engine rewrites at every state change, or ``None``.
    """

    job_id: str
    input: Path
    edit: EditSpec
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


def job_from_request(job_id: str, request: EditRequest, backend: Backend) -> EditJob:
    """Every check a request passes before it is queued: vocabulary, support, paths.

    Cheap checks only (no audio is decoded), so obvious mistakes fail at once; the render
    checks the audio itself.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    job = EditJob(
        job_id=job_id,
        input=Path(request.input),
        edit=parse_edit(request.edit),
        start=request.start,
        length=request.length,
        output_dir=Path(request.output_dir) if request.output_dir else None,
        status_file=Path(request.status_file) if request.status_file else None,
    )
    if job.status_file is not None and not job.status_file.parent.is_dir():
        raise InputError(f"status_file folder does not exist: {job.status_file.parent}")
    audio.check_input_file(job.input)
    if not job.output_folder.is_dir():
        raise OutputError(f"output folder does not exist: {job.output_folder}")
    if not os.access(job.output_folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {job.output_folder}")
    check_supported(backend, job.edit)
    return job


def output_stem(job: EditJob) -> str:
    """``<source stem>.stepedit.<edit label>.<job id prefix>``, safe on every file system."""
    label = edit_label(job.edit).replace(" ", "")
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "", job.job_id)[:8] or "job"
    return f"{job.input.stem}.stepedit.{re.sub(r'[^A-Za-z0-9_+-]', '-', label)}.{safe_id}"
