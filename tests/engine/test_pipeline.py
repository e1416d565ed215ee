"""The array-level pipeline: iterations as passes, fitting to the source, its errors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import integrated_loudness
from engine.backends.base import Progress, Rendered, WordBackend
from engine.edits import EditSpec
from engine.errors import BackendError, EditError
from engine.pipeline import fit_to_source, render_audio, scaled_progress
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
        self, audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
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
