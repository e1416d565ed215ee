"""Guarded generation: a model's render is heard back and compared with what it should say.

Step-Audio-EditX sometimes drops or invents words. After decoding, the render is
transcribed and scored against the intended text (the slice's text for an edit that keeps
the words; the new text, tags left out, for paralinguistic ``target_text`` and clone); above
``Guard.max_wer`` the edit is generated again with a new seed, up to ``Guard.tries`` times,
and the best try is kept. Its word error, the tries and its seed join the result's
``generation``.

A ``text`` edit's new words are re-said span by span, each a clone of its words in the
take's voice (``WordBackend.render_words``); each span's generation is checked alone, as a
clone, before it is spliced in. Checking the whole result against the edited transcript
would be blind where it matters: a word dropped from a two-word span among fifty kept ones
moves the whole take's error by 2 %, under any useful threshold, while the recogniser's
own slips on the kept words (which no new seed changes) could trigger tries in vain.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.audio import resample, to_mono
from engine.backends.base import Progress, Rendered, scaled_progress
from engine.edits import EditSpec
from engine.errors import StepEditError
from engine.evaluation.asr import normalise_words, word_error_rate
from engine.text.align import split_tokens
from engine.text.diff import parse_target
from engine.text.transcript import is_cjk, join_words

__all__ = ["Checker", "Guard", "guarded", "heard_text", "intended_text", "word_errors"]

_LOG = logging.getLogger(__name__)

# (render, its rate, language: "en" or "zh") -> the words heard in it.
Checker = Callable[[np.ndarray, int, str], str]
# Share of one try's progress bar that the render takes; the check takes the rest.
_RENDER_END = 0.9
_SEEDS = 1 << 31


def heard_text(audio: np.ndarray, sample_rate: int, language: str) -> str:
    """The words the engine's recogniser hears in ``audio`` (``en``: Whisper tiny.en; ``zh``:
    the multilingual model), without prompt: plain recognition, no word times."""
    from engine.text.asr import ASR_RATE, recognise  # the ASR stack loads on first use
    from engine.text.models import whisper_for

    mono = resample(to_mono(np.atleast_2d(audio)), sample_rate, ASR_RATE)
    return join_words(w.text for w in recognise(mono, whisper_for(language), language).words)


@dataclass(frozen=True)
class Guard:
    """How generations are checked.

    Attributes:
        max_wer: Word error rate (every CJK character a word) up to which a try is kept.
        tries: Generations at most, the first included (1: check and report only).
        check: Hears a render in a language (``en`` or ``zh``: the edit's, or for ``auto``
            the intended text's); the engine's recogniser by default.
    """

    max_wer: float = 0.2
    tries: int = 3
    check: Checker = heard_text

    def __post_init__(self) -> None:
        if self.max_wer < 0 or self.tries < 1:
            raise ValueError(
                f"guard needs max_wer >= 0 and tries >= 1, got {self.max_wer}, {self.tries}"
            )


def intended_text(edit: EditSpec) -> str:
    """What a render of ``edit`` should say: the words of ``target_text`` (tags and other
    bracketed text left out) for clone and tagged paralinguistic edits, else ``text``."""
    if edit.type in ("clone", "paralinguistic") and edit.target_text:
        return join_words(t.text for t in parse_target(edit.target_text) if t.kind == "word")
    return edit.text


def word_errors(intended: str, heard: str) -> float:
    """Word error rate of ``heard`` against ``intended``, every CJK character a word."""
    return word_error_rate(" ".join(split_tokens(intended)), " ".join(split_tokens(heard)))


@dataclass
class _Try:
    rendered: Rendered
    wer: float
    seed: Any


def guarded(
    render: Callable[[EditSpec, Progress], Rendered],
    edit: EditSpec,
    guard: Guard,
    progress: Progress,
) -> tuple[Rendered, float]:
    """Renders ``edit`` until a try says the intended text well enough, or ``guard.tries``.

    Nothing is checked when ``edit.guard`` is off or the intended text has no words; a
    checker that fails (no recogniser installed) is logged and the first try kept, with
    ``wer`` ``None``.

    Args:
        render: Renders an edit (the seed set for tries after the first).
        edit: The edit.
        guard: Threshold, tries and checker.
        progress: Each try gets an equal share; a try that passes jumps to the end.

    Returns:
        The best try, its ``info["generation"]`` extended with ``wer``, ``tries`` and
        ``seed``, and the seconds spent checking.
    """
    intended = intended_text(edit)
    if not edit.guard or not normalise_words(intended):
        return render(edit, progress), 0.0
    language = edit.language
    if language == "auto":
        language = "zh" if any(is_cjk(ch) for ch in intended) else "en"
    made: list[_Try] = []
    seed = edit.seed
    checking = 0.0
    for attempt in range(guard.tries):
        step = scaled_progress(progress, attempt / guard.tries, (attempt + 1) / guard.tries)
        rendered = render(replace(edit, seed=seed), scaled_progress(step, 0.0, _RENDER_END))
        used = rendered.info.get("generation", {}).get("seed", seed)
        step(_RENDER_END, "check")
        started = time.perf_counter()
        try:
            heard = guard.check(rendered.audio, rendered.sample_rate, language)
        except StepEditError as e:
            _LOG.warning("generation not checked: %s", e)
            checking += time.perf_counter() - started
            return _report(rendered, None, attempt + 1, used), checking
        checking += time.perf_counter() - started
        made.append(_Try(rendered, word_errors(intended, heard), used))
        _LOG.info(
            "try %d (seed %s): word error %.3f, heard %r", attempt + 1, used, made[-1].wer, heard
        )
        if made[-1].wer <= guard.max_wer:
            break
        seed = (used + 1) % _SEEDS if isinstance(used, int) else secrets.randbits(31)
    best = min(made, key=lambda t: t.wer)  # the first of equals
    progress(1.0, "check")
    return _report(best.rendered, best.wer, len(made), best.seed), checking


def _report(rendered: Rendered, wer: float | None, tries: int, seed: Any) -> Rendered:
    generation = {
        **rendered.info.get("generation", {}),
        "wer": None if wer is None else round(wer, 4),
        "tries": tries,
        "seed": seed,
    }
    rendered.info = {**rendered.info, "generation": generation}
    return rendered
