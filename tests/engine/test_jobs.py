"""A request checked into a job, and its output name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.protocol import EditRequest, TranscribeRequest
from engine.edits import EditSpec
from engine.errors import StepEditError
from engine.jobs import Job, Transcription, job_from_request, output_stem
from tests.engine.fake_backends import FakeRenderBackend


def test_output_names_are_safe_on_every_file_system() -> None:
    job = Job("a/b:c*d?e-f_g", Path("/takes/Take 1.wav"), EditSpec("speed", "more faster", 2))
    assert output_stem(job) == "Take 1.stepedit.more-fasterx2.abcde-f_"


def test_a_request_becomes_a_checked_job(tmp_path: Path) -> None:
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF")  # only existence is checked before queueing
    status = tmp_path / "status.json"
    request = EditRequest(
        input=str(source),
        edit={"type": "speed", "option": "Faster"},
        start=1.5,
        length=2.0,
        status_file=str(status),
    )
    job = job_from_request("j1", request, FakeRenderBackend())
    assert job == Job("j1", source, EditSpec("speed", "faster"), 1.5, 2.0, None, status)
    assert job.output_folder == tmp_path


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"edit": {"type": "speed", "option": "fastest"}}, "invalid_edit"),
        ({"edit": {"type": "vad"}}, "unsupported"),
        ({"input": "/missing/take.wav"}, "input_not_found"),
        ({"input": "/"}, "input_not_audio"),
        ({"output_dir": "/missing"}, "output_unwritable"),
    ],
)
def test_checks_before_queueing(tmp_path: Path, fields: dict[str, object], code: str) -> None:
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF")
    data: dict[str, object] = {"input": str(source), "edit": {"type": "denoise"}, **fields}
    with pytest.raises(StepEditError) as e:
        job_from_request("j1", EditRequest(**data), FakeRenderBackend())  # type: ignore[arg-type]
    assert e.value.code == code


def test_a_transcribe_request_becomes_a_transcription_job(tmp_path: Path) -> None:
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF")
    request = TranscribeRequest(input=str(source), language="ZH", text="你好", length=3.0)
    job = job_from_request("t1", request, FakeRenderBackend())
    assert job.work == Transcription("zh", "你好") and job.length == 3.0
    assert output_stem(job) == "take.stepedit.transcript.t1"


def test_an_unknown_language_is_an_invalid_request(tmp_path: Path) -> None:
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF")
    with pytest.raises(StepEditError) as e:
        job_from_request(
            "t1", TranscribeRequest(input=str(source), language="fr"), FakeRenderBackend()
        )
    assert e.value.code == "invalid_edit"
