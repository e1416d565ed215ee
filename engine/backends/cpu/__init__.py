"""The embedded CPU backend: real edits from bundled DSP and small models, no downloads.

Importing this package loads only the edit tables; ``CpuBackend.load`` imports the DSP stack
(pedalboard, Praat, WORLD, DeepFilterNet, Silero).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from engine.backends.base import Progress, Rendered
from engine.backends.cpu.recipes import EMOTIONS, STYLES
from engine.edits import EDIT_TYPES, MASK_SOUNDS, PARALINGUISTIC_TAGS, EditSpec

if TYPE_CHECKING:
    from engine.backends.cpu.renderer import CpuRenderer

__all__ = ["CpuBackend"]


class CpuBackend:
    """Renders edits with DSP (WORLD, PSOLA, Rubber Band) and bundled ONNX models."""

    name: ClassVar[str] = "cpu"
    tagged_text: ClassVar[bool] = True  # [Tag] markers in target_text, placed by text position
    description: ClassVar[str] = (
        "Embedded CPU backend: DeepFilterNet3 denoise, Silero VAD silence removal, "
        "Rubber Band speed change; emotions and styles as measured prosody and voice-quality "
        "recipes (Praat PSOLA, WORLD); the ten nonverbal sounds synthesised in the speaker's "
        "own voice; text edits that cut, move and mask the take's own words. Runs anywhere, "
        "downloads nothing."
    )
    edits: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "speed": EDIT_TYPES["speed"].options,  # each mapped to a tempo in speed.py
        "denoise": (),
        "vad": (),
        # Styles not listed (e.g. "story", "advertising") depend on wording or persona that
        # sound alone cannot carry, so they are reported unsupported rather than faked.
        "emotion": (*EMOTIONS, "remove"),
        "style": (*STYLES, "remove"),
        "paralinguistic": PARALINGUISTIC_TAGS,
        # Words the take holds: cut, moved, masked (the option), tags between them; new
        # words are answered unsupported (the text_edit package).
        "text": MASK_SOUNDS,
        "fillers": (),
    }

    def __init__(self) -> None:
        self._renderer: CpuRenderer | None = None

    @property
    def device(self) -> str:
        return "cpu"

    def load(self) -> None:
        """Imports the DSP stack and loads the denoise and VAD models."""
        from engine.backends.cpu.renderer import CpuRenderer

        if self._renderer is None:
            self._renderer = CpuRenderer()
            self._renderer.load()

    def render(
        self, audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
    ) -> Rendered:
        """Renders ``edit`` at the strength of its ``iterations`` (loading on first use)."""
        self.load()
        assert self._renderer is not None
        return self._renderer.render(audio, sample_rate, edit, progress)
