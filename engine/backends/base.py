"""The Backend protocol: load once, then render arrays (or tokenize/generate/decode)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from engine.edits import EditSpec

__all__ = ["Backend", "Progress", "RenderBackend", "Rendered", "TokenBackend", "WordBackend"]

# Called by backends with (fraction of their own work in 0..1, stage name). It raises
# engine.errors.JobCancelled when the job was cancelled, so long loops must call it often.
Progress = Callable[[float, str], None]


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
    """A backend that edits token sequences: tokenize -> generate -> decode."""

    def tokenize(self, audio: np.ndarray, sample_rate: int, progress: Progress) -> Any:
        """Turns audio into the backend's prompt tokens (opaque to the engine)."""

    def generate(self, prompt: Any, edit: EditSpec, progress: Progress) -> Any:
        """Generates the tokens of one edit pass."""

    def decode(self, generated: Any, prompt: Any, progress: Progress) -> Rendered:
        """Turns generated tokens back into audio in the prompt's voice."""


@runtime_checkable
class WordBackend(Backend, Protocol):
    """A backend with its own rendering of the edits on words (``EditType.needs_words``:
    ``text``, ``fillers``), whatever else it is; the engine sets ``edit.transcript`` first."""

    def render_words(
        self, audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
    ) -> Rendered:
        """Renders a word edit in one pass (``iterations`` do not apply to words)."""
