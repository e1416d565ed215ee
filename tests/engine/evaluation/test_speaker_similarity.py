"""resemblyzer's voice encoder in numpy: weights read without torch, sensible similarities."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.harness import Clip, find_clips

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None,
    reason="eval extra missing: pip install --no-deps resemblyzer==0.1.4",
)


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> dict[str, Clip]:
    names = [
        "en_ljspeech_LJ001-0001.wav",
        "en_ljspeech_LJ050-0131.wav",
        "en_stepaudio_happy.wav",
        "en_librispeech_1995-1837-0001.wav",
    ]
    return {c.name[:-4]: c for c in find_clips([data_dir / n for n in names])}


def test_weights_load_without_torch() -> None:
    from engine.evaluation.speaker_similarity import _weights_path, load_state_dict

    state = load_state_dict(_weights_path())
    model = state["model_state"]
    assert model["lstm.weight_ih_l0"].shape == (1024, 40)
    assert model["lstm.weight_hh_l2"].shape == (1024, 256)
    assert model["linear.weight"].shape == (256, 256)
    assert model["lstm.weight_ih_l0"].dtype == np.float32
    # In a fresh interpreter (other tests may have imported torch into this one).
    probe = (
        "import sys; from engine.evaluation.speaker_similarity import speaker_similarity as s; "
        "import numpy as n; x = n.sin(n.arange(32000) / 7).astype('f4'); "
        "assert abs(s(x, 16000, x, 16000) - 1) < 1e-5; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=Path(__file__).parents[3])


def test_similarity_tells_speakers_apart(clips: dict[str, Clip]) -> None:
    from engine.evaluation.speaker_similarity import speaker_similarity

    def sim(a: str, b: str) -> float:
        x, y = clips[a], clips[b]
        return speaker_similarity(x.audio, x.sample_rate, y.audio, y.sample_rate)

    same_clip = sim("en_ljspeech_LJ001-0001", "en_ljspeech_LJ001-0001")
    same_speaker = sim("en_ljspeech_LJ001-0001", "en_ljspeech_LJ050-0131")
    other_female = sim("en_ljspeech_LJ001-0001", "en_librispeech_1995-1837-0001")
    other_male = sim("en_ljspeech_LJ001-0001", "en_stepaudio_happy")
    assert same_clip == pytest.approx(1.0, abs=1e-5)
    assert same_speaker > 0.8  # survey calibration: same speaker 0.87-0.94
    assert other_female < 0.75 and other_male < 0.75  # different speakers at most 0.745


def test_similarity_ignores_level(clips: dict[str, Clip]) -> None:
    from engine.evaluation.speaker_similarity import speaker_similarity

    clip = clips["en_stepaudio_happy"]
    quiet = clip.audio * np.float32(0.05)
    assert speaker_similarity(clip.audio, clip.sample_rate, quiet, clip.sample_rate) > 0.999
