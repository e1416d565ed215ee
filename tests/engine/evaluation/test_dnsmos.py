"""DNSMOS P.835 from speechmos' bundled model, run with onnxruntime alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.evaluation.harness import find_clips

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("speechmos") is None
    or importlib.util.find_spec("onnxruntime") is None,
    reason="eval extra missing: pip install speechmos==0.0.1.1 onnxruntime",
)


def test_clean_speech_scores_above_its_noisy_copy(data_dir: Path) -> None:
    from engine.evaluation.dnsmos import dnsmos

    clean, noisy = find_clips(
        [data_dir / "en_vctk_p287_003_clean.wav", data_dir / "en_vctk_p287_003_noisy.wav"]
    )
    good, bad = dnsmos(clean.audio, clean.sample_rate), dnsmos(noisy.audio, noisy.sample_rate)
    assert set(good) == {"sig", "bak", "ovrl"}
    assert all(1.0 <= v <= 5.0 for v in (*good.values(), *bad.values()))
    assert good["bak"] > bad["bak"] + 1.0  # survey: noisy pair OVRL 1.92, BAK far lower
    assert good["ovrl"] > bad["ovrl"]
