"""One job's render: read the slice -> backend -> fit rate/channels/loudness -> atomic write."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import audio
from engine.backends import REGISTRY
from engine.backends.base import Backend, Progress, RenderBackend, Rendered, TokenBackend
from engine.edits import EditSpec, edit_label
from engine.errors import BackendError, EditError, OutputError, UnsupportedEditError

if TYPE_CHECKING:
    from engine.jobs import EditJob

__all__ = [
    "RenderLimits",
    "RenderResult",
    "check_request_paths",
    "check_supported",
    "fit_to_source",
    "output_stem",
    "render_job",
    "renders",
]

# Share of the job's progress bar each step takes; the backend gets the middle.
_READ_END, _BACKEND_END = 0.05, 0.95


@dataclass(frozen=True)
class RenderLimits:
    """Limits applied to every render."""

    max_input_seconds: float = 600.0


@dataclass
class RenderResult:
    """A finished render; ``to_json()`` is the result JSON of ``/stepedit/done``."""

    output_path: Path
    duration: float
    sample_rate: int
    channels: int
    backend: str
    job: EditJob
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        edit = self.job.edit
        return {
            "duration": round(self.duration, 6),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "backend": self.backend,
            "edit": {"type": edit.type, "option": edit.option, "iterations": edit.iterations},
            "input": str(self.job.input),
            "start": self.job.start,
            "length": self.job.length,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            **self.info,
        }


def renders(backend: type[Backend], edit: EditSpec) -> bool:
    """Whether a backend class declares this edit type and option.

    A paralinguistic edit without an option carries its tags inline in ``target_text``,
    which backends declare with ``tagged_text``.
    """
    options = backend.edits.get(edit.type)
    if options is None:
        return False
    if edit.type == "paralinguistic" and not edit.option:
        return backend.tagged_text
    return not options or edit.option in options


def check_supported(backend: Backend, edit: EditSpec) -> None:
    """Raises ``UnsupportedEditError`` unless ``backend`` renders this type and option,
    naming the registered backends that do."""
    if renders(type(backend), edit):
        return
    others = [n for n, cls in REGISTRY.items() if n != backend.name and renders(cls, edit)]
    what = f"{edit.type} {edit.option!r}" if edit.option else edit.type
    if edit.type == "paralinguistic" and not edit.option:
        what = "paralinguistic tags inline in target_text"
    where = (
        f"backends that support it: {', '.join(others)}"
        if others
        else "no installed backend supports it yet"
    )
    raise UnsupportedEditError(f"the {backend.name} backend cannot render {what}; {where}")


def output_stem(job: EditJob) -> str:
    """``<source stem>.stepedit.<edit label>.<job id prefix>``, safe on every file system."""
    label = edit_label(job.edit).replace(" ", "")
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "", job.job_id)[:8] or "job"
    return f"{job.input.stem}.stepedit.{re.sub(r'[^A-Za-z0-9_+-]', '-', label)}.{safe_id}"


def _backend_stage(progress: Progress, start: float, end: float) -> Progress:
    """Maps a backend's own 0..1 progress onto ``[start, end]`` of the job's bar."""
    return lambda f, stage: progress(start + (end - start) * min(max(f, 0.0), 1.0), stage)


def _run_backend(
    backend: Backend, samples: np.ndarray, rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    if isinstance(backend, TokenBackend):
        # Each iteration re-tokenises the previous pass's audio, as the official pipeline does.
        rendered = Rendered(samples, rate)
        loudness_change = 0.0  # each pass reports its change against its own input
        for i in range(edit.iterations):
            step = _backend_stage(progress, i / edit.iterations, (i + 1) / edit.iterations)
            prompt = backend.tokenize(rendered.audio, rendered.sample_rate, step)
            generated = backend.generate(prompt, edit, step)
            rendered = backend.decode(generated, prompt, step)
            loudness_change += rendered.loudness_offset_db
        rendered.loudness_offset_db = loudness_change
        return rendered
    if isinstance(backend, RenderBackend):
        progress(0.0, "render")
        return backend.render(samples, rate, edit, progress)
    raise BackendError(f"backend {backend.name!r} implements neither render nor tokenize")


def _check_positions(edit: EditSpec, duration: float) -> None:
    late = [p for p in edit.positions if p > duration]
    if late:
        raise EditError(
            f"insertion position(s) {late} s lie past the end of the {duration:.3f} s slice"
        )


def fit_to_source(
    rendered: Rendered, source_rate: int, channels: int, target_lufs: float
) -> np.ndarray:
    """Brings the backend's output to the source's rate, channels and loudness.

    Args:
        rendered: What the backend returned.
        source_rate: Rate of the source slice in Hz.
        channels: Channel count of the source.
        target_lufs: Loudness of the source slice; the result gets this plus the
            backend's ``loudness_offset_db``.

    Returns:
        ``float32 (channels, samples)`` at ``source_rate``.

    Raises:
        BackendError: when the backend returned no samples, a bad shape, or NaN/inf.
    """
    out = np.asarray(rendered.audio, dtype=np.float32)
    if out.ndim == 1:
        out = out[np.newaxis, :]
    if out.ndim != 2 or out.shape[-1] == 0:
        raise BackendError(f"backend returned audio of shape {out.shape}; expected (channels, n)")
    if not np.all(np.isfinite(out)):
        raise BackendError("backend returned NaN or infinite samples")
    out = audio.resample(out, rendered.sample_rate, source_rate)
    out = audio.fit_channels(out, channels)
    return audio.match_loudness(out, source_rate, target_lufs + rendered.loudness_offset_db)


def render_job(
    job: EditJob,
    backend: Backend,
    limits: RenderLimits,
    progress: Callable[[float, str], None],
) -> RenderResult:
    """Renders one job and writes its result file.

    Args:
        job: What to render.
        backend: A loaded backend.
        limits: Input limits.
        progress: Receives (fraction of the whole job, stage); raises ``JobCancelled`` to stop.

    Returns:
        The written result.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    timings: dict[str, float] = {}
    started = clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = now - clock
        clock = now

    output_dir = job.output_dir or job.input.parent
    # Checked again here (the folder may have gone while the job waited): before the render,
    # so a missing folder does not cost one.
    if not output_dir.is_dir():
        raise OutputError(f"output folder does not exist: {output_dir}")
    progress(0.0, "reading")
    samples, source = audio.read_slice(job.input, job.start, job.length, limits.max_input_seconds)
    _check_positions(job.edit, samples.shape[-1] / source.sample_rate)
    target_lufs = audio.integrated_loudness(samples, source.sample_rate)
    lap("read")

    rendered = _run_backend(
        backend,
        samples,
        source.sample_rate,
        job.edit,
        _backend_stage(progress, _READ_END, _BACKEND_END),
    )
    lap("render")

    progress(_BACKEND_END, "writing")
    out = fit_to_source(rendered, source.sample_rate, source.channels, target_lufs)
    path = audio.write_audio_atomic(
        output_dir, output_stem(job), out, source.sample_rate, float_output=source.is_float
    )
    lap("write")
    timings["total"] = time.monotonic() - started
    return RenderResult(
        output_path=path,
        duration=out.shape[-1] / source.sample_rate,
        sample_rate=source.sample_rate,
        channels=source.channels,
        backend=backend.name,
        job=job,
        timings=timings,
        info=rendered.info,
    )


def check_request_paths(input_path: Path, output_dir: Path | None) -> None:
    """Cheap checks made when a job is submitted, so obvious mistakes fail at once."""
    audio.check_input_file(input_path)
    folder = output_dir or input_path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
