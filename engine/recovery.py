"""Journal recovery at start: what the engine does with each job the journal remembers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge.protocol import JobRequest
from engine import audio
from engine.backends.base import Backend
from engine.errors import JobError, StepEditError
from engine.jobs import Job, build_job, job_from_request, output_stem
from engine.journal import JournaledJob

__all__ = ["MAX_ATTEMPTS", "Placer", "Recovery", "recover"]

_LOG = logging.getLogger(__name__)

# Renders of one job that may be cut short by the engine's death before it gives up on it.
MAX_ATTEMPTS = 2

# The engine's view of a request: (request, owner) -> the request as its job reads it (an
# upload resolved to its file) and the input and output roots it is checked against.
Placer = Callable[[JobRequest, str], tuple[JobRequest, tuple[Path, ...], tuple[Path, ...]]]


@dataclass(frozen=True)
class Recovery:
    """What the engine does with one journaled job.

    Attributes:
        action: ``remember``: it had finished: answer its status and resends, never render
            it again. ``requeue``: render it. ``fail``: report it failed with ``error``.
        job: The job to remember, render or report.
        error: The error code and message of a ``fail``.
    """

    action: Literal["remember", "requeue", "fail"]
    job: Job
    error: tuple[str, str] | None = None


def recover(entry: JournaledJob, backend: Backend, place: Placer) -> Recovery | None:
    """Decides how to take up one journaled job; an unfinished one is checked again as a
    new request would be, and what its cut-short write left is removed.

    Args:
        entry: The job as the journal remembers it.
        backend: The engine's backend (an unfinished job must still be one it renders).
        place: The engine's placing of a request (without requiring the upload to exist:
            a finished job's upload may be gone).

    Returns:
        The action, with the job it applies to; ``None`` for a job that cannot be rebuilt
        (e.g. an edit this version no longer has), whose journal row the engine drops.
    """
    try:
        placed, input_roots, output_roots = place(entry.request, entry.owner)
        job = build_job(entry.job_id, placed)
    except StepEditError as e:
        _LOG.error("journaled job %r cannot be taken up: %s", entry.job_id, e)
        return None
    if entry.status.finished:
        return Recovery("remember", job)
    # Nobody else writes this job's output names, so its temporaries of any age are stale.
    for leftover in audio.remove_stale_temp_files(job.output_folder, 0, output_stem(job)):
        _LOG.info("removed %r, left by a write the engine's end cut short", str(leftover))
    try:
        if entry.status.state == "running" and entry.attempts >= MAX_ATTEMPTS:
            raise JobError(
                f"the engine stopped {entry.attempts} times while rendering this job; "
                "it is not tried again",
                "internal",
            )
        checked = job_from_request(
            entry.job_id, placed, backend, input_roots=input_roots, output_roots=output_roots
        )
    except StepEditError as e:
        return Recovery("fail", job, (e.code, f"not resumed after a restart: {e}"))
    _LOG.info("job %r resumed after a restart (was %s)", entry.job_id, entry.status.state)
    return Recovery("requeue", checked)
