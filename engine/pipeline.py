"""The array-level edit: backend passes (iterations) -> source rate, channels and loudness,
and, when the edit asks to keep the length, the source slice's duration. A token feedback
edit whose input is the result of an earlier one continues on that edit's last pass.

Every caller renders through ``render_audio``: the job renderer (files), ``stepedit eval``
and the in-process pedalboard effect (arrays). It knows nothing of files, jobs or OSC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
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
from engine.dsp import pauses
from engine.edits import EDIT_TYPES, EditSpec
from engine.errors import BackendError, CheckpointError, EditError
from engine.guard import Guard, guarded
from engine.lru_store import content_key
from engine.segments import Segment, plan_segments, stitch

if TYPE_CHECKING:
    from engine.text.cache import TranscriptCache

__all__ = [
    "EditedAudio",
    "LastPass",
    "added_spans",
    "fit_duration",
    "fit_to_source",
    "remember_result",
    "render_audio",
    "scaled_progress",
]


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
            and ``decode``, each summed over the passes.
        last_pass: For a token feedback backend (without ``retokenize``) and a slice edited
            in one piece, the last pass, for ``remember_result``.
    """

    audio: np.ndarray
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    last_pass: LastPass | None = None

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
) -> EditedAudio:
    """Renders ``edit`` on ``(channels, samples)`` audio and fits the result to it.

    For a token backend: an edit whose generation reads the slice's text
    (``TokenBackend.reads_text``) gets the request's ``text``, else the engine's
    transcription (the result's ``text_source`` says which), and what it generates is
    checked against the text it should say (``guard``); a slice longer than the backend's
    ``segment_seconds`` is edited in segments cut at pauses and stitched back. A token
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

    Raises:
        StepEditError: a subclass carrying the protocol error code.
    """
    _check_positions(edit, samples.shape[-1] / sample_rate)
    target_lufs = audio.integrated_loudness(samples, sample_rate)
    clock = _StageClock()
    found: dict[str, Any] = {}
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
    elif isinstance(backend, TokenBackend) and edit.type in backend.reads_text:
        found["text_source"] = "request" if edit.text else "transcription"
        long = _segmented(backend, samples, sample_rate, edit)
        if not edit.text or long:
            with clock("transcribe"):
                edit = _with_words(samples, sample_rate, edit, progress, transcripts)
            progress = scaled_progress(progress, _WORDS_END, 1.0)
    rendered, timings, last = _run_passes(
        backend, samples, sample_rate, edit, progress, guard or Guard()
    )
    out = fit_to_source(rendered, sample_rate, samples.shape[0], target_lufs)
    info = {**rendered.info, **found}
    if edit.keep_length:
        spans = added_spans(info, sample_rate)
        out, factor = fit_duration(out, sample_rate, samples.shape[-1], spans)
        info = {**info, "length_factor": round(factor, 6)}
    return EditedAudio(out, sample_rate, info, {**clock.seconds, **timings}, last)


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
    from engine.text.transcribe import transcribe  # the ASR stack loads on first use

    try:
        transcript, _ = transcribe(
            samples,
            sample_rate,
            language=edit.language,
            text=edit.text,
            cache=transcripts,
            progress=scaled_progress(progress, 0.0, _WORDS_END),
        )
    except CheckpointError as e:
        raise EditError(
            f"a {edit.type} edit reads the slice's words: send its 'text', or install the "
            f"recogniser the engine transcribes with ({e})"
        ) from e
    return replace(edit, text=edit.text or transcript.text, transcript=transcript)


def _run_passes(
    backend: Backend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    guard: Guard,
) -> tuple[Rendered, dict[str, float], LastPass | None]:
    """The one place where ``iterations`` become passes; returns the result, the seconds
    spent per token stage (``tokenize``, ``generate``, ``decode``, and ``check`` for
    checked generations; none for other backends) and the last pass of a token feedback
    edit.

    A token backend runs ``iterations`` passes (see ``_run_token_passes``), per segment of
    a long slice, each checked by ``guard``. A render backend renders once at the strength
    of ``iterations``: repeating DSP would only add artefacts. An edit on words goes to a
    word backend's ``render_words`` once (a word is deleted or re-said once, not more
    strongly).
    """
    if EDIT_TYPES[edit.type].needs_words and isinstance(backend, WordBackend):
        progress(0.0, "render")
        return backend.render_words(samples, sample_rate, edit, progress), {}, None
    if isinstance(backend, TokenBackend):
        clock = _StageClock()
        if not _segmented(backend, samples, sample_rate, edit):
            rendered, last = _checked_passes(
                backend, samples, sample_rate, edit, progress, guard, clock
            )
            return rendered, clock.seconds, last
        run = _clone_from_first_segment if edit.type == "clone" else _run_segments
        return run(backend, samples, sample_rate, edit, progress, guard, clock), clock.seconds, None
    if isinstance(backend, RenderBackend):
        progress(0.0, "render")
        return backend.render(samples, sample_rate, edit, progress), {}, None
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


def _segmented(
    backend: TokenBackend, samples: np.ndarray, sample_rate: int, edit: EditSpec
) -> bool:
    """Whether the slice is longer than ``segment_seconds``: edited in segments, or for
    clone (new text in the slice's voice) cut to its first segment, its voice prompt.

    Raises:
        EditError: for a paralinguistic ``target_text`` on such a slice (its tags cannot be
            shared out among the segments; ``option`` and ``position`` can).
    """
    seconds = samples.shape[-1] / sample_rate
    if seconds <= backend.segment_seconds:
        return False
    if edit.type == "paralinguistic" and not edit.option:
        raise EditError(
            f"the slice ({seconds:.1f} s) is edited in segments of at most "
            f"{backend.segment_seconds:g} s, which cannot share out a target_text: send "
            "'option' and 'position' instead, or a shorter slice"
        )
    return True


def _run_segments(
    backend: TokenBackend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    guard: Guard,
    clock: _StageClock,
) -> Rendered:
    """Edits a long slice in segments cut at pauses (outside its words and, where it can,
    outside the speech the silence remover finds) and stitches them in the pauses.

    Each segment is edited with its own words (and its insertion positions; a
    paralinguistic segment without one is kept as it is) and fitted to its own loudness.
    The result's ``info["segments"]`` holds, per segment, its ``start`` and ``end`` in the
    slice, ``output_start`` (where it begins in the result, before ``keep_length``) and the
    backend's fields for it; the stage names say which segment is running.
    """
    words = edit.transcript.words if edit.transcript is not None else ()
    speech = _speech(samples, sample_rate)
    segments = plan_segments(samples, sample_rate, backend.segment_seconds, words, speech)
    count = len(segments)
    pieces: list[np.ndarray] = []
    reports: list[dict[str, Any]] = []
    for index, segment in enumerate(segments):
        part = samples[:, segment.start : segment.end]
        step = _segment_progress(progress, index, count)
        step(0.0, "segment")
        sub = _segment_edit(edit, segment, sample_rate, last=index == count - 1)
        report: dict[str, Any] = {
            "start": round(segment.start / sample_rate, 3),
            "end": round(segment.end / sample_rate, 3),
        }
        if sub is None:
            pieces.append(part)
            reports.append({**report, "edited": False})
            continue
        rendered, _ = _checked_passes(backend, part, sample_rate, sub, step, guard, clock)
        loudness = audio.integrated_loudness(part, sample_rate)
        pieces.append(fit_to_source(rendered, sample_rate, samples.shape[0], loudness))
        reports.append({**report, **rendered.info})
    out, starts = stitch(pieces, sample_rate)
    for report, start in zip(reports, [0, *starts], strict=True):
        report["output_start"] = round(start / sample_rate, 3)
    change = audio.integrated_loudness(out, sample_rate) - audio.integrated_loudness(
        samples, sample_rate
    )
    offset = change if np.isfinite(change) else 0.0  # the pieces' own loudness stays
    return Rendered(out, sample_rate, float(offset), {"segments": reports})


def _clone_from_first_segment(
    backend: TokenBackend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    guard: Guard,
    clock: _StageClock,
) -> Rendered:
    """Clones in the voice of the slice's first segment, with its words: a voice prompt as
    long as the model edits well (the official guidance: under 30 s). The result's
    ``info["voice_prompt"]`` gives its ``start`` and ``end`` in the slice."""
    words = edit.transcript.words if edit.transcript is not None else ()
    speech = _speech(samples, sample_rate)
    first = plan_segments(samples, sample_rate, backend.segment_seconds, words, speech)[0]
    prompt = samples[:, : first.end]
    sub = replace(edit, text=first.text, transcript=None)
    rendered, _ = _checked_passes(backend, prompt, sample_rate, sub, progress, guard, clock)
    voice = {"start": 0.0, "end": round(first.end / sample_rate, 3)}
    rendered.info = {**rendered.info, "voice_prompt": voice}
    return rendered


def _segment_progress(progress: Progress, index: int, count: int) -> Progress:
    """Segment ``index``'s share of the bar, its stages named ``"<stage> <n>/<count>"``."""
    share = scaled_progress(progress, index / count, (index + 1) / count)
    return lambda f, stage: share(f, f"{stage} {index + 1}/{count}")


def _segment_edit(
    edit: EditSpec, segment: Segment, sample_rate: int, last: bool
) -> EditSpec | None:
    """The edit of one segment: its words, its insertion positions (in segment time); ``None``
    for a paralinguistic segment without an insertion (it stays as it is)."""
    start, end = segment.start / sample_rate, segment.end / sample_rate
    positions = tuple(p - start for p in edit.positions if start <= p < end or (last and p == end))
    if edit.type == "paralinguistic" and not positions:
        return None
    return replace(edit, text=segment.text, positions=positions, transcript=None)


def _checked_passes(
    backend: TokenBackend,
    samples: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    guard: Guard,
    clock: _StageClock,
) -> tuple[Rendered, LastPass | None]:
    """The passes of ``edit`` on one slice, generated again while ``guard`` finds that they
    say the wrong words (edit types in ``backend.reads_text`` only), and the last pass of
    the try returned (token feedback only); the first prompt is made once for all tries."""
    prompts: list[Any] = []
    tries: list[tuple[Rendered, LastPass | None]] = []

    def first_prompt(step: Progress) -> Any:
        if not prompts:
            prompts.append(_first_prompt(backend, samples, sample_rate, step))
        return prompts[0]

    def render(attempt: EditSpec, step: Progress) -> Rendered:
        tries.append(_run_token_passes(backend, first_prompt, attempt, step, clock))
        return tries[-1][0]

    if edit.type not in backend.reads_text:
        render(edit, progress)
        return tries[0]
    rendered, checking = guarded(render, edit, guard, progress)
    if checking:
        clock.add("check", checking)
    return next(t for t in tries if t[0] is rendered)


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
) -> tuple[Rendered, LastPass | None]:
    """``iterations`` passes of generate, each on the previous pass's output; one decode.

    The first pass's prompt comes from ``first_prompt`` (the slice tokenized, or an earlier
    edit continued). A ``TokenFeedbackBackend`` starts pass k+1 from pass k's tokens: only
    the last pass is decoded, and it is returned as well. Other token backends, and
    feedback backends with ``retokenize`` set, decode every pass and tokenize its audio
    again, as the official pipeline does; each decode reports its loudness change against
    its own input, so the changes add up.
    """
    passes = edit.iterations
    loudness_change = 0.0
    prompt: Any = None
    generated: Any = None
    step = progress
    for i in range(passes):
        previous, step = step, scaled_progress(progress, i / passes, (i + 1) / passes)
        if i == 0:
            with clock("tokenize"):
                prompt = first_prompt(step)
        elif _feeds_back(backend):
            with clock("tokenize"):
                prompt = backend.next_prompt(generated, prompt, step)
        else:
            with clock("decode"):
                decoded = backend.decode(generated, prompt, previous)  # the last pass's end
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
    return rendered, LastPass(generated, prompt, rendered) if _feeds_back(backend) else None


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


# Keep length (``EditSpec.keep_length``): pauses are shortened first, those nearest the added
# sound first, each to no less than _MIN_PAUSE_S; the rest is time-scaled.
_MIN_PAUSE_S = 0.15
_JOIN_FADE_S = 0.01
# Result words whose sound the edit added (``words`` of text edits).
_ADDED_WORDS = frozenset({"inserted", "new", "replaced"})


def added_spans(info: dict[str, Any], sample_rate: int) -> list[tuple[int, int]]:
    """Sample ranges of the result that an edit added, as the backend reported them.

    ``insertions`` (nonverbal sounds: input position and duration, each shifting the later
    ones) and ``words`` of text edits whose action is ``inserted``, ``new`` or ``replaced``
    (start and end in the result). Backends that report neither (a model re-saying the
    whole slice) give none.
    """
    spans, shift = [], 0.0
    for insertion in info.get("insertions", ()):
        start = insertion["position"] + shift
        spans.append((start, start + insertion["duration"]))
        shift += insertion["duration"]
    spans += [(w["start"], w["end"]) for w in info.get("words", ()) if w["action"] in _ADDED_WORDS]
    return sorted((round(a * sample_rate), round(b * sample_rate)) for a, b in spans)


def _outside(pause: tuple[int, int], spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``pause`` that no span covers (an added sound starts and ends quietly,
    so the pause next to it may reach into it; so may a word's quiet edge)."""
    parts = [pause]
    for s, e in spans:
        parts = [p for a, b in parts for p in ((a, min(b, s)), (max(a, e), b)) if p[1] > p[0]]
    return parts


def _silences(out: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
    """Pauses that are quiet (``engine.dsp.pauses``) and hold no speech: outside the
    silence remover's speech, whose word edges are found on the audio, by its cut guard.

    The level rule alone took quiet word endings for pauses (LJ050: 0.6 s inside the last
    word, "thereunder").
    """
    speech = _speech(out, sample_rate)
    return [
        part
        for pause in pauses(audio.to_mono(out), sample_rate, _MIN_PAUSE_S)
        for part in _outside(pause, speech)
    ]


def _speech(out: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
    """Sample ranges of speech as the silence remover finds it, widened by its cut guard."""
    from engine.backends.cpu.vad import CUT_GUARD_S, SilenceRemover  # Silero on first use

    guard = round(CUT_GUARD_S * sample_rate)
    return [(a - guard, b + guard) for a, b in SilenceRemover().speech_samples(out, sample_rate)]


def _shorten_pauses(
    out: np.ndarray, sample_rate: int, excess: int, spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Removes up to ``excess`` samples from the pauses, those nearest ``spans`` first.

    Each pause keeps ``_MIN_PAUSE_S``, half on each side, and loses the middle (joined with
    a 10 ms cross-fade); the added sound itself is never cut.
    """
    keep = round(_MIN_PAUSE_S * sample_rate)
    fade = round(_JOIN_FADE_S * sample_rate)
    candidates = sorted(
        (min(a - e if a >= e else s - b for s, e in spans), a, b)
        for pause in _silences(out, sample_rate)
        for a, b in _outside(pause, spans)
    )
    cuts = []
    for _nearness, a, b in candidates:
        if excess <= 0:
            break
        take = min(b - a - keep, excess)
        if take > fade:
            cuts.append(((a + b) // 2 - take // 2, take))
            excess -= take
    pieces, previous = [], 0
    for start, take in sorted(cuts):
        # The piece ends `fade` samples into the removed stretch, which the cross-fade
        # overlaps with the next piece: each cut shortens the audio by exactly `take`.
        pieces.append(out[:, previous : start + fade])
        previous = start + take
    pieces.append(out[:, previous:])
    return audio.crossfade_concat(pieces, fade)


def fit_duration(
    out: np.ndarray, sample_rate: int, length: int, spans: Sequence[tuple[int, int]] = ()
) -> tuple[np.ndarray, float]:
    """Fits ``(channels, samples)`` audio to exactly ``length`` samples.

    A result longer than ``length`` with added sound (``spans``, sample ranges) first loses
    pause (down to ``_MIN_PAUSE_S`` per pause, those nearest the sound first); whatever
    difference remains is time-scaled with Rubber Band, which keeps pitch and formants (the
    CPU backend's speed change: F0 within 0.5 %, speaker similarity 0.97 at x0.8).

    Returns:
        The fitted audio and the time-scale factor used: the duration after the time-scale
        over the duration before it (1.0 when none was needed, < 1 when compressed).
    """
    if out.shape[-1] > length and spans:
        out = _shorten_pauses(out, sample_rate, out.shape[-1] - length, spans)
    if out.shape[-1] == length:
        return out, 1.0
    from engine.backends.cpu.speed import change_speed  # pedalboard loads on first use

    factor = length / out.shape[-1]
    return change_speed(out, sample_rate, 1 / factor), factor
