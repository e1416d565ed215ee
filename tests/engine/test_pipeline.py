"""The array-level pipeline: iterations as passes, fitting to the source, its errors."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.audio import integrated_loudness
from engine.backends.base import Progress, Rendered, WordBackend
from engine.backends.cpu import CpuBackend
from engine.edits import EditSpec
from engine.errors import BackendError, EditError
from engine.evaluation.harness import find_clips
from engine.guard import Guard
from engine.keep_length import added_spans, fit_duration, fit_to_source
from engine.pipeline import render_audio, scaled_progress
from engine.text.transcript import Transcript, Word
from tests.engine.fake_backends import FakeRenderBackend, FakeTokenBackend

RATE = 16000


def speechlike(seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.2 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return np.tile(tone, (channels, 1)).astype(np.float32)


def _quiet(_f: float, _s: str) -> None:
    pass


@pytest.mark.parametrize("iterations", [1, 3])
def test_token_backends_run_one_pass_per_iteration(iterations: int) -> None:
    backend = FakeTokenBackend()
    source = speechlike()
    edited = render_audio(backend, source, RATE, EditSpec("emotion", "happy", iterations), _quiet)
    assert backend.calls == ["tokenize", "generate", "decode"] * iterations
    # Each pass worked on the previous pass's output: 10 ms longer per pass.
    assert edited.audio.shape == (1, source.shape[-1] + iterations * RATE // 100)
    # Loudness changes accumulate: -1 dB per pass against the source.
    measured = integrated_loudness(edited.audio, RATE) - integrated_loudness(source, RATE)
    assert measured == pytest.approx(-iterations, abs=0.1)
    # Seconds per stage, summed over the passes (a render backend reports none).
    assert set(edited.timings) == {"tokenize", "generate", "decode"}
    assert all(seconds >= 0.0 for seconds in edited.timings.values())


def test_render_backends_render_once_at_the_iterations_strength() -> None:
    backend = FakeRenderBackend()
    render_audio(backend, speechlike(), RATE, EditSpec("speed", "faster", 4), _quiet)
    assert backend.calls == [("render", EditSpec("speed", "faster", 4))]


def test_the_result_is_fitted_to_the_source_loudness_and_channels() -> None:
    source = speechlike(channels=2)
    edited = render_audio(FakeRenderBackend(), source, RATE, EditSpec("denoise"), _quiet)
    assert edited.audio.shape == source.shape and edited.audio.dtype == np.float32
    assert edited.sample_rate == RATE and edited.duration == pytest.approx(1.0)
    # The fake halves the level (-6 dB); the pipeline brings it back.
    assert integrated_loudness(edited.audio, RATE) == pytest.approx(
        integrated_loudness(source, RATE), abs=0.1
    )


def test_backend_info_is_passed_on() -> None:
    backend = FakeRenderBackend()
    backend.info = {"insertions": [1]}
    edited = render_audio(backend, speechlike(), RATE, EditSpec("denoise"), _quiet)
    assert edited.info == {"insertions": [1]}


def test_positions_past_the_slice_are_refused_before_rendering() -> None:
    backend = FakeRenderBackend()
    edit = EditSpec("paralinguistic", "Laughter", positions=(0.5, 2.5))
    with pytest.raises(EditError, match=r"\[2.5\] s lie past the end"):
        render_audio(backend, speechlike(), RATE, edit, _quiet)
    assert backend.calls == []


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((1, 0), np.float32), "shape"),
        (np.zeros((2, 2, 2), np.float32), "shape"),
        (np.full((1, 100), np.nan, np.float32), "NaN"),
    ],
)
def test_unusable_backend_output_is_a_backend_error(audio: np.ndarray, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        fit_to_source(Rendered(audio, RATE), RATE, 1, -20.0)


def test_fit_resamples_and_matches_channels() -> None:
    rendered = Rendered(speechlike(channels=1)[:, ::2].copy(), RATE // 2)
    out = fit_to_source(rendered, RATE, 2, -23.0)
    assert out.shape == (2, RATE)
    assert integrated_loudness(out, RATE) == pytest.approx(-23.0, abs=0.1)


def test_scaled_progress_maps_and_clamps() -> None:
    seen: list[tuple[float, str]] = []
    step = scaled_progress(lambda f, s: seen.append((f, s)), 0.2, 0.6)
    for fraction in (-1.0, 0.0, 0.5, 1.0, 2.0):
        step(fraction, "x")
    assert [round(f, 6) for f, _ in seen] == [0.2, 0.2, 0.4, 0.6, 0.6]


class _FakeWordBackend(FakeTokenBackend):
    """A token backend that renders edits on words itself (as stepaudio does)."""

    def render_words(
        self,
        audio: np.ndarray,
        sample_rate: int,
        edit: EditSpec,
        progress: Progress,
        guard: Guard | None = None,
    ) -> Rendered:
        self.calls.append(f"words:{edit.type}")
        assert edit.transcript is not None  # the pipeline found the words first
        return Rendered(audio, sample_rate)


def test_word_edits_go_to_a_word_backend_once_and_other_edits_through_its_passes() -> None:
    backend = _FakeWordBackend()
    assert isinstance(backend, WordBackend) and not isinstance(FakeTokenBackend(), WordBackend)
    take = Transcript((Word("so", 0.1, 0.4),), "en", "hand", 1.0)
    for kind in ("text", "fillers"):
        option = "silence" if kind == "text" else ""
        edit = EditSpec(kind, option, 3, target_text="so" * (kind == "text"), transcript=take)
        render_audio(backend, speechlike(), RATE, edit, _quiet)
    render_audio(backend, speechlike(), RATE, EditSpec("emotion", "happy"), _quiet)
    assert backend.calls == ["words:text", "words:fillers", "tokenize", "generate", "decode"]


def test_the_checks_of_a_word_backends_re_said_spans_add_up_in_timings_check() -> None:
    class SpanChecker(_FakeWordBackend):
        def render_words(
            self,
            audio: np.ndarray,
            sample_rate: int,
            edit: EditSpec,
            progress: Progress,
            guard: Guard | None = None,
        ) -> Rendered:
            assert guard is not None
            for _ in range(2):  # two re-said spans, each heard once
                guard.check(audio, sample_rate, "en")
            return Rendered(audio, sample_rate)

    def slow_check(_audio: np.ndarray, _rate: int, _language: str) -> str:
        time.sleep(0.05)
        return "so"

    take = Transcript((Word("so", 0.1, 0.4),), "en", "hand", 1.0)
    edit = EditSpec("text", "silence", target_text="so", transcript=take)
    guard = Guard(check=slow_check)
    checked = render_audio(SpanChecker(), speechlike(), RATE, edit, _quiet, guard=guard)
    assert 0.1 <= checked.timings["check"] < 1.0
    unchecked = render_audio(_FakeWordBackend(), speechlike(), RATE, edit, _quiet, guard=guard)
    assert "check" not in unchecked.timings


def test_keep_length_fits_a_token_backend_and_reports_the_factor() -> None:
    backend = FakeTokenBackend()  # each pass adds 10 ms
    source = speechlike()
    edit = EditSpec("emotion", "happy", 2, keep_length=True)
    edited = render_audio(backend, source, RATE, edit, _quiet)
    assert edited.audio.shape == source.shape
    assert edited.info["length_factor"] == pytest.approx(1.0 / 1.02, abs=1e-4)
    plain = render_audio(backend, source, RATE, EditSpec("emotion", "happy", 2), _quiet)
    assert "length_factor" not in plain.info and plain.audio.shape[-1] == RATE + RATE // 50


def test_keep_length_takes_an_insertion_out_of_the_pauses_next_to_it() -> None:
    """Tone 0.5 s | pause 0.6 s | inserted sound 0.2 s | pause 0.6 s | tone 0.5 s: the
    0.2 s come out of the two pauses; the tones and the sound stay sample for sample."""
    tone, pause = speechlike(0.5), np.zeros((1, round(0.6 * RATE)), np.float32)
    sound = np.full((1, round(0.2 * RATE)), 0.1, np.float32)
    out = np.concatenate([tone, pause, sound, pause, tone], axis=1)
    spans = [(round(1.1 * RATE), round(1.3 * RATE))]
    length = out.shape[-1] - round(0.2 * RATE)
    fitted, factor = fit_duration(out, RATE, length, spans)
    assert fitted.shape == (1, length) and factor == 1.0
    half = tone.shape[-1]
    np.testing.assert_array_equal(fitted[:, :half], tone)
    np.testing.assert_array_equal(fitted[:, -half:], tone)
    start = int(np.flatnonzero(np.abs(fitted[0, half:-half]) > 0)[0]) + half
    np.testing.assert_array_equal(fitted[:, start : start + sound.shape[-1]], sound)
    # Asked for more than the pauses hold (each keeps 0.15 s), the rest is time-scaled.
    fitted, factor = fit_duration(out, RATE, out.shape[-1] - RATE, spans)
    assert fitted.shape[-1] == out.shape[-1] - RATE
    # The pauses gave most of their 2 x 0.45 s (less the guard kept next to the tones).
    length = out.shape[-1] - RATE
    assert length / (out.shape[-1] - 0.7 * RATE) <= factor <= length / (out.shape[-1] - 0.9 * RATE)


def test_added_spans_from_insertions_and_words() -> None:
    info = {
        "insertions": [
            {"tag": "Uhm", "position": 1.0, "duration": 0.5},
            {"tag": "Sigh", "position": 2.0, "duration": 0.25},
        ],
        "words": [
            {"word": "so", "action": "kept", "start": 0.0, "end": 0.2},
            {"word": "[Laughter]", "action": "inserted", "start": 3.0, "end": 3.5},
        ],
    }
    assert added_spans(info, 100) == [(100, 150), (250, 275), (300, 350)]


@pytest.fixture(scope="module")
def cpu_backend() -> CpuBackend:
    backend = CpuBackend()
    backend.load()
    return backend


@pytest.mark.parametrize(
    "edit",
    [
        EditSpec("speed", "faster", keep_length=True),
        EditSpec("denoise", keep_length=True),
        EditSpec("vad", keep_length=True),
        EditSpec("emotion", "happy", keep_length=True),
        EditSpec("style", "whisper", keep_length=True),
        EditSpec("paralinguistic", "Laughter", positions=(3.0,), keep_length=True),
        EditSpec("text", "room_tone", target_text="DROP [Breathing]", keep_length=True),
        EditSpec("fillers", keep_length=True),
    ],
    ids=lambda e: e.type,
)
def test_keep_length_on_the_cpu_backend(
    cpu_backend: CpuBackend, data_dir: Path, edit: EditSpec
) -> None:
    clip = find_clips([data_dir / "en_stepaudio_happy.wav"])[0]
    if edit.type == "text":  # the transcript without its third word, a breath at the end
        words = clip.transcript.split()
        target = " ".join(words[:2] + words[3:]) + " [Breathing]"
        edit = replace(edit, text=clip.transcript, target_text=target)
    edited = render_audio(cpu_backend, clip.audio, clip.sample_rate, edit, _quiet)
    assert abs(edited.audio.shape[-1] - clip.audio.shape[-1]) / clip.sample_rate <= 0.010
    assert edited.audio.shape[0] == clip.audio.shape[0]
    factor = edited.info["length_factor"]
    assert 0.3 < factor < 3.0
    if edit.type == "paralinguistic":  # pauses took part of the laugh: less time-scale
        added = edited.info["insertions"][0]["duration"]
        assert factor > clip.duration / (clip.duration + added) + 0.01


@pytest.mark.parametrize(
    "edit",
    [
        EditSpec("vad"),
        EditSpec("speed", "slower"),
        EditSpec("emotion", "remove"),
        EditSpec("denoise"),
    ],
    ids=lambda e: f"{e.type}-{e.option}",
)
def test_an_edit_of_a_take_mastered_to_full_scale_keeps_its_level(
    cpu_backend: CpuBackend, data_dir: Path, edit: EditSpec
) -> None:
    """A take whose peaks reach 0 dBFS came back about 1-1.5 dB quieter from edits that
    change no level (every result was scaled down under -1 dBFS). The result may now peak
    as high as its source did, and a time-scale's overshoot is limited instead."""
    clip = find_clips([data_dir / "en_stepaudio_happy.wav"])[0]
    source = clip.audio / np.max(np.abs(clip.audio)) * np.float32(0.999)
    edited = render_audio(cpu_backend, source, clip.sample_rate, edit, _quiet)
    change = integrated_loudness(edited.audio, clip.sample_rate) - integrated_loudness(
        source, clip.sample_rate
    )
    assert abs(change) <= 0.1
    assert np.max(np.abs(edited.audio)) <= 0.999 + 1e-6


def test_a_kept_length_stays_under_the_peak_of_a_take_mastered_to_full_scale(
    cpu_backend: CpuBackend, data_dir: Path
) -> None:
    """Shout fitted back to the take's length: the time-scale after the level was set put
    its peaks at +1 dBFS (clipped when written as PCM)."""
    clip = find_clips([data_dir / "en_stepaudio_happy.wav"])[0]
    source = clip.audio / np.max(np.abs(clip.audio)) * np.float32(0.999)
    edit = EditSpec("style", "shout", keep_length=True)
    edited = render_audio(cpu_backend, source, clip.sample_rate, edit, _quiet)
    assert edited.audio.shape == source.shape
    assert np.max(np.abs(edited.audio)) <= 0.999 + 1e-6


def test_a_loud_render_of_a_loud_take_is_not_limited_a_second_time(
    cpu_backend: CpuBackend, data_dir: Path
) -> None:
    """Shout on a take that peaks at 0 dBFS: the backend limits its peaks to get louder and
    reports the level it reached; the engine keeps that level and those samples."""
    clip = find_clips([data_dir / "en_stepaudio_happy.wav"])[0]
    edit = EditSpec("style", "shout")
    rendered = cpu_backend.render(clip.audio, clip.sample_rate, edit, _quiet)
    assert rendered.sample_rate == clip.sample_rate
    assert rendered.loudness_offset_db < 9.0  # short of +10 dB: its peaks were limited
    edited = render_audio(cpu_backend, clip.audio, clip.sample_rate, edit, _quiet)
    np.testing.assert_allclose(edited.audio, rendered.audio, atol=1e-4)


def test_decode_passes_returns_the_passes_a_retokenizing_backend_decoded_anyway() -> None:
    backend = FakeTokenBackend()  # decodes every pass: the passes cost nothing more
    source = speechlike()
    edit = EditSpec("emotion", "happy", 3, decode_passes=True)
    edited = render_audio(backend, source, RATE, edit, _quiet)
    assert backend.calls == ["tokenize", "generate", "decode"] * 3
    assert [p.shape for p in edited.passes] == [(1, RATE + k * RATE // 100) for k in (1, 2)]
    # Each is fitted to the source as the result is: -1 dB per pass so far.
    for k, earlier in enumerate(edited.passes, start=1):
        change = integrated_loudness(earlier, RATE) - integrated_loudness(source, RATE)
        assert change == pytest.approx(-k, abs=0.1)
    assert (
        render_audio(backend, source, RATE, replace(edit, decode_passes=False), _quiet).passes == []
    )


class _FeedbackBackend(FakeTokenBackend):
    """Passes follow each other on tokens: only the last is decoded unless asked."""

    retokenize = False

    def next_prompt(
        self, generated: Any, prompt: Any, progress: Progress, decoded: Rendered | None = None
    ) -> Any:
        self.calls.append("next_prompt")
        return (generated, prompt[1])

    def remember(self, key: str, generated: Any, prompt: Any, decoded: Rendered) -> None:
        pass

    def recall(self, key: str) -> tuple[Any, Any] | None:
        return None


def test_decode_passes_decodes_the_earlier_passes_of_a_token_feedback_backend() -> None:
    backend = _FeedbackBackend()
    source = speechlike()
    plain = render_audio(backend, source, RATE, EditSpec("emotion", "happy", 3), _quiet)
    assert backend.calls == ["tokenize", "generate", *["next_prompt", "generate"] * 2, "decode"]
    assert plain.passes == []
    backend.calls.clear()
    edit = EditSpec("emotion", "happy", 3, decode_passes=True)
    edited = render_audio(backend, source, RATE, edit, _quiet)
    assert backend.calls == [
        "tokenize",
        *["generate", "decode", "next_prompt"] * 2,
        "generate",
        "decode",
    ]
    assert [p.shape[-1] for p in edited.passes] == [RATE + RATE // 100, RATE + RATE // 50]
    np.testing.assert_array_equal(edited.audio, plain.audio)  # the result is the same


def test_decode_passes_on_a_render_backend_gives_none() -> None:
    backend = FakeRenderBackend()
    edit = EditSpec("speed", "faster", 3, decode_passes=True)
    assert render_audio(backend, speechlike(), RATE, edit, _quiet).passes == []
    assert len(backend.calls) == 1
