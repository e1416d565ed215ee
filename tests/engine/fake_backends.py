"""Backends for protocol-level tests of the engine, where the audio content does not matter."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from engine.backends.base import Progress, Rendered
from engine.edits import EditSpec
from engine.errors import BackendError


class FakeRenderBackend:
    """Returns its input half as loud (so the loudness fit shows), recording every call.

    Knobs: ``gate`` (a render waits for it, calling progress meanwhile unless ``deaf``),
    ``fail`` (an exception to raise), ``info`` (fields to report).
    """

    name: ClassVar[str] = "cpu"  # registered name, so "unsupported" can name the others
    description: ClassVar[str] = "test double"
    tagged_text: ClassVar[bool] = False
    edits: ClassVar[Mapping[str, tuple[str, ...]]] = {"denoise": (), "speed": ("faster",)}

    def __init__(self) -> None:
        self.calls: list[tuple[str, EditSpec]] = []
        self.threads: list[str] = []
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self.fail: BaseException | None = None
        self.deaf = False  # waits at the gate without checking for cancellation
        self.info: dict[str, Any] = {}
        self.loaded = False

    @property
    def device(self) -> str:
        return "cpu"

    def load(self) -> None:
        self.loaded = True

    def render(
        self, audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
    ) -> Rendered:
        self.calls.append(("render", edit))
        self.threads.append(threading.current_thread().name)
        self.started.set()
        while self.gate is not None and not self.gate.wait(0.01):
            if not self.deaf:
                progress(0.5, "render")
        if self.fail is not None:
            raise self.fail
        return Rendered(0.5 * audio, sample_rate, info=dict(self.info))


class FakeTokenBackend:
    """Tokens are the audio itself; each pass appends 10 ms of the last sample and reports
    a loudness change of -1 dB. It reads no text and edits up to 30 s in one piece."""

    name: ClassVar[str] = "stepaudio"
    description: ClassVar[str] = "test double"
    tagged_text: ClassVar[bool] = False
    edits: ClassVar[Mapping[str, tuple[str, ...]]] = {"emotion": ("happy",)}
    reads_text: ClassVar[frozenset[str]] = frozenset()
    segment_seconds: ClassVar[float] = 30.0

    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def device(self) -> str:
        return "cpu"

    def load(self) -> None:
        pass

    def tokenize(self, audio: np.ndarray, sample_rate: int, progress: Progress) -> Any:
        self.calls.append("tokenize")
        return (audio, sample_rate)

    def generate(self, prompt: Any, edit: EditSpec, progress: Progress) -> Any:
        self.calls.append("generate")
        audio, rate = prompt
        tail = np.repeat(audio[:, -1:], rate // 100, axis=1)
        return np.concatenate([audio, tail], axis=1)

    def decode(self, generated: Any, prompt: Any, progress: Progress) -> Rendered:
        self.calls.append("decode")
        if not np.all(np.isfinite(generated)):
            raise BackendError("bad tokens")
        return Rendered(generated, prompt[1], loudness_offset_db=-1.0)
