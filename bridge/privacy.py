"""Privacy before upload: time ranges and words marked sensitive, masked on the client.

The masking is the text editor's (``engine.backends.cpu.text_edit.masks``): each sensitive
span becomes a masked unit of a take and is overwritten, from the end of the pause before
it to the start of the pause after it, with room tone, silence or a bleep; the length stays,
so every other time in the slice stays where it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the audio stack is imported when something is masked
    import numpy as np

    from engine.text.diff import Unit

__all__ = ["MASK_SOUNDS", "Sensitive", "mask_slice", "words_from_sidecar"]

MASK_SOUNDS = ("room_tone", "silence", "bleep")


@dataclass(frozen=True)
class Sensitive:
    """What must not leave the machine.

    Attributes:
        ranges: ``(start, end)`` seconds in the source file.
        words: Words to mask wherever the transcript has them (case and punctuation
            ignored).
        transcript_words: ``(word, source_start, source_end)`` of the slice's transcript,
            e.g. from a sidecar of ``stepedit transcribe`` (``words_from_sidecar``).
        sound: ``room_tone``, ``silence`` or ``bleep``.
    """

    ranges: tuple[tuple[float, float], ...] = ()
    words: tuple[str, ...] = ()
    transcript_words: tuple[tuple[str, float, float], ...] = ()
    sound: str = "room_tone"

    def __post_init__(self) -> None:
        if self.sound not in MASK_SOUNDS:
            raise ValueError(f"sound must be one of {MASK_SOUNDS}, got {self.sound!r}")
        if self.words and not self.transcript_words:
            raise ValueError("sensitive words need a transcript (a sidecar) to find them")
        for start, end in self.ranges:
            if not 0 <= start < end:
                raise ValueError(f"a sensitive range needs 0 <= start < end, got {start}-{end}")

    def __bool__(self) -> bool:
        return bool(self.ranges or self.words)


def words_from_sidecar(path: Path) -> tuple[tuple[str, float, float], ...]:
    """The words of a transcript sidecar (``stepedit transcribe``) with their source times.

    Raises:
        ValueError: the file is not a transcript sidecar.
        OSError: it cannot be read.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    transcript = data.get("transcript", data) if isinstance(data, dict) else None
    try:
        return tuple(
            (str(w["word"]), float(w["source_start"]), float(w["source_end"]))
            for w in transcript["words"]  # type: ignore[index]
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a StepEdit transcript sidecar: {e}") from e


def mask_slice(
    audio: np.ndarray, sample_rate: int, slice_start: float, sensitive: Sensitive
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The slice with its sensitive spans masked.

    Args:
        audio: ``float32 (channels, samples)``, the slice.
        sample_rate: Its rate.
        slice_start: Where the slice starts in the source file, in seconds.
        sensitive: What to mask.

    Returns:
        The masked slice (a copy) and the spans marked sensitive, in seconds of the slice.
    """
    from engine.audio import integrated_loudness, to_mono
    from engine.backends.cpu.text_edit.layout import Piece
    from engine.backends.cpu.text_edit.masks import piece_audio
    from engine.backends.cpu.text_edit.take import Take
    from engine.text.diff import Step

    duration = audio.shape[-1] / sample_rate
    spans = _spans(sensitive, slice_start, duration)
    if not spans:
        return audio.copy(), []
    words = [
        (word, start - slice_start, end - slice_start)
        for word, start, end in sensitive.transcript_words
        if end - slice_start > 0 and start - slice_start < duration
    ]
    units, masked = _units(words, spans)
    take = Take(to_mono(audio), sample_rate, tuple(units))
    steps = [
        Step("masked" if k in masked else "kept", unit.text, unit=k) for k, unit in enumerate(units)
    ]
    piece = Piece(steps, left=0.0, right=duration)
    loudness = integrated_loudness(audio, sample_rate)
    out = piece_audio(audio, piece, take, sensitive.sound, loudness)
    return out[:, : audio.shape[-1]], spans


def _spans(sensitive: Sensitive, slice_start: float, duration: float) -> list[tuple[float, float]]:
    """The sensitive ranges and words, in seconds of the slice, clipped to it, sorted."""
    from engine.text.diff import normalise

    wanted = {normalise(word) for word in sensitive.words}
    spans = list(sensitive.ranges) + [
        (start, end) for word, start, end in sensitive.transcript_words if normalise(word) in wanted
    ]
    clipped = [
        (max(0.0, a - slice_start), min(duration, b - slice_start))
        for a, b in spans
        if b - slice_start > 0 and a - slice_start < duration
    ]
    return sorted(clipped)


def _units(
    words: Sequence[tuple[str, float, float]], spans: Sequence[tuple[float, float]]
) -> tuple[list[Unit], set[int]]:
    """Units of the take: the sensitive spans (merged where they overlap) and the other
    words around them; the indices of the masked ones."""
    from engine.text.diff import Unit, normalise

    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    items = [(a, b, "", True) for a, b in merged] + [
        (a, b, word, False)
        for word, a, b in words
        if not any(a < y and b > x for x, y in merged) and b > a
    ]
    units: list[Unit] = []
    masked: set[int] = set()
    for k, (a, b, text, is_masked) in enumerate(sorted(items)):
        units.append(Unit(text, normalise(text), a, b, k))
        if is_masked:
            masked.add(k)
    return units, masked
