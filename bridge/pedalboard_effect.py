"""StepEdit edits as pedalboard-style effects: ``effect(audio, sample_rate) -> audio``.

For scripts that already process audio with pedalboard: arrays in pedalboard's convention
(``float32``, ``(channels, samples)``) go to a running engine and come back edited, or, with
``in_process=True``, are rendered here through the engine's own pipeline.

Example:
    >>> from pedalboard import Pedalboard, HighpassFilter
    >>> from bridge.pedalboard_effect import StepEditEffect
    >>> cleaned = StepEditEffect("denoise")(Pedalboard([HighpassFilter(80)])(audio, sr), sr)
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile

from bridge import protocol
from bridge.client import StepEditClient, new_job_id

if TYPE_CHECKING:
    from engine.backends.base import Backend

__all__ = ["StepEditEffect"]


class StepEditEffect:
    """One edit, applied through the engine at ``host:port``.

    Unlike pedalboard's plugins, an edit may change the length (speed, silence removal,
    insertions), so always use the returned array's length.

    Args:
        edit_type: e.g. ``"denoise"``, ``"speed"``, ``"emotion"``.
        option: e.g. ``"faster"``, ``"happy"``; empty for types without options.
        iterations: 1-5.
        host: Engine host.
        port: Engine port.
        timeout: Seconds to wait for the engine to answer a request.
        in_process: Render here instead, on ``backend`` (loaded once per process).
        backend: The backend an in-process render uses.
        **fields: Other ``edit`` fields: ``text``, ``target_text``, ``position``.
    """

    def __init__(
        self,
        edit_type: str,
        option: str = "",
        iterations: int = 1,
        host: str = "127.0.0.1",
        port: int = protocol.DEFAULT_PORT,
        timeout: float = 5.0,
        in_process: bool = False,
        backend: str = "cpu",
        **fields: object,
    ) -> None:
        self.edit = {"type": edit_type, "option": option, "iterations": iterations, **fields}
        self.host, self.port, self.timeout = host, port, timeout
        self.in_process, self.backend = in_process, backend

    def __repr__(self) -> str:
        where = f"backend={self.backend}" if self.in_process else f"engine={self.host}:{self.port}"
        return f"StepEditEffect({self.edit!r}, {where})"

    def process(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        """Renders the edit on ``audio``; returns ``float32 (channels, samples)``.

        Raises:
            bridge.client.ClientError: with the engine's error code and message.
            engine.errors.StepEditError: the same codes, from an in-process render.
        """
        samples = np.atleast_2d(np.asarray(audio, dtype=np.float32))
        rate = round(sample_rate)
        if self.in_process:
            return self._render_here(samples, rate)
        with tempfile.TemporaryDirectory(prefix="stepedit-") as folder:
            source = Path(folder) / "input.wav"
            soundfile.write(source, samples.T, rate, subtype="FLOAT")
            with StepEditClient(self.host, self.port, timeout=self.timeout) as client:
                outcome = client.edit(
                    {"input": str(source), "edit": self.edit, "output_dir": folder},
                    job_id=new_job_id(),
                )
            edited, _ = soundfile.read(outcome.output_path, dtype="float32", always_2d=True)
        return np.ascontiguousarray(edited.T)

    __call__ = process

    def _render_here(self, samples: np.ndarray, rate: int) -> np.ndarray:
        from engine.audio import check_samples
        from engine.capabilities import check_supported
        from engine.edits import parse_edit
        from engine.pipeline import render_audio

        check_samples(samples, "the audio")
        edit = parse_edit(self.edit)
        backend = _loaded_backend(self.backend)
        check_supported(backend, edit)
        return render_audio(backend, samples, rate, edit, lambda _f, _s: None).audio


@functools.cache
def _loaded_backend(name: str) -> Backend:
    """One loaded backend per name and process: loading costs far more than a render."""
    from engine.backends import create_backend

    backend = create_backend(name)
    backend.load()
    return backend
