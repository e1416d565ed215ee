"""Expressive renders of takes as they come out of real sessions rather than corpora: speech
recorded at a low rate and played at 48 kHz (an empty top band), and a stereo take with one
channel in inverted polarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio import integrated_loudness, resample
from engine.backends.cpu.prosody import render_expressive
from engine.edits import EditSpec
from engine.evaluation.harness import Clip, find_clips


@pytest.fixture(scope="module")
def speech(data_dir: Path) -> Clip:
    (clip,) = find_clips([data_dir / "en_ljspeech_LJ001-0001.wav"])  # 22.05 kHz
    return clip


@pytest.mark.parametrize(("kind", "option"), [("style", "murmur"), ("emotion", "disgusted")])
def test_breathy_render_of_upsampled_speech_is_finite(speech: Clip, kind: str, option: str) -> None:
    take = resample(speech.audio, speech.sample_rate, 48000)  # nothing above 11 kHz
    rendered = render_expressive(take, 48000, EditSpec(kind, option), lambda _f, _s: None)
    assert np.all(np.isfinite(rendered.audio))  # the breath noise of an empty band was NaN
    assert integrated_loudness(rendered.audio, 48000) > integrated_loudness(take, 48000) - 15


def test_a_channel_in_inverted_polarity_is_rendered_not_cancelled(speech: Clip) -> None:
    take = np.concatenate([speech.audio, -speech.audio])
    rendered = render_expressive(
        take, speech.sample_rate, EditSpec("emotion", "happy"), lambda _f, _s: None
    )
    source_lufs = integrated_loudness(speech.audio, speech.sample_rate)
    for channel in rendered.audio:  # the mono mix was silence: a silent take came back
        assert abs(integrated_loudness(channel[np.newaxis], speech.sample_rate) - source_lufs) < 3
