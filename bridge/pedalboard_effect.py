"""StepEdit edits as pedalboard-style effects: ``effect(audio, sample_rate) -> audio``.

For scripts that already process audio with pedalboard: arrays in pedalboard's convention
(``float32``, ``(channels, samples)``) go to a running engine and come back edited.

Example:
    >>> from pedalboard import Pedalboard, HighpassFilter
    >>> from bridge.pedalboard_effect import StepEditEffect
    >>> cleaned = StepEditEffect("denoise")(Pedalboard([HighpassFilter(80)])(audio, sr), sr)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile

from bridge import protocol
from bridge.client import StepEditClient, new_job_id

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
        **fields: object,
    ) -> None:
        self.edit = {"type": edit_type, "option": option, "iterations": iterations, **fields}
        self.host, self.port, self.timeout = host, port, timeout

    def __repr__(self) -> str:
        return f"StepEditEffect({self.edit!r}, engine={self.host}:{self.port})"

    def process(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        """Renders the edit on ``audio``; returns ``float32 (channels, samples)``.

        Raises:
            bridge.client.ClientError: with the engine's error code and message.
        """
        samples = np.atleast_2d(np.asarray(audio, dtype=np.float32))
        rate = round(sample_rate)
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
