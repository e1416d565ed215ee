"""The array-level edit: backend passes (iterations) -> source rate, channels and loudness.

Every caller renders through ``render_audio``: the job renderer (files), ``stepedit eval``
and the in-process pedalboard effect (arrays). It knows nothing of files, jobs or OSC.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    TokenFeedbackBackend,
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
        timings: Seconds per backend stage, for token backends: ``tokenize``, ``generate``
            and ``decode``, each summed over the passes.
    """

    audio: np.ndarray
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

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
    rendered, timings = _run_passes(backend, samples, sample_rate, edit, progress)
    out = fit_to_source(rendered, sample_rate, samples.shape[0], target_lufs)
    return EditedAudio(out, sample_rate, rendered.info, timings)


def _run_passes(
    backend: Backend, samples: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> tuple[Rendered, dict[str, float]]:
    """The one place where ``iterations`` become passes; returns the result and the seconds
    spent per token stage (``tokenize``, ``generate``, ``decode``; none for other backends).

    A token backend runs ``iterations`` passes (see ``_run_token_passes``). A render backend
    renders once at the strength of ``iterations``: repeating DSP would only add artefacts.
    An edit on words goes to a word backend's ``render_words`` once (a word is deleted or
    re-said once, not more strongly).
    """
    if EDIT_TYPES[edit.type].needs_words and isinstance(backend, WordBackend):
        progress(0.0, "render")
        return backend.render_words(samples, sample_rate, edit, progress), {}
    if isinstance(backend, TokenBackend):
        return _run_token_passes(backend, samples, sample_rate, edit, progress)
    if isinstance(backend, RenderBackend):
        progress(0.0, "render")
        return backend.render(samples, sample_rate, edit, progress), {}
    raise BackendError(f"backend {backend.name!r} implements neither render nor tokenize")


class _StageClock:
    """Seconds spent per stage, summed over the passes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self.seconds[stage] = self.seconds.get(stage, 0.0) + spent


def _run_token_passes(
    backend: TokenBackend, samples: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> tuple[Rendered, dict[str, float]]:
    """``iterations`` passes of generate, each on the previous pass's output; one decode.

    A ``TokenFeedbackBackend`` starts pass k+1 from pass k's tokens: the input is tokenized
    once and only the last pass is decoded. Other token backends, and feedback backends with
    ``retokenize`` set, decode every pass and tokenize its audio again, as the official
    pipeline does; each decode reports its loudness change against its own input, so the
    changes add up.
    """
    clock = _StageClock()
    passes = edit.iterations
    loudness_change = 0.0
    prompt: Any = None
    generated: Any = None
    step = progress
    for i in range(passes):
        step = scaled_progress(progress, i / passes, (i + 1) / passes)
        if i == 0:
            with clock("tokenize"):
                prompt = backend.tokenize(samples, sample_rate, step)
        elif isinstance(backend, TokenFeedbackBackend) and not backend.retokenize:
            with clock("tokenize"):
                prompt = backend.next_prompt(generated, prompt, step)
        else:
            with clock("decode"):
                decoded = backend.decode(generated, prompt, step)
            loudness_change += decoded.loudness_offset_db
            with clock("tokenize"):
                prompt = (
                    backend.next_prompt(generated, prompt, step, decoded)
                    if isinstance(backend, TokenFeedbackBackend)
                    else backend.tokenize(decoded.audio, decoded.sample_rate, step)
                )
        with clock("generate"):
            generated = backend.generate(prompt, edit, step)
    with clock("decode"):
        rendered = backend.decode(generated, prompt, step)
    rendered.loudness_offset_db += loudness_change
    return rendered, clock.seconds


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
