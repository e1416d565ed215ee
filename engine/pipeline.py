"""The array-level edit: backend passes (iterations) -> source rate, channels and loudness,
and, when the edit asks to keep the length, the source slice's duration. A token feedback
edit whose input is the result of an earlier one continues on that edit's last pass.

Every caller renders through ``render_audio``: the job renderer (files), ``stepedit eval``
and the in-process pedalboard effect (arrays). It knows nothing of files, jobs or OSC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeGuard

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
    scaled_progress,
)
from engine.edits import EDIT_TYPES, EditSpec
from engine.errors import BackendError, CheckpointError, EditError
from engine.guard import Guard, guarded
from engine.keep_length import added_spans, fit_duration, fit_to_source
from engine.lru_store import content_key
from engine.segments import LongTake, needs_segments

if TYPE_CHECKING:
    from engine.text.cache import TranscriptCache
    from engine.text.transcript import Transcript

__all__ = ["EditedAudio", "LastPass", "remember_result", "render_audio", "scaled_progress"]


@dataclass(frozen=True)
class LastPass:
    """The last pass of a token feedback edit (``TokenFeedbackBackend.remember``).

    Attributes:
        generated: What the pass generated.
        prompt: Its prompt.
        decoded: ``generated`` decoded, before fitting to the source.
    """

    generated: Any
    prompt: Any
    decoded: Rendered


@dataclass
class EditedAudio:
    """An edit's result, fitted to its source.

    Attributes:
        audio: ``float32 (channels, samples)`` at the source's rate and channel count, at the
            source's loudness plus the backend's ``loudness_offset_db`` (and with
            ``keep_length`` exactly the source's length).
        sample_rate: The source's rate in Hz.
        info: The backend's own result fields (e.g. ``generation``, ``insertions``), and
            ``length_factor`` (see ``fit_duration``) when the edit keeps the length.
        timings: Seconds per backend stage, for token backends: ``tokenize``, ``generate``
            and ``decode``, each summed over the passes, and ``check`` (checked generations,
            a word backend's re-said spans included).
        last_pass: For a token feedback backend (without ``retokenize``) and a slice edited
            in one piece, the last pass, for ``remember_result``.
        passes: With ``EditSpec.decode_passes`` on a token backend, the passes before the
            last, in order, each fitted to the source as ``audio`` is; else empty.
    """

    audio: np.ndarray
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    last_pass: LastPass | None = None
    passes: list[np.ndarray] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


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
    guard: Guard | None = None,
    segment_seconds: float | None = None,
) -> EditedAudio:
    """Renders ``edit`` on ``(channels, samples)`` audio and fits the result to it.

    For a token backend: an edit whose generation reads the slice's text
    (``TokenBackend.reads_text``) gets the request's ``text``, else the engine's
    transcription (the result's ``text_source`` says which), and what it generates is
    checked against the text it should say (``guard``); a slice longer than
    ``segment_seconds`` (or the backend's) is edited in segments cut at pauses and
    stitched back. A token
    feedback backend that remembers a pass under the key of ``samples`` (see
    ``remember_result``) starts from it with ``next_prompt`` instead of tokenizing.

    Args:
        backend: A backend (loaded, or loading itself on first use).
        samples: ``float32 (channels, samples)``.
        sample_rate: Their rate in Hz.
        edit: The validated edit.
        progress: Receives (fraction 0..1, stage); raises ``JobCancelled`` to stop.
        transcripts: Cache of slices' words, for edits that work on words (``text``,
            ``fillers``) or read the slice's text; they are found here when the edit does
            not carry them.
        guard: How generations are checked; ``None``: ``Guard()`` (the engine's
            transcription, 3 tries, word error 0.2). ``EditSpec.guard`` turns it off.
        segment_seconds: Longest slice a token backend edits in one piece (the engine's
            setting); ``None``: the backend's ``segment_seconds``.

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    _check_positions(edit, samples.shape[-1] / sample_rate)
    target_lufs = audio.integrated_loudness(samples, sample_rate)
    ceiling_db = audio.peak_ceiling_db(samples)
    clock = _StageClock()
    found: dict[str, Any] = {}
    if EDIT_TYPES[edit.type].needs_words and edit.transcript is None:
        edit = replace(
            edit, transcript=_transcript(samples, sample_rate, edit, progress, transcripts)
        )
        progress = scaled_progress(progress, _WORDS_END, 1.0)
    elif isinstance(backend, TokenBackend) and edit.type in backend.reads_text:
        found["text_source"] = "request" if edit.text else "transcription"
        seconds = segment_seconds or backend.segment_seconds
        long = needs_segments(samples.shape[-1] / sample_rate, edit, seconds)
        if not edit.text or long:
            with clock("transcribe"):
                edit = _with_words(samples, sample_rate, edit, progress, transcripts)
            progress = scaled_progress(progress, _WORDS_END, 1.0)
    made, timings = _run_passes(
        backend, samples, sample_rate, edit, progress, guard or Guard(), segment_seconds
    )
    out, factor = _fit(
        made.rendered, samples, sample_rate, target_lufs, ceiling_db, edit.keep_length
    )
    info = {**made.rendered.info, **found}
    if edit.keep_length:
        info["length_factor"] = round(factor, 6)
    earlier = [
        _fit(r, samples, sample_rate, target_lufs, ceiling_db, edit.keep_length)[0]
        for r in made.earlier
    ]
    return EditedAudio(out, sample_rate, info, {**clock.seconds, **timings}, made.last, earlier)


def _fit(
    rendered: Rendered,
    samples: np.ndarray,
    sample_rate: int,
    target_lufs: float,
    ceiling_db: float,
    keep_length: bool,
) -> tuple[np.ndarray, float]:
    """``rendered`` fitted to the source slice ``samples`` (its loudness and peak ceiling
    measured once by the caller; with ``keep_length`` also to its duration), and the
    time-scale factor ``fit_duration`` used (1.0 without).

    The time-scale moves peaks (shout of a take mastered to full scale peaked at +1 dBFS),
    so its result is held to the ceiling again, at its own level.
    """
    out = fit_to_source(rendered, sample_rate, samples.shape[0], target_lufs, ceiling_db)
    if not keep_length:
        return out, 1.0
    spans = added_spans(rendered.info, sample_rate)
    fitted, factor = fit_duration(out, sample_rate, samples.shape[-1], spans)
    level = audio.integrated_loudness(fitted, sample_rate)
    return audio.fit_loudness(fitted, sample_rate, level, ceiling_db), factor


def remember_result(
    backend: Backend, edited: EditedAudio, written: np.ndarray, sample_rate: int
) -> None:
    """Has a token feedback backend keep the edit's last pass under the key of ``written``,
    so that an edit whose input is exactly those samples continues on the pass's tokens.

    Args:
        backend: The backend that rendered ``edited``.
        edited: What ``render_audio`` returned (nothing is kept without a ``last_pass``).
        written: ``float32 (channels, samples)``: the result as a later edit will read it
            (after writing: quantised to the file's format).
        sample_rate: Their rate in Hz.
    """
    last = edited.last_pass
    if last is not None and isinstance(backend, TokenFeedbackBackend):
        key = _result_key(written, sample_rate)
        backend.remember(key, last.generated, last.prompt, last.decoded)


def _result_key(samples: np.ndarray, sample_rate: int) -> str:
    """The key a pass is remembered and recalled under: of the samples and their rate."""
    return content_key(samples, {"rate": sample_rate})


def _feeds_back(backend: Backend) -> TypeGuard[TokenFeedbackBackend]:
    """Whether passes follow each other on tokens (not re-tokenized)."""
    return isinstance(backend, TokenFeedbackBackend) and not backend.retokenize


def _transcript(
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    transcripts: TranscriptCache | None,
) -> Transcript:
    """The slice's words: the request's ``text`` aligned, else recognised (cached)."""
    from engine.text.transcribe import transcribe  # the ASR stack loads on first use

    transcript, _ = transcribe(
        samples,
        sample_rate,
        language=edit.language,
        text=edit.text,
        cache=transcripts,
        progress=scaled_progress(progress, 0.0, _WORDS_END),
    )
    return transcript


def _with_words(
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    transcripts: TranscriptCache | None,
) -> EditSpec:
    """``edit`` with the slice's words (``transcript``: the edit's own, else the request's
    ``text`` aligned, else recognised) and, when it had none, their text as ``text``.

    Raises:
        EditError: naming ``text`` when the slice cannot be transcribed here.
    """
    if edit.transcript is not None:
        return replace(edit, text=edit.text or edit.transcript.text)
    try:
        transcript = _transcript(samples, sample_rate, edit, progress, transcripts)
    except CheckpointError as e:
        raise EditError(
            f"a {edit.type} edit reads the slice's words: send its 'text', or install the "
            f"recogniser the engine transcribes with ({e})"
        ) from e
    return replace(edit, text=edit.text or transcript.text, transcript=transcript)


@dataclass
class _Passes:
    """What the passes of an edit made.

    Attributes:
        rendered: The last pass, decoded.
        earlier: The passes before it, decoded (``EditSpec.decode_passes``, token backends
            only), each with its loudness change against the slice.
        last: The last pass of a token feedback edit, for ``remember_result``.
    """

    rendered: Rendered
    earlier: list[Rendered] = field(default_factory=list)
    last: LastPass | None = None


def _run_passes(
    backend: Backend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    guard: Guard,
    segment_seconds: float | None,
) -> tuple[_Passes, dict[str, float]]:
    """The one place where ``iterations`` become passes; returns what they made and the
    seconds spent per token stage (``tokenize``, ``generate``, ``decode``, and ``check``
    for checked generations, a word backend's re-said spans included; none for other
    backends).

    A token backend runs ``iterations`` passes (see ``_run_token_passes``), per segment of
    a slice longer than ``segment_seconds`` (or the backend's), each checked by ``guard``.
    A render backend renders once at the strength of ``iterations``: repeating DSP would
    only add artefacts. An edit on words goes to a word backend's ``render_words`` once (a
    word is deleted or re-said once, not more strongly), the words it says checked by
    ``guard``. Neither has earlier passes to decode.
    """
    if EDIT_TYPES[edit.type].needs_words and isinstance(backend, WordBackend):
        progress(0.0, "render")
        clock = _StageClock()
        timed = _timed_checks(guard, clock)
        rendered = backend.render_words(samples, sample_rate, edit, progress, timed)
        return _Passes(rendered), clock.seconds
    if isinstance(backend, TokenBackend):
        clock = _StageClock()
        seconds = segment_seconds or backend.segment_seconds
        if not needs_segments(samples.shape[-1] / sample_rate, edit, seconds):
            made = _checked_passes(backend, samples, sample_rate, edit, progress, guard, clock)
            return made, clock.seconds

        def render_piece(
            piece: np.ndarray, sub: EditSpec, step: Progress
        ) -> tuple[Rendered, list[Rendered]]:
            made = _checked_passes(backend, piece, sample_rate, sub, step, guard, clock)
            return made.rendered, made.earlier

        take = LongTake(samples, sample_rate, seconds, render_piece)
        return _Passes(*take.render(edit, progress)), clock.seconds
    if isinstance(backend, RenderBackend):
        progress(0.0, "render")
        return _Passes(backend.render(samples, sample_rate, edit, progress)), {}
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
            self.add(stage, time.perf_counter() - started)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def _timed_checks(guard: Guard, clock: _StageClock) -> Guard:
    """``guard`` with the time of its checks summed into ``clock``'s ``check``: a word
    backend checks each re-said span itself, so the pipeline cannot time the spans' checks
    around them as it does a token backend's."""
    check = guard.check

    def timed(audio: np.ndarray, sample_rate: int, language: str) -> str:
        with clock("check"):
            return check(audio, sample_rate, language)

    return replace(guard, check=timed)


def _checked_passes(
    backend: TokenBackend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    guard: Guard,
    clock: _StageClock,
) -> _Passes:
    """The passes of ``edit`` on one slice, generated again while ``guard`` finds that they
    say the wrong words (edit types in ``backend.reads_text`` only): those of the try
    returned; the first prompt is made once for all tries."""
    prompts: list[Any] = []
    tries: list[_Passes] = []

    def first_prompt(step: Progress) -> Any:
        if not prompts:
            prompts.append(_first_prompt(backend, samples, sample_rate, step))
        return prompts[0]

    def render(attempt: EditSpec, step: Progress) -> Rendered:
        tries.append(_run_token_passes(backend, first_prompt, attempt, step, clock))
        return tries[-1].rendered

    if edit.type not in backend.reads_text:
        render(edit, progress)
        return tries[0]
    rendered, checking = guarded(render, edit, guard, progress)
    if checking:
        clock.add("check", checking)
    return next(t for t in tries if t.rendered is rendered)


def _first_prompt(
    backend: TokenBackend, samples: np.ndarray, sample_rate: int, progress: Progress
) -> Any:
    """The slice tokenized; for a token feedback backend that remembers a pass under the
    slice's key (the slice is an earlier edit's result), what ``next_prompt`` makes of it."""
    if _feeds_back(backend):
        remembered = backend.recall(_result_key(samples, sample_rate))
        if remembered is not None:
            return backend.next_prompt(*remembered, progress)
    return backend.tokenize(samples, sample_rate, progress)


def _run_token_passes(
    backend: TokenBackend,
    first_prompt: Callable[[Progress], Any],
    edit: EditSpec,
    progress: Progress,
    clock: _StageClock,
) -> _Passes:
    """``iterations`` passes of generate, each on the previous pass's output; one decode.

    The first pass's prompt comes from ``first_prompt`` (the slice tokenized, or an earlier
    edit continued). A ``TokenFeedbackBackend`` starts pass k+1 from pass k's tokens: only
    the last pass is decoded (and, with ``decode_passes``, every earlier one as well), and
    it is returned as well. Other token backends, and feedback backends with
    ``retokenize`` set, decode every pass and tokenize its audio again, as the official
    pipeline does; each decode reports its loudness change against its own input, so the
    changes add up.
    """
    passes = edit.iterations
    loudness_change = 0.0
    earlier: list[Rendered] = []
    prompt: Any = None
    generated: Any = None
    step = progress
    for i in range(passes):
        previous, step = step, scaled_progress(progress, i / passes, (i + 1) / passes)
        if i == 0:
            with clock("tokenize"):
                prompt = first_prompt(step)
        elif _feeds_back(backend):
            if edit.decode_passes:
                with clock("decode"):  # its loudness change is against the slice, as the last's
                    earlier.append(backend.decode(generated, prompt, previous))
            with clock("tokenize"):
                prompt = backend.next_prompt(generated, prompt, step)
        else:
            with clock("decode"):
                decoded = backend.decode(generated, prompt, previous)  # the last pass's end
            loudness_change += decoded.loudness_offset_db
            if edit.decode_passes:
                earlier.append(replace(decoded, loudness_offset_db=loudness_change))
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
    last = LastPass(generated, prompt, rendered) if _feeds_back(backend) else None
    return _Passes(rendered, earlier, last)


def _check_positions(edit: EditSpec, duration: float) -> None:
    late = [p for p in edit.positions if p > duration]
    if late:
        raise EditError(
            f"insertion position(s) {late} s lie past the end of the {duration:.3f} s slice"
        )
