"""One edit of a file: read the slice -> ``render_audio`` -> atomic write.

Works on plain values (what to read, which edit, where to write); jobs, ids and the result
JSON live above it, in the engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import audio
from engine.backends.base import Backend, Progress
from engine.edits import EditSpec
from engine.errors import OutputError
from engine.pipeline import render_audio, scaled_progress

__all__ = ["WrittenEdit", "render_file"]

# Share of the progress bar the read and the backend take; the write gets the rest.
_READ_END, _BACKEND_END = 0.05, 0.95


@dataclass(frozen=True)
class WrittenEdit:
    """A rendered edit, published at ``path``.

    Attributes:
        path: The new file.
        duration: Its length in seconds.
        sample_rate: Its rate (the source's).
        channels: Its channel count (the source's).
        timings: Seconds spent reading, rendering, writing, and in all.
        info: The backend's own result fields.
    """

    path: Path
    duration: float
    sample_rate: int
    channels: int
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def render_file(
    backend: Backend,
    edit: EditSpec,
    *,
    source: Path,
    start: float,
    length: float | None,
    output_dir: Path,
    stem: str,
    max_input_seconds: float,
    progress: Progress,
) -> WrittenEdit:
    """Renders ``edit`` on a slice of ``source`` and writes the result as a new file.

    Args:
        backend: A loaded backend.
        edit: The validated edit.
        source: The audio file to read; never modified.
        start: Slice start in seconds.
        length: Slice length in seconds, ``None`` for the rest of the file.
        output_dir: Folder of the new file.
        stem: Its name without suffix; a free name is chosen if taken.
        max_input_seconds: Longest slice accepted.
        progress: Receives (fraction of the whole edit, stage); raises ``JobCancelled``.

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

    # Checked again here (the folder may have gone while the job waited): before the render,
    # so a missing folder does not cost one.
    if not output_dir.is_dir():
        raise OutputError(f"output folder does not exist: {output_dir}")
    progress(0.0, "reading")
    samples, info = audio.read_slice(source, start, length, max_input_seconds)
    lap("read")

    edited = render_audio(
        backend, samples, info.sample_rate, edit, scaled_progress(progress, _READ_END, _BACKEND_END)
    )
    lap("render")

    progress(_BACKEND_END, "writing")
    path = audio.write_audio_atomic(
        output_dir, stem, edited.audio, info.sample_rate, float_output=info.is_float
    )
    lap("write")
    timings["total"] = time.monotonic() - started
    return WrittenEdit(
        path=path,
        duration=edited.duration,
        sample_rate=info.sample_rate,
        channels=info.channels,
        timings=timings,
        info=edited.info,
    )
