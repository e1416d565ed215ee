"""The embedded CPU backend: real edits from bundled DSP and small models, no downloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from engine.backends.base import Progress, Rendered
from engine.backends.cpu.denoise import Denoiser
from engine.backends.cpu.nonverbal import render_paralinguistic
from engine.backends.cpu.prosody import render_expressive
from engine.backends.cpu.recipes import EMOTIONS, STYLES
from engine.backends.cpu.speed import SPEED_FACTORS, change_speed, speed_factor
from engine.backends.cpu.vad import SilenceRemover
from engine.edits import PARALINGUISTIC_TAGS, EditSpec
from engine.errors import UnsupportedEditError

__all__ = ["CpuBackend"]



class CpuBackend:
    """Renders edits with DSP (WORLD, PSOLA, Rubber Band) and bundled ONNX models."""

    name: ClassVar[str] = "cpu"
    tagged_text: ClassVar[bool] = True  # [Tag] markers in target_text, placed by text position
    description: ClassVar[str] = (
        "Embedded CPU backend: DeepFilterNet3 denoise, Silero VAD silence removal, "
        "Rubber Band speed change; emotions and styles as measured prosody and voice-quality "
        "recipes (Praat PSOLA, WORLD); the ten nonverbal sounds synthesised in the speaker's "
        "own voice. Runs anywhere, downloads nothing."
    )
    edits: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "speed": tuple(SPEED_FACTORS),
        "denoise": (),
        "vad": (),
        # Styles not listed (e.g. "story", "advertising") depend on wording or persona that
        # sound alone cannot carry, so they are reported unsupported rather than faked.
        "emotion": (*EMOTIONS, "remove"),
        "style": (*STYLES, "remove"),
        "paralinguistic": PARALINGUISTIC_TAGS,
    }

    def __init__(self) -> None:
        self._denoiser = Denoiser()
        self._silence_remover = SilenceRemover()

    @property
    def device(self) -> str:
        return "cpu"

    def load(self) -> None:
        self._denoiser.load()
        self._silence_remover.load()

    def render(
        self, audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
    ) -> Rendered:
        if edit.type == "speed":
            factor = speed_factor(edit.option, edit.iterations)
            return Rendered(change_speed(audio, sample_rate, factor), sample_rate)
        if edit.type == "denoise":
            return Rendered(self._denoiser.denoise(audio, sample_rate, progress), sample_rate)
        if edit.type in {"emotion", "style"}:
            return render_expressive(audio, sample_rate, edit, progress)
        if edit.type == "paralinguistic":
            return render_paralinguistic(audio, sample_rate, edit, progress)
        if edit.type == "vad":
            return Rendered(self._silence_remover.remove(audio, sample_rate), sample_rate)
        raise UnsupportedEditError(f"the cpu backend cannot render {edit.type!r}")
