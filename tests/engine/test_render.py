"""One file's edit on plain values: read the slice, render, publish atomically."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from engine.backends.base import Backend
from engine.edits import EditSpec
from engine.errors import InputError, JobCancelled, OutputError
from engine.render import WrittenEdit, render_file
from tests.engine.fake_backends import FakeRenderBackend, FakeTokenBackend

RATE = 22050


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    t = np.arange(3 * RATE) / RATE
    stereo = 0.3 * np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 300 * t)])
    path = tmp_path / "take.flac"
    soundfile.write(path, stereo.T, RATE)
    return path


def _render(
    source: Path,
    backend: Backend,
    edit: EditSpec | None = None,
    **overrides: Any,
) -> WrittenEdit:
    arguments: dict[str, Any] = dict(
        source=source,
        start=0.5,
        length=2.0,
        output_dir=source.parent,
        stem="take.edit",
        max_input_seconds=600.0,
        progress=lambda f, s: None,
    )
    arguments.update(overrides)
    return render_file(backend, edit or EditSpec("denoise"), **arguments)


def test_the_slice_is_rendered_and_published_beside_the_source(source: Path) -> None:
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    backend = FakeRenderBackend()
    stages: list[str] = []
    written = _render(source, backend, progress=lambda f, s: stages.append(s))
    assert written.path == source.parent / "take.edit.wav"
    data, rate = soundfile.read(written.path, always_2d=True)
    assert rate == RATE and data.shape == (2 * RATE, 2)
    assert (written.duration, written.sample_rate, written.channels) == (2.0, RATE, 2)
    assert set(written.timings) == {"read", "render", "write", "total"}
    assert stages[0] == "reading" and stages[-1] == "writing"
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_a_taken_name_is_never_overwritten(source: Path) -> None:
    taken = source.parent / "take.edit.wav"
    taken.write_bytes(b"someone else's file")
    written = _render(source, FakeRenderBackend())
    assert written.path != taken and taken.read_bytes() == b"someone else's file"


def test_a_missing_output_folder_fails_before_the_render(source: Path) -> None:
    backend = FakeRenderBackend()
    with pytest.raises(OutputError, match="does not exist"):
        _render(source, backend, output_dir=source.parent / "gone")
    assert backend.calls == []


def test_slices_longer_than_the_limit_are_refused(source: Path) -> None:
    with pytest.raises(InputError) as e:
        _render(source, FakeRenderBackend(), max_input_seconds=1.0)
    assert e.value.code == "too_long"


def test_a_cancelled_render_writes_nothing(source: Path) -> None:
    def cancel_when_rendering(_fraction: float, stage: str) -> None:
        if stage == "render":
            raise JobCancelled("cancelled by the client")

    with pytest.raises(JobCancelled):
        _render(source, FakeRenderBackend(), progress=cancel_when_rendering)
    assert sorted(p.name for p in source.parent.iterdir()) == ["take.flac"]


def test_temporary_files_a_killed_engine_left_are_cleared(source: Path) -> None:
    stale = source.parent / ".take.edit.k2j4_x9q.wav.tmp"
    stale.write_bytes(b"half a file")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = source.parent / ".other.a1b2c3d4.wav.tmp"  # a write in progress elsewhere
    fresh.write_bytes(b"being written")
    _render(source, FakeRenderBackend())
    assert not stale.exists() and fresh.exists()


def test_earlier_passes_are_written_beside_the_result_on_request(source: Path) -> None:
    taken = source.parent / "take.edit.pass2.wav"
    taken.write_bytes(b"not ours")
    edit = EditSpec("emotion", "happy", 3, decode_passes=True)
    written = _render(source, FakeTokenBackend(), edit)
    passes = [Path(p) for p in written.info["passes"]]
    # pass 2's name was taken by a file the engine did not write: a free name instead
    assert [p.name for p in passes] == ["take.edit.pass1.wav", "take.edit.pass2-2.wav"]
    assert taken.read_bytes() == b"not ours"
    output = soundfile.read(written.path, always_2d=True)[0]
    for k, path in enumerate(passes, start=1):  # the fake adds 10 ms per pass
        data, rate = soundfile.read(path, always_2d=True)
        assert rate == RATE and data.shape == (2 * RATE + k * (RATE // 100), 2)
        assert soundfile.info(path).subtype == soundfile.info(written.path).subtype
    assert output.shape[0] == 2 * RATE + 3 * (RATE // 100)


def test_a_backend_without_passes_reports_none_and_a_plain_edit_no_field(source: Path) -> None:
    backend = FakeRenderBackend()
    asked = _render(source, backend, stem="asked")
    assert "passes" not in asked.info
    written = _render(source, backend, EditSpec("denoise", iterations=3, decode_passes=True))
    assert written.info["passes"] == []
    assert not list(source.parent.glob("*.pass*"))


def test_a_pass_that_cannot_be_written_takes_the_result_with_it(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import audio

    real = audio.write_audio_atomic

    def failing(directory: Path, stem: str, *args: Any, **kwargs: Any) -> Path:
        if stem.endswith(".pass2"):
            raise OutputError("disk full")
        return real(directory, stem, *args, **kwargs)

    monkeypatch.setattr(audio, "write_audio_atomic", failing)
    with pytest.raises(OutputError, match="disk full"):
        edit = EditSpec("emotion", "happy", 3, decode_passes=True)
        _render(source, FakeTokenBackend(), edit, start=0.0, length=None)
    assert sorted(p.name for p in source.parent.iterdir()) == ["take.flac"]
