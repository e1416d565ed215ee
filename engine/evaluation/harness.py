"""Renders edits on clips with a backend (directly, no OSC) and measures each result."""

from __future__ import annotations

import csv
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engine import audio as audio_io
from engine.backends.base import Backend
from engine.edits import EDIT_TYPES, EditSpec, edit_label, parse_edit
from engine.errors import EditError, StepEditError
from engine.evaluation.metrics import Measures, compare, measure
from engine.pipeline import render_audio

__all__ = [
    "Clip",
    "EditResult",
    "default_edits",
    "evaluate",
    "find_clips",
    "parse_edit_spec",
    "result_label",
]

_LOG = logging.getLogger(__name__)

_AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif"}


@dataclass(frozen=True)
class Clip:
    """One evaluation clip.

    Attributes:
        name: File name.
        audio: ``float32 (channels, samples)``.
        sample_rate: Its rate.
        transcript: What is said, when known (enables WER).
    """

    name: str
    audio: np.ndarray
    sample_rate: int
    transcript: str = ""

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass
class EditResult:
    """One edit rendered on one clip and measured.

    Attributes:
        clip: Clip name.
        edit: Edit label (``"original"`` for the untouched clip's row).
        measures: Acoustic measures of the result.
        changes: :func:`engine.evaluation.metrics.changes` against the original.
        speaker_similarity: Cosine similarity to the original's voice (NaN if not run).
        wer: Word error rate against the transcript (NaN if unknown or not run).
        dnsmos_ovrl: DNSMOS P.835 overall (NaN if not run).
        rtf: Render time / clip duration.
        audio: The fitted result (for plots), at ``sample_rate``.
        sample_rate: Rate of ``audio``.
        error: Why the render failed, if it did.
    """

    clip: str
    edit: str
    measures: Measures | None = None
    changes: dict[str, float] = field(default_factory=dict)
    speaker_similarity: float = math.nan
    wer: float = math.nan
    dnsmos_ovrl: float = math.nan
    rtf: float = math.nan
    audio: np.ndarray | None = field(default=None, repr=False)
    sample_rate: int = 0
    error: str = ""


_EDIT_SPEC = re.compile(
    r"^(?P<type>[^:@*]+)(?::(?P<option>[^@*]+))?(?:\*(?P<count>\d+))?(?:@(?P<at>[\d.,\s]+))?$"
)


def parse_edit_spec(text: str) -> EditSpec:
    """Parses ``type[:option][*iterations][@seconds[,seconds...]]``.

    Examples: ``emotion:happy``, ``emotion:sad*3``, ``style:whisper``,
    ``paralinguistic:Laughter@1.5,4``, ``denoise``.

    Raises:
        EditError: for a malformed spec or an unknown type or option (naming the allowed ones).
    """
    match = _EDIT_SPEC.match(text.strip())
    if match is None:
        raise EditError(
            f"cannot read edit {text!r}; write type[:option][*iterations][@seconds,...], "
            "e.g. emotion:happy*2 or paralinguistic:Laughter@1.5"
        )
    at = match["at"] or ""
    return parse_edit(
        {
            "type": match["type"].strip(),
            "option": (match["option"] or "").strip(),
            "iterations": int(match["count"] or 1),
            "position": [float(p) for p in at.split(",") if p.strip()] or None,
        }
    )


def default_edits(backend: Backend, clip_seconds: float) -> list[EditSpec]:
    """Every emotion and style option the backend renders, and each nonverbal tag at 40 %
    of the clip."""
    edits = [
        EditSpec(kind, option)
        for kind in ("emotion", "style")
        for option in backend.edits.get(kind, ())
    ]
    edits += [
        EditSpec("paralinguistic", tag, positions=(round(0.4 * clip_seconds, 2),))
        for tag in backend.edits.get("paralinguistic", ())
    ]
    return edits


def _transcripts(folder: Path) -> dict[str, str]:
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        return {}
    with manifest.open(newline="", encoding="utf-8") as f:
        return {
            row["file"]: row.get("transcript", "").strip()
            for row in csv.DictReader(f)
            if row.get("file")
        }


def find_clips(paths: Iterable[Path]) -> list[Clip]:
    """Loads clips from files or folders; transcripts come from a sidecar ``<clip>.txt`` or
    a ``manifest.csv`` (columns ``file``, ``transcript``) beside the clip.

    Raises:
        StepEditError: when a file cannot be read as audio.
    """
    files: list[Path] = []
    for path in paths:
        path = path.resolve()
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in _AUDIO_SUFFIXES)
        else:
            files.append(path)
    clips = []
    manifests: dict[Path, dict[str, str]] = {}
    for file in files:
        samples, source = audio_io.read_slice(file)
        sidecar = file.with_suffix(".txt")
        if sidecar.is_file():
            transcript = sidecar.read_text(encoding="utf-8").strip()
        else:
            if file.parent not in manifests:
                manifests[file.parent] = _transcripts(file.parent)
            transcript = manifests[file.parent].get(file.name, "")
        clips.append(Clip(file.name, samples, source.sample_rate, transcript))
    return clips


def result_label(edit: EditSpec) -> str:
    """Row label: ``emotion:happy x2``, ``style:whisper``, ``Laughter@1.5``, ``denoise``."""
    if edit.type == "paralinguistic":
        return f"{edit.option}@{','.join(f'{p:g}' for p in edit.positions)}"
    if edit.type in {"emotion", "style"}:
        return f"{edit.type}:{edit_label(edit)}"
    return edit_label(edit)


def _optional(name: str, function: Callable[[], float]) -> float:
    try:
        return function()
    except StepEditError as e:
        _LOG.warning("%s skipped: %s", name, e)
        return math.nan


def evaluate(
    backend: Backend,
    clips: Sequence[Clip],
    edits: Callable[[Clip], Sequence[EditSpec]],
    *,
    similarity: bool = True,
    asr: bool = True,
    quality: bool = True,
) -> list[EditResult]:
    """Renders every edit on every clip and measures it; one row per clip's original too.

    Args:
        backend: A backend; every edit runs through the engine's own pipeline
            (``render_audio``: iterations, then rate, channels and loudness as the engine
            writes them).
        clips: The clips.
        edits: The edits to run on a clip.
        similarity: Compute speaker similarity (needs resemblyzer's weights).
        asr: Compute WER where a transcript is known (needs faster-whisper + the model).
        quality: Compute DNSMOS (needs speechmos' model + onnxruntime).

    Returns:
        Results in order: each clip's original, then its edits. A failing render gives a
        row with ``error`` set instead of stopping the run.
    """
    from engine.evaluation.asr import transcribe, word_error_rate
    from engine.evaluation.dnsmos import dnsmos
    from engine.evaluation.speaker_similarity import speaker_similarity

    def extras(row: EditResult, clip: Clip, result: np.ndarray) -> None:
        nonlocal similarity, asr, quality
        if similarity:
            row.speaker_similarity = _optional(
                "speaker similarity",
                lambda: speaker_similarity(clip.audio, clip.sample_rate, result, clip.sample_rate),
            )
            similarity = not math.isnan(row.speaker_similarity)
        if asr and clip.transcript:
            row.wer = _optional(
                "word error rate",
                lambda: word_error_rate(clip.transcript, transcribe(result, clip.sample_rate)),
            )
            asr = not math.isnan(row.wer)
        if quality:
            row.dnsmos_ovrl = _optional("DNSMOS", lambda: dnsmos(result, clip.sample_rate)["ovrl"])
            quality = not math.isnan(row.dnsmos_ovrl)

    results = []
    for clip in clips:
        before = measure(clip.audio, clip.sample_rate)
        original = EditResult(
            clip.name, "original", before, audio=clip.audio, sample_rate=clip.sample_rate
        )
        extras(original, clip, clip.audio)
        results.append(original)
        for edit in edits(clip):
            if clip.transcript and not edit.text and "text" in EDIT_TYPES[edit.type].uses:
                edit = replace(edit, text=clip.transcript)  # backends that read it get it
            label = result_label(edit)
            _LOG.info("%s: %s", clip.name, label)
            row = EditResult(clip.name, label)
            try:
                started = time.perf_counter()
                edited = render_audio(
                    backend, clip.audio, clip.sample_rate, edit, lambda _f, _s: None
                )
                row.rtf = (time.perf_counter() - started) / clip.duration
                result = edited.audio
            except StepEditError as e:
                row.error = str(e)
                results.append(row)
                continue
            row.audio, row.sample_rate = result, clip.sample_rate
            row.measures, row.changes = compare(
                clip.audio, clip.sample_rate, result, clip.sample_rate, before
            )
            extras(row, clip, result)
            results.append(row)
    return results
