"""The array-level edit: backend passes (iterations) -> source rate, channels and loudness.

Every caller renders through ``render_audio``: the job renderer (files), ``stepedit eval``
and the in-process pedalboard effect (arrays). It knows nothing of files, jobs or OSC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import audio
from engine.backends.base import (
    Backend,
    Progress,
    RenderBackend,
    Rendered,
    TokenBackend,
    WordBackend,
)
from engine.edits import EDIT_TYPES, EditSpec
from engine.errors import BackendError, EditError

if TYPE_CHECKING:
    from engine.text.cache import TranscriptCache

__all__ = ["EditedAudio", "fit_to_source", "render_audio", "scaled_progress"]


@dataclass
class EditedAudio:
    """An edit's result, fitted to its source.

    Attributes:
        audio: ``float32 (channels, samples)`` at the source's rate and channel count, at the
            source's loudness plus the backend's ``loudness_offset_db``.
        sample_rate: The source's rate in Hz.
        info: The backend's own result fields (e.g. ``generation``, ``insertions``).
    """

    audio: np.ndarray
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def scaled_progress(progress: Progress, start: float, end: float) -> Progress:
    """Maps a step's own 0..1 progress onto ``[start, end]`` of the caller's bar."""
    return lambda f, stage: progress(start + (end - start) * min(max(f, 0.0), 1.0), stage)


# Share of the progress bar that finding the words takes, for edits that need them.
_WORDS_END = 0.3


def render_audio(
    backend: Backend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    *,
    transcripts: TranscriptCache | None = None,
) -> EditedAudio:
    """Renders ``edit`` on ``(channels, samples)`` audio and fits the result to it.

    Args:
        backend: A backend (loaded, or loading itself on first use).
        samples: ``float32 (channels, samples)``.
        sample_rate: Their rate in Hz.
        edit: The validated edit.
        progress: Receives (fraction 0..1, stage); raises ``JobCancelled`` to stop.
        transcripts: Cache of slices' words, for edits that work on words (``text``,
            ``fillers``); they are found here when the edit does not carry them.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    _check_positions(edit, samples.shape[-1] / sample_rate)
    target_lufs = audio.integrated_loudness(samples, sample_rate)
    if EDIT_TYPES[edit.type].needs_words and edit.transcript is None:
        from engine.text.transcribe import transcribe  # the ASR stack loads on first use

        transcript, _ = transcribe(
            samples,
            sample_rate,
            language=edit.language,
            text=edit.text,
            cache=transcripts,
            progress=scaled_progress(progress, 0.0, _WORDS_END),
        )
        edit = replace(edit, transcript=transcript)
        progress = scaled_progress(progress, _WORDS_END, 1.0)
    rendered = _run_passes(backend, samples, sample_rate, edit, progress)
    out = fit_to_source(rendered, sample_rate, samples.shape[0], target_lufs)
    return EditedAudio(out, sample_rate, rendered.info)


def _run_passes(
    backend: Backend, samples: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """The one place where ``iterations`` become passes.

    A token backend runs ``iterations`` passes, each re-tokenising the previous pass's audio
    as the official pipeline does. A render backend renders once at the strength of
    ``iterations``: repeating DSP would only add artefacts. An edit on words goes to a word
    backend's ``render_words`` once (a word is deleted or re-said once, not more strongly).
    """
    if EDIT_TYPES[edit.type].needs_words and isinstance(backend, WordBackend):
        progress(0.0, "render")
        return backend.render_words(samples, sample_rate, edit, progress)
    if isinstance(backend, TokenBackend):
        rendered = Rendered(samples, sample_rate)
        loudness_change = 0.0  # each pass reports its change against its own input
        passes = edit.iterations
        for i in range(passes):
            step = scaled_progress(progress, i / passes, (i + 1) / passes)
            prompt = backend.tokenize(rendered.audio, rendered.sample_rate, step)
            generated = backend.generate(prompt, edit, step)
            rendered = backend.decode(generated, prompt, step)
            loudness_change += rendered.loudness_offset_db
        rendered.loudness_offset_db = loudness_change
        return rendered
    if isinstance(backend, RenderBackend):
        progress(0.0, "render")
        return backend.render(samples, sample_rate, edit, progress)
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
