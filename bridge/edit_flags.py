"""The edit as people name it (``--emotion happy``, ``StepEdit(denoise=True)``) -> request JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["EDIT_FLAGS", "edit_from_flags"]

# One flag (CLI option, or keyword of the pedalboard wrapper) per edit; ``as_text`` is the
# ``text`` edit, ``clone`` and ``as_text`` take the target text as their value.
EDIT_FLAGS = (
    "emotion",
    "style",
    "speed",
    "paralinguistic",
    "denoise",
    "vad",
    "clone",
    "as_text",
    "fillers",
)


def edit_from_flags(
    *,
    emotion: str | None = None,
    style: str | None = None,
    speed: str | None = None,
    paralinguistic: str | None = None,
    denoise: bool = False,
    vad: bool = False,
    clone: str | None = None,
    as_text: str | None = None,
    fillers: bool = False,
    mask: str | None = None,
    iterations: int = 1,
    text: str | None = None,
    position: float | Sequence[float] | None = None,
    language: str | None = None,
    keep_length: bool = False,
    decode_passes: bool = False,
) -> dict[str, Any]:
    """The request's ``edit`` object for exactly one named edit.

    The engine validates the result (``engine.edits.parse_edit``); this only maps names.

    Args:
        emotion: e.g. ``"happy"``.
        style: e.g. ``"whisper"``.
        speed: ``"faster"``, ``"slower"``, ``"more faster"`` or ``"more slower"``.
        paralinguistic: A tag, e.g. ``"Laughter"``; needs ``position``.
        denoise: Remove background noise.
        vad: Remove silences.
        clone: Say this text in the clip's voice.
        as_text: Edit as text: the transcript as it should be (``text`` is the one it was
            made from).
        fillers: Remove um, uh, 嗯 ... and their pauses.
        mask: What ``{masked}`` words of an ``as_text`` edit become.
        iterations: 1-5 passes.
        text: Transcript of the input.
        position: Insertion time(s) in seconds.
        language: ``auto``, ``en`` or ``zh``.
        keep_length: Fit the result to the input's duration.
        decode_passes: Also decode and write every iteration before the last.

    Raises:
        ValueError: not exactly one edit is named.
    """
    named: list[tuple[str, str]] = [
        (edit_type, option)
        for edit_type, option in (
            ("emotion", emotion),
            ("style", style),
            ("speed", speed),
            ("paralinguistic", paralinguistic),
        )
        if option
    ]
    named += [(edit_type, "") for edit_type, on in (("denoise", denoise), ("vad", vad)) if on]
    named += [("fillers", "")] if fillers else []
    named += [("clone", "")] if clone is not None else []
    named += [("text", mask or "")] if as_text is not None else []
    if len(named) != 1:
        given = ", ".join(t for t, _ in named) or "none"
        raise ValueError(f"name exactly one edit of {', '.join(EDIT_FLAGS)}; got {given}")
    edit_type, option = named[0]
    edit: dict[str, Any] = {"type": edit_type, "iterations": iterations}
    if option:
        edit["option"] = option
    if text:
        edit["text"] = text
    if clone or as_text:
        edit["target_text"] = clone or as_text
    if isinstance(position, int | float):
        edit["position"] = position
    elif position:
        edit["position"] = list(position)
    if language:
        edit["language"] = language
    if keep_length:
        edit["keep_length"] = True
    if decode_passes:
        edit["decode_passes"] = True
    return edit
