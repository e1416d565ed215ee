"""Fixtures of the engine's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

RATE = 16000


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A one-second 16-bit take (a 200 Hz tone) in ``tmp_path``."""
    t = np.arange(RATE) / RATE
    path = tmp_path / "take.wav"
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 200 * t), RATE, subtype="PCM_16")
    return path
