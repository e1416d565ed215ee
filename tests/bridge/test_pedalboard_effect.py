"""The pedalboard-style wrapper against the real engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pedalboard import HighpassFilter, Pedalboard
from pedalboard.io import AudioFile

from bridge.client import ClientError
from bridge.launcher import EngineProcess
from bridge.pedalboard_effect import StepEditEffect
from engine.errors import StepEditError

pytestmark = pytest.mark.slow


def test_effect_in_a_pedalboard_script(engine: EngineProcess, data_dir: Path) -> None:
    with AudioFile(str(data_dir / "en_jfk_inaugural_1961.flac")) as f:
        audio, rate = f.read(f.frames), f.samplerate
    filtered = Pedalboard([HighpassFilter(80)])(audio, rate)
    faster = StepEditEffect("speed", "faster", port=engine.port)(filtered, rate)
    assert faster.dtype == np.float32 and faster.shape[0] == 2
    assert faster.shape[1] == pytest.approx(audio.shape[1] / 1.25, abs=2)


def test_effect_reports_engine_errors(engine: EngineProcess) -> None:
    silence = np.zeros((1, 16000), np.float32)
    with pytest.raises(ClientError) as e:
        StepEditEffect("denoise", port=engine.port)(silence, 16000)
    assert e.value.code == "silent_input"


def test_in_process_render_equals_the_engines(engine: EngineProcess, data_dir: Path) -> None:
    with AudioFile(str(data_dir / "en_jfk_inaugural_1961.flac")) as f:
        audio, rate = f.read(f.frames), f.samplerate
    through_engine = StepEditEffect("speed", "faster", port=engine.port)(audio, rate)
    here = StepEditEffect("speed", "faster", in_process=True)(audio, rate)
    np.testing.assert_array_equal(here, through_engine)


def test_in_process_errors_carry_the_engines_codes() -> None:
    silence = np.zeros((1, 16000), np.float32)
    with pytest.raises(StepEditError) as e:
        StepEditEffect("denoise", in_process=True)(silence, 16000)
    assert e.value.code == "silent_input"
