"""One job's work on a file: read the slice -> ``render_audio`` (or transcribe) -> atomic write.

Works on plain values (what to read, which edit, where to write); jobs, ids and the result
JSON live above it, in the engine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from engine import audio
from engine.backends.base import Backend, Progress
from engine.edits import EditSpec
from engine.errors import InputError, OutputError
from engine.pipeline import EditedAudio, remember_result, render_audio, scaled_progress
from engine.text.transcript import Transcript

if TYPE_CHECKING:
    from engine.guard import Guard
    from engine.text.cache import TranscriptCache

__all__ = ["WrittenEdit", "WrittenTranscript", "render_file", "transcribe_file"]

_LOG = logging.getLogger(__name__)

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
        timings: Seconds spent reading, rendering, writing (with, for token feedback
            backends, keeping the last pass under the new file's content), and in all; for
            token backends also the part of rendering spent in ``tokenize``, ``generate``
            and ``decode``.
        info: The backend's own result fields.
    """

    path: Path
    duration: float
    sample_rate: int
    channels: int
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WrittenTranscript:
    """A slice's transcript, published as a JSON sidecar at ``path``.

    Attributes:
        path: The new sidecar file.
        duration: Length of the slice in seconds.
        sample_rate: The source's rate.
        channels: The source's channel count.
        transcript: The words, in slice time.
        cache_hit: The words came from the transcript cache.
        timings: Seconds spent reading, transcribing, writing, and in all.
    """

    path: Path
    duration: float
    sample_rate: int
    channels: int
    transcript: Transcript
    cache_hit: bool
    timings: dict[str, float] = field(default_factory=dict)


class _Laps:
    """Seconds per step, and in all."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = self._clock = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = now - self._clock
        self._clock = now

    def total(self) -> dict[str, float]:
        self.timings["total"] = time.monotonic() - self._started
        return self.timings


def _read(
    source: Path,
    start: float,
    length: float | None,
    max_input_seconds: float,
    output_dir: Path,
    progress: Progress,
) -> tuple[np.ndarray, audio.SourceInfo]:
    """Reads the slice, after checking the output folder again (it may have gone while the
    job waited, and a missing folder must not cost a render) and clearing it of temporary
    files an earlier, killed engine left there."""
    if not output_dir.is_dir():
        raise OutputError(f"output folder does not exist: {output_dir}")
    for leftover in audio.remove_stale_temp_files(output_dir):  # from a write cut short
        _LOG.info("removed the stale temporary file %r", str(leftover))
    progress(0.0, "reading")
    return audio.read_slice(source, start, length, max_input_seconds)


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
    transcripts: TranscriptCache | None = None,
    guard: Guard | None = None,
    segment_seconds: float | None = None,
) -> WrittenEdit:
    """Renders ``edit`` on a slice of ``source`` and writes the result as a new file.

    A token feedback backend keeps the edit's last pass under the key of the new file's
    samples as ``read_slice`` returns them, so that an edit of the whole file (such as
    "one more pass" on the take) continues on its tokens. With ``decode_passes`` the passes
    before the last are written beside the new file as ``<its stem>.pass<k>.wav`` (same
    format; a free name when taken) and listed in ``info["passes"]`` (empty when the
    backend made none).

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
        transcripts: Cache of the slices' words, for edits that work on words.
        guard: How generations are checked (``render_audio``'s default when ``None``).
        segment_seconds: Longest slice a token backend edits in one piece; ``None``: the
            backend's ``segment_seconds``.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    lap = _Laps()
    samples, info = _read(source, start, length, max_input_seconds, output_dir, progress)
    lap("read")

    edited = render_audio(
        backend,
        samples,
        info.sample_rate,
        edit,
        scaled_progress(progress, _READ_END, _BACKEND_END),
        transcripts=transcripts,
        guard=guard,
        segment_seconds=segment_seconds,
    )
    lap.timings.update(edited.timings)  # the backend's stages, inside "render"
    lap("render")

    progress(_BACKEND_END, "writing")
    path = audio.write_audio_atomic(
        output_dir, stem, edited.audio, info.sample_rate, float_output=info.is_float
    )
    extra: dict[str, Any] = {}
    if edit.decode_passes:
        passes = _write_passes(path, edited.passes, info.sample_rate, info.is_float)
        extra["passes"] = [str(p) for p in passes]
    if edited.last_pass is not None:
        _remember(backend, edited, path, max_input_seconds)
    lap("write")
    return WrittenEdit(
        path=path,
        duration=edited.duration,
        sample_rate=info.sample_rate,
        channels=info.channels,
        timings=lap.total(),
        info={**edited.info, **extra},
    )


def _write_passes(
    output: Path, passes: list[np.ndarray], sample_rate: int, float_output: bool
) -> list[Path]:
    """Writes each earlier pass beside ``output`` as ``<its stem>.pass<k>.wav``, never over
    an existing file; if one cannot be written, the output and the passes written so far
    are removed (a job either publishes all its files or none)."""
    written: list[Path] = []
    try:
        for k, samples in enumerate(passes, start=1):
            written.append(
                audio.write_audio_atomic(
                    output.parent, f"{output.stem}.pass{k}", samples, sample_rate, float_output
                )
            )
    except BaseException:
        for path in (output, *written):
            path.unlink(missing_ok=True)
        raise
    return written


def _remember(backend: Backend, edited: EditedAudio, path: Path, max_seconds: float) -> None:
    """Reads the written file back whole, as an edit of it will, and has the backend keep
    the edit's last pass under its samples; a file no edit can read (silent, or longer
    than ``max_seconds``) keeps nothing."""
    try:
        written, info = audio.read_slice(path, max_seconds=max_seconds)
    except InputError as e:
        _LOG.info("the tokens of %s are not kept: %s", path.name, e)
        return
    remember_result(backend, edited, written, info.sample_rate)


def transcribe_file(
    *,
    source: Path,
    start: float,
    length: float | None,
    language: str,
    text: str,
    output_dir: Path,
    stem: str,
    max_input_seconds: float,
    progress: Progress,
    transcripts: TranscriptCache | None = None,
) -> WrittenTranscript:
    """Transcribes a slice of ``source`` and writes the transcript as a new JSON file.

    Args:
        source: The audio file to read; never modified.
        start: Slice start in seconds.
        length: Slice length in seconds, ``None`` for the rest of the file.
        language: ``auto``, ``en`` or ``zh``.
        text: The slice's transcript when known (aligned instead of recognised).
        output_dir: Folder of the sidecar.
        stem: Its name without suffix; a free name is chosen if taken.
        max_input_seconds: Longest slice accepted.
        progress: Receives (fraction, stage); raises ``JobCancelled``.
        transcripts: Cache of earlier transcripts, keyed by the slice's content.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    from engine.text.transcribe import transcribe

    lap = _Laps()
    samples, info = _read(source, start, length, max_input_seconds, output_dir, progress)
    lap("read")
    transcript, hit = transcribe(
        samples,
        info.sample_rate,
        language=language,
        text=text,
        cache=transcripts,
        progress=scaled_progress(progress, _READ_END, _BACKEND_END),
    )
    lap("transcribe")
    progress(_BACKEND_END, "writing")
    sidecar = {"input": str(source), "start": start, **transcript.to_json(start)}
    path = audio.write_new_file(output_dir, stem, ".json", _json_writer(sidecar))
    lap("write")
    return WrittenTranscript(
        path=path,
        duration=samples.shape[-1] / info.sample_rate,
        sample_rate=info.sample_rate,
        channels=info.channels,
        transcript=transcript,
        cache_hit=hit,
        timings=lap.total(),
    )


def _json_writer(data: Any) -> Callable[[BinaryIO], None]:
    def write(f: BinaryIO) -> None:
        f.write(json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))

    return write
