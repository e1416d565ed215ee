"""The Backend protocol: load once, then render arrays (or tokenize/generate/decode)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from engine.edits import EditSpec

if TYPE_CHECKING:
    from engine.guard import Guard

__all__ = [
    "Backend",
    "Progress",
    "RenderBackend",
    "Rendered",
    "TokenBackend",
    "TokenFeedbackBackend",
    "WordBackend",
    "scaled_progress",
]

# Called by backends with (fraction of their own work in 0..1, stage name). It raises
# engine.errors.JobCancelled when the job was cancelled, so long loops must call it often.
Progress = Callable[[float, str], None]


def scaled_progress(progress: Progress, start: float, end: float) -> Progress:
    """Maps a step's own 0..1 progress onto ``[start, end]`` of the caller's bar."""
    return lambda f, stage: progress(start + (end - start) * min(max(f, 0.0), 1.0), stage)


@dataclass
class Rendered:
    """What a backend hands back.

    Attributes:
        audio: ``float32`` array shaped ``(channels, samples)``; the engine fits channel
            count, rate and loudness to the source afterwards.
        sample_rate: Rate of ``audio`` in Hz.
        loudness_offset_db: Loudness of the result relative to the input slice (0 = match
            it); lets quiet styles such as whisper stay quieter.
        info: Extra fields merged into the result JSON (e.g. why generation stopped).
    """

    audio: np.ndarray
    sample_rate: int
    loudness_offset_db: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """What every backend declares and does.

    ``edits`` maps each supported edit type to the options this backend renders (an empty
    tuple for types without options). ``/stepedit/capabilities`` is generated from it.
    ``tagged_text`` says whether it renders paralinguistic tags written inline in
    ``target_text`` (a paralinguistic edit without an option).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    edits: ClassVar[Mapping[str, tuple[str, ...]]]
    tagged_text: ClassVar[bool]

    @property
    def device(self) -> str: ...

    def load(self) -> None:
        """Loads models and warms caches; called once before the first job."""


@runtime_checkable
class RenderBackend(Backend, Protocol):
    """A backend without tokens: one call renders the whole edit."""

    def render(
        self, audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
    ) -> Rendered:
        """Renders ``edit`` (all its iterations) on ``(channels, samples)`` audio."""


@runtime_checkable
class TokenBackend(Backend, Protocol):
    """A backend that edits token sequences: tokenize -> generate -> decode.

    ``reads_text`` names the edit types whose generation reads the slice's transcript
    (``EditSpec.text``): the engine transcribes the slice when the request has no text, and
    checks what such a generation says against the text it should say (``engine.guard``).
    ``segment_seconds`` is the longest slice the model edits in one piece: a longer slice is
    edited in segments cut at pauses (``engine.segments``).
    """

    reads_text: ClassVar[frozenset[str]]

    @property
    def segment_seconds(self) -> float: ...

    def tokenize(self, audio: np.ndarray, sample_rate: int, progress: Progress) -> Any:
        """Turns audio into the backend's prompt tokens (opaque to the engine)."""

    def generate(self, prompt: Any, edit: EditSpec, progress: Progress) -> Any:
        """Generates the tokens of one edit pass."""

    def decode(self, generated: Any, prompt: Any, progress: Progress) -> Rendered:
        """Turns generated tokens back into audio in the prompt's voice."""


@runtime_checkable
class TokenFeedbackBackend(TokenBackend, Protocol):
    """A token backend whose passes follow each other on tokens: pass k+1 edits what pass k
    generated, and only the last pass is decoded.

    ``retokenize`` asks for the official behaviour instead: each pass is decoded and its
    audio tokenized again for the next one; the engine then decodes and hands the audio to
    ``next_prompt``, so that the backend can still carry what belongs to the whole edit
    (such as counts of its tokenizer's work) from prompt to prompt.

    Passes also follow each other across edits: the engine ``remember``s an edit's last
    pass under a key of its result as a later read returns it, and an edit whose input has
    that key ``recall``s it and starts with ``next_prompt`` instead of ``tokenize``. Keys are
    opaque strings; a backend without a store keeps nothing and recalls nothing.
    """

    @property
    def retokenize(self) -> bool: ...

    def next_prompt(
        self, generated: Any, prompt: Any, progress: Progress, decoded: Rendered | None = None
    ) -> Any:
        """The prompt of the pass after the one that generated ``generated`` from ``prompt``.

        Args:
            generated: What ``generate`` returned for this pass.
            prompt: This pass's prompt.
            progress: Progress callback (stage ``tokenize``).
            decoded: ``None``: the next prompt is ``generated`` itself, in ``prompt``'s voice,
                and no tokenizer runs. Otherwise this pass decoded (``retokenize``), and
                the next prompt is that audio tokenized.
        """

    def remember(self, key: str, generated: Any, prompt: Any, decoded: Rendered) -> None:
        """Keeps under ``key`` what ``next_prompt`` needs to continue from ``generated``.

        Args:
            key: The key of the edit's result.
            generated: What the edit's last pass generated.
            prompt: That pass's prompt.
            decoded: ``generated`` decoded; the engine fitted its loudness to the input's
                plus ``decoded.loudness_offset_db``, which the next pass starts from.
        """

    def recall(self, key: str) -> tuple[Any, Any] | None:
        """The ``(generated, prompt)`` remembered under ``key``, ready for ``next_prompt``
        (the prompt reports no tokenizer work), or ``None``."""


@runtime_checkable
class WordBackend(Backend, Protocol):
    """A backend with its own rendering of the edits on words (``EditType.needs_words``:
    ``text``, ``fillers``), whatever else it is; the engine sets ``edit.transcript`` first."""

    def render_words(
        self,
        audio: np.ndarray,
        sample_rate: int,
        edit: EditSpec,
        progress: Progress,
        guard: Guard | None = None,
    ) -> Rendered:
        """Renders a word edit in one pass (``iterations`` do not apply to words); words it
        generates are checked by ``guard`` (``None``: ``Guard()``), as ``edit.guard`` asks."""
