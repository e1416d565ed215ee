"""The CPU backend's work: each edit type dispatched to the DSP module that renders it."""

from __future__ import annotations

import numpy as np

from engine.backends.base import Progress, Rendered
from engine.backends.cpu.denoise import Denoiser
from engine.backends.cpu.nonverbal import render_paralinguistic
from engine.backends.cpu.prosody import render_expressive
from engine.backends.cpu.speed import change_speed, speed_factor
from engine.backends.cpu.text_edit import render_fillers, render_text
from engine.backends.cpu.vad import SilenceRemover
from engine.edits import EditSpec
from engine.errors import UnsupportedEditError

__all__ = ["CpuRenderer"]


class CpuRenderer:
    """Dispatches each edit to its DSP module; the models load once in ``load``."""

    def __init__(self) -> None:
        self._denoiser = Denoiser()
        self._silence_remover = SilenceRemover()

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
        if edit.type == "text":
            return render_text(audio, sample_rate, edit, progress)
        if edit.type == "fillers":
            return render_fillers(audio, sample_rate, edit, progress)
        if edit.type == "vad":
            return Rendered(self._silence_remover.remove(audio, sample_rate), sample_rate)
        raise UnsupportedEditError(f"the cpu backend cannot render {edit.type!r}")
