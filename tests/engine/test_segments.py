"""Long takes: split at pauses into segments, edited per segment, stitched without a seam."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from engine.audio import resample, to_mono
from engine.backends.base import Progress
from engine.dsp import frame_rms_db, pauses
from engine.edits import EditSpec
from engine.engine import EngineConfig
from engine.errors import EditError
from engine.pipeline import render_audio
from engine.segments import plan_segments, stitch
from engine.text.transcript import Transcript, Word
from tests.engine.fake_backends import FakeTokenBackend

RATE = 16000
# Read speech from tests/data, one clip after another, until the take lasts this long.
TAKE_S = 95.0
CLIPS = (
    "en_librispeech_1995-1837-0001.wav",
    "en_vctk_p287_003_clean.wav",
    "en_ljspeech_LJ001-0001.wav",
    "en_jfk_inaugural_1961.flac",
    "en_ljspeech_LJ050-0131.wav",
    "en_stepaudio_happy.wav",
)
# Seam bounds at a join: the largest sample-to-sample step of the fade and 10 ms either side,
# relative to the largest step of the source around the cut (an equal-power fade of two
# signals may add their steps: up to sqrt(2)); the fade's level (dB) outside the levels of
# the 10 ms either side.
MAX_SOURCE_STEP = 1.5
MAX_LEVEL_DB = 3.0


@pytest.fixture(scope="module")
def take(data_dir: Path) -> np.ndarray:
    """95 s of speech at 16 kHz, ``(1, samples)``, each clip at a peak of 0.5."""
    pieces, total = [], 0
    while total < TAKE_S * RATE:
        for name in CLIPS:
            data, rate = soundfile.read(data_dir / name, dtype="float32", always_2d=True)
            mono = resample(to_mono(data.T), rate, RATE)
            pieces.append(0.5 * mono / np.max(np.abs(mono)))
            total += mono.shape[-1]
    return np.concatenate(pieces)[np.newaxis, : round(TAKE_S * RATE)]


def _level_db(x: np.ndarray, at: int, half: int) -> float:
    window = x[max(0, at - half) : at + half]
    return float(10 * np.log10(np.mean(window.astype(np.float64) ** 2) + 1e-20))


def test_a_95_s_take_is_cut_in_pauses_into_segments_of_at_most_30_s(take: np.ndarray) -> None:
    segments = plan_segments(take, RATE, 30.0)
    assert len(segments) == 4  # ceil(95 / 30), about equally long
    assert segments[0].start == 0 and segments[-1].end == take.shape[-1]
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    lengths = [(s.end - s.start) / RATE for s in segments]
    assert max(lengths) <= 30.0 and min(lengths) >= 15.0
    mono = to_mono(take)
    quiet = pauses(mono, RATE, 0.1)
    loud = np.percentile(frame_rms_db(mono, RATE, hop=0.01, window=0.02), 95)
    for cut in (s.start for s in segments[1:]):
        assert any(a < cut < b for a, b in quiet), f"cut at {cut / RATE:.2f} s is in no pause"
        assert _level_db(mono, cut, RATE // 100) < loud - 25  # 20 ms around the cut


def test_segments_carry_their_words_and_no_cut_splits_a_word(take: np.ndarray) -> None:
    first = plan_segments(take, RATE, 30.0)
    # A word over the first cut's pause (a held vowel, say): the cut must move elsewhere.
    held = first[1].start / RATE
    words = [Word(f"w{i}", t, t + 0.2) for i, t in enumerate(np.arange(0.0, TAKE_S - 1, 2.0))]
    words.append(Word("held", held - 0.3, held + 0.3))
    words.sort(key=lambda w: w.start)
    segments = plan_segments(take, RATE, 30.0, words)
    cuts = [s.start / RATE for s in segments[1:]]
    assert all(not (w.start < c < w.end) for w in words for c in cuts)
    assert held not in cuts
    said = " ".join(s.text for s in segments).split()
    assert said == [w.text for w in words]  # every word once, in order


def test_cuts_keep_out_of_speech_when_a_pause_outside_it_is_at_hand(take: np.ndarray) -> None:
    first = plan_segments(take, RATE, 30.0)
    taken = first[1].start
    speech = [(taken - RATE // 10, taken + RATE // 10)]  # the detector heard speech there
    moved = plan_segments(take, RATE, 30.0, speech=speech)
    assert len(moved) == 4 and taken not in [s.start for s in moved]
    # Speech everywhere: the pauses are used all the same.
    anywhere = plan_segments(take, RATE, 30.0, speech=[(0, take.shape[-1])])
    assert [s.start for s in anywhere] == [s.start for s in first]


def test_a_take_without_pauses_is_cut_at_its_quietest_points() -> None:
    t = np.arange(10 * RATE) / RATE
    hum = (0.3 + 0.2 * np.sin(2 * np.pi * 0.37 * t)) * np.sin(2 * np.pi * 220 * t)
    segments = plan_segments(hum[np.newaxis].astype(np.float32), RATE, 4.0)
    assert all(2 * RATE <= s.end - s.start <= 4 * RATE for s in segments)
    assert segments[-1].end == 10 * RATE
    level = frame_rms_db(hum, RATE, hop=0.01, window=0.01)
    for cut in (s.start for s in segments[1:]):
        assert level[cut // (RATE // 100)] < np.percentile(level, 10)  # in a dip of the hum


def test_a_short_take_is_one_segment(take: np.ndarray) -> None:
    segments = plan_segments(take[:, : 20 * RATE], RATE, 30.0)
    assert [(s.start, s.end) for s in segments] == [(0, 20 * RATE)]


def test_stitch_fades_within_the_quiet_ends() -> None:
    rng = np.random.default_rng(0)
    speech = 0.3 * rng.standard_normal((1, RATE)).astype(np.float32)
    pause = 1e-4 * rng.standard_normal((1, RATE // 2)).astype(np.float32)
    floor = pause[:, : RATE // 20]  # 50 ms quiet
    a = np.concatenate([speech, pause, speech, floor], axis=-1)
    b = np.concatenate([floor, speech, pause, speech], axis=-1)
    out, starts = stitch([a, b], RATE)
    fade = a.shape[-1] + b.shape[-1] - out.shape[-1]
    assert abs(fade - RATE // 20) <= RATE // 100  # as long as the quiet ends allow
    assert starts == [a.shape[-1] - fade]
    # A piece ending in sound still gets a short fade, never a bare cut.
    out, starts = stitch([a[:, : 2 * RATE], b], RATE)
    assert out.shape[-1] == 2 * RATE + b.shape[-1] - round(0.005 * RATE)


def test_a_long_take_is_edited_in_segments_and_stitched_without_a_seam(take: np.ndarray) -> None:
    backend = FakeTokenBackend()
    stages: list[str] = []
    fractions: list[float] = []

    def progress(fraction: float, stage: str) -> None:
        fractions.append(fraction)
        stages.append(stage)

    edited = render_audio(backend, take, RATE, EditSpec("emotion", "happy"), progress)
    segments = edited.info["segments"]
    assert len(segments) == 4 and backend.calls.count("tokenize") == 4
    assert all(s["end"] - s["start"] <= 30.0 for s in segments)
    # Each segment gets its quarter of the bar (the fake backend itself reports nothing).
    assert fractions == [0.0, 0.25, 0.5, 0.75]
    assert stages == ["segment 1/4", "segment 2/4", "segment 3/4", "segment 4/4"]
    out = to_mono(edited.audio)
    steps, source_steps = np.abs(np.diff(out)), np.abs(np.diff(to_mono(take)))
    tail = RATE // 100  # the fake backend's 10 ms
    for before, segment in itertools.pairwise(segments):
        join = round(segment["output_start"] * RATE)
        length = round((before["end"] - before["start"]) * RATE) + tail
        fade = length - (join - round(before["output_start"] * RATE))
        assert 0.005 * RATE - 20 <= fade <= 0.1 * RATE + 20
        # No step bigger than the source has around the cut (a click would be).
        cut = round(segment["start"] * RATE)
        around = source_steps[cut - fade - tail : cut + fade + tail].max()
        assert steps[join - tail : join + fade + tail].max() <= MAX_SOURCE_STEP * around
        # No bump or dip: the fade's level lies between the levels either side of it.
        level = _level_db(out, join + fade // 2, fade // 2)
        sides = [
            _level_db(out, join - tail, tail // 2),
            _level_db(out, join + fade + tail, tail // 2),
        ]
        assert min(sides) - MAX_LEVEL_DB <= level <= max(sides) + MAX_LEVEL_DB


def test_a_tagged_paralinguistic_edit_of_a_long_take_is_refused(take: np.ndarray) -> None:
    class Reader(FakeTokenBackend):
        reads_text = frozenset({"paralinguistic"})

    edit = EditSpec("paralinguistic", text="a b", target_text="a [Laughter] b")
    with pytest.raises(EditError, match="send 'option' and 'position'"):
        render_audio(Reader(), take, RATE, edit, lambda _f, _s: None)


def test_a_take_as_long_as_the_engine_allows_is_edited(take: np.ndarray) -> None:
    longest = EngineConfig().max_input_seconds  # 600 s
    source = np.tile(take, (1, int(np.ceil(longest / TAKE_S))))[:, : round(longest * RATE)]
    backend = FakeTokenBackend()
    edited = render_audio(backend, source, RATE, EditSpec("emotion", "happy"), lambda _f, _s: None)
    segments = edited.info["segments"]
    assert len(segments) == backend.calls.count("decode") >= longest / 30
    assert all(s["end"] - s["start"] <= 30.0 for s in segments)
    assert segments[-1]["end"] == pytest.approx(longest)


def test_a_clone_from_a_long_take_speaks_in_the_voice_of_its_first_segment(
    take: np.ndarray,
) -> None:
    class Cloner(FakeTokenBackend):
        reads_text = frozenset({"clone"})

        def __init__(self) -> None:
            super().__init__()
            self.edits_received: list[EditSpec] = []

        def generate(self, prompt: Any, edit: EditSpec, progress: Progress) -> Any:
            self.edits_received.append(edit)
            return super().generate(prompt, edit, progress)

    words = tuple(Word(f"w{i}", t, t + 0.2) for i, t in enumerate(np.arange(0.0, TAKE_S - 1, 2.0)))
    transcript = Transcript(words, "en", "test", TAKE_S)
    edit = EditSpec("clone", target_text="Something new.", transcript=transcript, guard=False)
    backend = Cloner()
    edited = render_audio(backend, take, RATE, edit, lambda _f, _s: None)
    end = edited.info["voice_prompt"]["end"]
    assert 15.0 <= end <= 30.0 and backend.calls == ["tokenize", "generate", "decode"]
    # The fake says its prompt again: the first segment, 10 ms longer.
    assert edited.audio.shape[-1] == round(end * RATE) + RATE // 100
    said = backend.edits_received[0].text.split()
    assert said == [w.text for w in words if (w.start + w.end) / 2 < end]
    assert edited.info["text_source"] == "transcription"


def test_earlier_passes_of_a_long_take_are_stitched_pass_by_pass(take: np.ndarray) -> None:
    edit = EditSpec("emotion", "happy", 2, decode_passes=True)
    edited = render_audio(FakeTokenBackend(), take, RATE, edit, lambda _f, _s: None)
    (first,) = edited.passes
    # The fake's passes are deterministic: pass 1 of two is a one-pass edit, stitched alike.
    once = render_audio(
        FakeTokenBackend(), take, RATE, EditSpec("emotion", "happy"), lambda _f, _s: None
    )
    np.testing.assert_allclose(first, once.audio, atol=1e-6)
    assert first.shape[-1] < edited.audio.shape[-1]
