"""Text edits on the CPU: a word plan (``engine.text.diff``) rendered at word boundaries.

The plan becomes cuts, masks, splices and tags: ``take`` finds the gap at every word
boundary, ``layout`` places the kept, moved and re-said stretches in those gaps, ``masks``
overwrites masked words, ``tags`` synthesises tags, ``say`` has a backend say new words and
fits them to the take, and ``splice`` joins it all and reports where each word went.
"""

from __future__ import annotations

import numpy as np

from engine.backends.base import Progress, Rendered
from engine.backends.cpu.text_edit.say import Say
from engine.backends.cpu.text_edit.splice import render_plan, unchanged
from engine.edits import MASK_SOUNDS, EditSpec
from engine.errors import BackendError, EditError, UnsupportedEditError
from engine.text.diff import plan_fillers, plan_text
from engine.text.transcript import Transcript

__all__ = ["Say", "render_fillers", "render_text", "render_words"]


def _transcript(edit: EditSpec) -> Transcript:
    if edit.transcript is None:
        raise BackendError(
            f"a {edit.type} edit reached the cpu backend without the slice's words; the engine "
            "must transcribe the slice and set EditSpec.transcript before rendering"
        )
    return edit.transcript


def _new_words_error(words: tuple[str, ...]) -> UnsupportedEditError:
    """Names the registered backends that can say new words in the speaker's voice: those
    that declare both text edits and voice cloning."""
    from engine.capabilities import backends_rendering

    text = " ".join(words)
    able = backends_rendering(
        EditSpec("text", MASK_SOUNDS[0], target_text=text),
        EditSpec("clone", target_text=text),
        besides="cpu",
    )
    where = (
        f"backends that can say them in the speaker's voice: {', '.join(able)}"
        if able
        else "no installed backend can say new words yet"
    )
    quoted = ", ".join(repr(w) for w in words)
    return UnsupportedEditError(
        f"the cpu backend cannot say new words ({quoted}): it cuts, moves and masks only words "
        f"the take holds; {where}"
    )


def render_words(
    audio: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    say: Say | None = None,
) -> Rendered:
    """Renders an edit on words (``text`` or ``fillers``); ``say`` says new words."""
    if edit.type == "text":
        return render_text(audio, sample_rate, edit, progress, say=say)
    if edit.type == "fillers":
        return render_fillers(audio, sample_rate, edit, progress)
    raise BackendError(f"{edit.type!r} is not an edit on words (text, fillers)")


def render_text(
    audio: np.ndarray,
    sample_rate: int,
    edit: EditSpec,
    progress: Progress,
    say: Say | None = None,
) -> Rendered:
    """Renders a ``text`` edit: ``edit.target_text`` against ``edit.transcript``.

    Args:
        audio: ``float32 (channels, samples)``.
        sample_rate: Its rate in Hz.
        edit: The edit, with the slice's words in ``edit.transcript``.
        progress: Progress callback.
        say: Says new words in the take's voice (a backend's clone); without it, new words
            are unsupported.

    Raises:
        BackendError: when the engine did not supply the transcript, or ``say`` returned
            nothing usable.
        UnsupportedEditError: for words the take does not hold and no ``say``, naming the
            backends that can say them.
        EditError: for a target text that leaves nothing, or bad brackets.
    """
    transcript = _transcript(edit)
    if not transcript.words:
        raise EditError("no words were found in the slice, so there is nothing to edit as text")
    plan = plan_text(transcript, edit.target_text, edit.text)
    if plan.new_words and say is None:
        raise _new_words_error(plan.new_words)
    return render_plan(
        audio, sample_rate, plan, progress, mask_sound=edit.option or MASK_SOUNDS[0], say=say
    )


def render_fillers(
    audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """Renders a ``fillers`` edit: words marked as fillers, and words of ``edit.fillers`` (by
    default the language's list), go with their hesitation pauses.

    Raises:
        BackendError: when the engine did not supply the transcript.
    """
    plan = plan_fillers(_transcript(edit), edit.language, edit.fillers)
    if not plan.deleted:
        return unchanged(audio, sample_rate, plan)
    return render_plan(audio, sample_rate, plan, progress, hesitation=True)
