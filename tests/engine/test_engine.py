"""The engine in-process with a fake backend: the one way in, ordering, cancel, status, errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from bridge.protocol import RESULT_KEYS, EditRequest, JobStatus
from engine.engine import Engine, EngineConfig
from tests.engine.fake_backends import FakeRenderBackend


class Events:
    """Collects the statuses a listener receives, with the thread that delivered each."""

    def __init__(self) -> None:
        self.statuses: list[JobStatus] = []
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def __call__(self, status: JobStatus) -> None:
        with self._changed:
            self.statuses.append(status)
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[JobStatus]], bool], timeout: float = 10) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self.statuses), timeout), self.states

    def wait_finished(self, job_id: str) -> JobStatus:
        self.wait_for(lambda ss: any(s.job_id == job_id and s.finished for s in ss))
        return next(s for s in self.statuses if s.job_id == job_id and s.finished)

    @property
    def states(self) -> list[str]:
        return [s.state for s in self.statuses]


@pytest.fixture()
def backend() -> FakeRenderBackend:
    return FakeRenderBackend()


@pytest.fixture()
def engine(backend: FakeRenderBackend) -> Iterator[Engine]:
    running = Engine(backend, EngineConfig(max_queue=2, shutdown_grace_s=1.0))
    running.start()
    yield running
    if backend.gate is not None:
        backend.gate.set()
    running.stop()


def request(source: Path, edit: dict[str, Any] | None = None, **fields: Any) -> EditRequest:
    return EditRequest(input=str(source), edit=edit or {"type": "denoise"}, **fields)


def test_a_job_reports_queued_progress_and_done_in_order(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    events = Events()
    first = engine.submit("j1", request(source), events)
    assert first.state == "queued"
    done = events.wait_finished("j1")
    assert done.state == "done"
    assert events.states[0] == "queued" and set(events.states[1:-1]) == {"running"}
    progress = [s.progress for s in events.statuses]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert Path(done.output_path).is_file() and done.output_path.startswith(str(source.parent))
    assert done.result is not None and set(RESULT_KEYS) <= set(done.result)
    assert done.result["backend"] == "cpu" and done.result["edit"]["type"] == "denoise"
    assert set(done.result["timings"]) == {"read", "render", "write", "total", "queued"}
    assert backend.loaded and backend.threads == ["stepedit-render-job"]


def test_listeners_run_on_the_event_thread_not_the_render_thread(
    engine: Engine, source: Path
) -> None:
    events = Events()
    engine.submit("j1", request(source), events)
    events.wait_finished("j1")
    assert events.threads == {"stepedit-events"}


def test_a_slow_listener_stalls_neither_the_engine_nor_the_render(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    release = threading.Event()

    def slow_listener(_status: JobStatus) -> None:
        release.wait(10)

    engine.submit("slow", request(source), slow_listener)
    # The render goes on and the engine answers while the listener blocks.
    assert backend.started.wait(5)
    started = time.monotonic()
    deadline = started + 5
    while engine.status("slow").state != "done" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status("slow").state == "done"
    release.set()


def test_jobs_render_one_at_a_time_in_submission_order(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    backend.gate = threading.Event()
    events = Events()
    engine.submit("a", request(source, {"type": "speed", "option": "faster"}), events)
    assert backend.started.wait(5)
    engine.submit("b", request(source), events)
    engine.submit(
        "c", request(source, {"type": "speed", "option": "faster", "iterations": 2}), events
    )
    assert engine.status("b").state == "queued" and len(backend.calls) == 1
    backend.gate.set()
    for job_id in ("a", "b", "c"):
        assert events.wait_finished(job_id).state == "done"
    assert [edit.type for _, edit in backend.calls] == ["speed", "denoise", "speed"]
    assert backend.calls[2][1].iterations == 2


def test_a_resent_id_gets_its_latest_status_and_is_never_rendered_twice(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    events = Events()
    engine.submit("j1", request(source), events)
    done = events.wait_finished("j1")
    again = Events()
    assert (
        engine.submit("j1", request(source, {"type": "speed", "option": "faster"}), again) == done
    )
    again.wait_for(lambda ss: len(ss) == 1)
    assert again.statuses == [done] and len(backend.calls) == 1


def test_cancel_a_queued_job_before_it_renders(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    backend.gate = threading.Event()
    events = Events()
    engine.submit("running", request(source), events)
    assert backend.started.wait(5)
    engine.submit("waiting", request(source), events)
    cancelled = engine.cancel("waiting")
    assert cancelled.state == "cancelled" and cancelled.error == (
        "cancelled",
        "cancelled by the client",
    )
    backend.gate.set()
    assert events.wait_finished("running").state == "done"
    assert len(backend.calls) == 1
    assert engine.status("waiting").state == "cancelled"


def test_cancel_a_running_job_at_its_next_progress_point(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    backend.gate = threading.Event()
    events = Events()
    engine.submit("j1", request(source), events)
    assert backend.started.wait(5)
    assert engine.cancel("j1").state == "running"
    assert events.wait_finished("j1").error == ("cancelled", "cancelled by the client")
    assert not list(source.parent.glob("*.stepedit.*"))


def test_a_finished_job_is_not_cancelled(engine: Engine, source: Path) -> None:
    events = Events()
    engine.submit("j1", request(source), events)
    events.wait_finished("j1")
    assert engine.cancel("j1").state == "done"


def test_unknown_ids(engine: Engine) -> None:
    for status in (engine.status("nope"), engine.cancel("nope")):
        assert status.state == "error" and status.error is not None
        assert status.error[0] == "unknown_job"


@pytest.mark.parametrize(
    ("edit", "fields", "code"),
    [
        ({"type": "emotion", "option": "giddy"}, {}, "invalid_edit"),
        ({"type": "emotion", "option": "happy"}, {}, "unsupported"),
        ({"type": "denoise"}, {"input": "/no/such/take.wav"}, "input_not_found"),
        ({"type": "denoise"}, {"output_dir": "/no/such/folder"}, "output_unwritable"),
        ({"type": "denoise"}, {"status_file": "/no/such/folder/s.json"}, "bad_request"),
    ],
)
def test_rejected_requests_are_reported_and_never_queued(
    engine: Engine,
    backend: FakeRenderBackend,
    source: Path,
    edit: dict[str, Any],
    fields: dict[str, Any],
    code: str,
) -> None:
    events = Events()
    data = {"input": str(source), "edit": edit, **fields}
    status = engine.submit("bad", EditRequest(**data), events)
    assert status.state == "error" and status.error is not None and status.error[0] == code
    events.wait_for(lambda ss: len(ss) == 1)
    assert events.statuses == [status]
    assert engine.status("bad").error is not None
    assert engine.status("bad").error[0] == "unknown_job"  # type: ignore[index]
    assert backend.calls == []


def test_unsupported_names_the_backend_that_renders_it(engine: Engine, source: Path) -> None:
    status = engine.submit("x", request(source, {"type": "clone", "target_text": "hi"}), Events())
    assert status.error is not None and "backends that support it: stepaudio" in status.error[1]


def test_queue_full(engine: Engine, backend: FakeRenderBackend, source: Path) -> None:
    backend.gate = threading.Event()
    engine.submit("running", request(source), Events())
    assert backend.started.wait(5)
    for job_id in ("q1", "q2"):
        assert engine.submit(job_id, request(source), Events()).state == "queued"
    full = engine.submit("q3", request(source), Events())
    assert full.error is not None and full.error[0] == "queue_full"


class _Fatal(BaseException):
    """What a misbehaving native backend might raise past ``Exception``."""


def test_backend_errors_keep_their_code_and_the_worker_survives_any_error(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    from engine.errors import BackendError

    events = Events()
    backend.fail = BackendError("model exploded")
    engine.submit("j1", request(source), events)
    assert events.wait_finished("j1").error == ("backend_failed", "model exploded")
    backend.fail = ZeroDivisionError("bug")
    engine.submit("j2", request(source), events)
    assert events.wait_finished("j2").error == ("internal", "ZeroDivisionError: bug")
    backend.fail = _Fatal("native crash")  # past Exception, as a native backend might
    engine.submit("j2b", request(source), events)
    assert events.wait_finished("j2b").error == ("internal", "_Fatal: native crash")
    backend.fail = None
    engine.submit("j3", request(source), events)
    assert events.wait_finished("j3").state == "done"


def test_backend_info_never_replaces_protocol_keys(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    backend.info = {"duration": -1, "timings": {}, "backend": "evil", "generation": {"n": 3}}
    events = Events()
    engine.submit("j1", request(source), events)
    result = events.wait_finished("j1").result
    assert result is not None
    assert result["duration"] == pytest.approx(1.0) and result["backend"] == "cpu"
    assert "total" in result["timings"] and result["generation"] == {"n": 3}


def test_the_status_file_follows_every_state_and_records_rejections(
    engine: Engine, source: Path, tmp_path: Path
) -> None:
    status_file = tmp_path / "job.json"
    events = Events()
    engine.submit("j1", request(source, status_file=str(status_file)), events)
    events.wait_finished("j1")
    written = json.loads(status_file.read_text(encoding="utf-8"))
    assert written["state"] == "done" and written["output_path"] == events.statuses[-1].output_path
    rejected = tmp_path / "rejected.json"
    engine.submit("j2", request(source, {"type": "bogus"}, status_file=str(rejected)), events)
    events.wait_for(lambda ss: any(s.job_id == "j2" for s in ss))
    assert json.loads(rejected.read_text(encoding="utf-8"))["error"]["code"] == "invalid_edit"


def test_stop_cancels_waiting_jobs_and_refuses_new_ones(
    backend: FakeRenderBackend, source: Path
) -> None:
    engine = Engine(backend, EngineConfig(shutdown_grace_s=0.2))
    engine.start()
    backend.gate = threading.Event()
    events = Events()
    engine.submit("running", request(source), events)
    assert backend.started.wait(5)
    engine.submit("waiting", request(source), events)
    engine.stop()  # the running job outlives the grace period and is cancelled
    for job_id in ("running", "waiting"):
        status = engine.status(job_id)
        assert status.state == "cancelled" and status.error is not None
        assert status.error[0] == "shutting_down"
    # Every event was delivered before stop returned.
    assert {s.job_id for s in events.statuses if s.finished} == {"running", "waiting"}
    late = engine.submit("late", request(source), events)
    assert late.error is not None and late.error[0] == "shutting_down"
    assert events.statuses[-1] == late  # still answered, though the event thread is gone


def test_an_existing_status_file_is_never_written(
    engine: Engine, source: Path, tmp_path: Path
) -> None:
    someone_elses = tmp_path / "notes.txt"
    someone_elses.write_text("my notes", encoding="utf-8")
    someone_elses.chmod(0o644)
    events = Events()
    status = engine.submit("j1", request(source, status_file=str(someone_elses)), events)
    assert status.error is not None and status.error[0] == "bad_request"
    assert "already exists" in status.error[1]
    events.wait_for(lambda ss: len(ss) == 1)
    assert someone_elses.read_text(encoding="utf-8") == "my notes"
    assert someone_elses.stat().st_mode & 0o777 == 0o644
    # A rejected request never writes over a file either.
    engine.submit("j2", request(source, {"type": "bogus"}, status_file=str(someone_elses)), events)
    events.wait_for(lambda ss: len(ss) == 2)
    assert someone_elses.read_text(encoding="utf-8") == "my notes"


def test_the_engine_rewrites_only_the_status_files_it_created(
    engine: Engine, source: Path, tmp_path: Path
) -> None:
    status_file = tmp_path / "job.json"
    events = Events()
    engine.submit("j1", request(source, status_file=str(status_file)), events)
    events.wait_finished("j1")
    assert json.loads(status_file.read_text(encoding="utf-8"))["state"] == "done"
    # A resend names the same file: it is the engine's own, so it is answered and rewritten.
    again = Events()
    engine.submit("j1", request(source, status_file=str(status_file)), again)
    again.wait_for(lambda ss: len(ss) == 1)
    assert again.statuses[0].state == "done"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_render_worker_is_restarted_and_its_job_reported(
    engine: Engine, backend: FakeRenderBackend, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Events()
    backend.gate = threading.Event()
    engine.submit("j1", request(source), events)
    assert backend.started.wait(5)

    def die(record: Any) -> None:
        raise _Fatal("worker bug")

    monkeypatch.setattr(engine, "_render", die)
    engine.submit("j2", request(source), events)  # the worker dies taking it
    backend.gate.set()
    events.wait_for(lambda ss: any(s.job_id == "j1" and s.finished for s in ss))
    deadline = time.monotonic() + 5
    while engine.status("j2").state != "error" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.status("j2").error == ("internal", "the render worker died")
    monkeypatch.undo()
    engine.submit("j3", request(source), events)
    assert events.wait_finished("j3").state == "done"


def test_stop_gives_up_on_a_render_that_never_checks_for_cancellation(
    backend: FakeRenderBackend, source: Path
) -> None:
    engine = Engine(backend)  # default: cancel the running job at once
    engine.start()
    backend.gate, backend.deaf = threading.Event(), True
    events = Events()
    engine.submit("j1", request(source), events)
    assert backend.started.wait(5)
    started = time.monotonic()
    engine.stop()
    assert time.monotonic() - started < 1.0
    assert events.wait_finished("j1").error == (
        "shutting_down",
        "the engine stopped before this job finished; send it again",
    )
    backend.gate.set()


def test_cancel_reports_a_render_that_never_checks_within_a_second(
    engine: Engine, backend: FakeRenderBackend, source: Path
) -> None:
    events = Events()
    backend.gate, backend.deaf = threading.Event(), True
    engine.submit("j1", request(source), events)
    engine.submit("j2", request(source), events)
    assert backend.started.wait(5)
    asked = time.monotonic()
    engine.cancel("j1")
    cancelled = events.wait_finished("j1")
    assert time.monotonic() - asked < 1.0
    assert cancelled.error == ("cancelled", "cancelled by the client")
    # The abandoned render ends on its own; its file is not kept, and the next job runs
    # only then (one render at a time).
    assert engine.status("j2").state == "queued"
    backend.gate.set()
    assert events.wait_finished("j2").state == "done"
    outputs = sorted(p.name for p in source.parent.glob("take.stepedit.*"))
    assert outputs == [Path(engine.status("j2").output_path).name]


def test_a_late_render_of_a_cancelled_job_leaves_neither_its_result_nor_its_passes(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import audio
    from tests.engine.fake_backends import FakeTokenBackend

    gate, writing = threading.Event(), threading.Event()
    written: list[Path] = []
    write = audio.write_audio_atomic

    def slow_write(*args: Any, **kwargs: Any) -> Path:
        if not writing.is_set():  # the first write, the result's: past the last progress point
            writing.set()
            gate.wait(10)
        written.append(write(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(audio, "write_audio_atomic", slow_write)
    engine = Engine(FakeTokenBackend())
    engine.start()
    try:
        events = Events()
        happy = {"type": "emotion", "option": "happy", "iterations": 3, "decode_passes": True}
        engine.submit("j1", request(source, happy), events)
        engine.submit("j2", request(source, {"type": "emotion", "option": "happy"}), events)
        assert writing.wait(5)
        engine.cancel("j1")
        assert events.wait_finished("j1").state == "cancelled"
        gate.set()  # j1's render writes its result and two passes after all, then j2 renders
        assert events.wait_finished("j2").state == "done"
        assert [p.name for p in written[:3]] == [
            "take.stepedit.happyx3.j1.wav",
            "take.stepedit.happyx3.j1.pass1.wav",
            "take.stepedit.happyx3.j1.pass2.wav",
        ]
        outputs = sorted(p.name for p in source.parent.glob("take.stepedit.*"))
        assert outputs == [Path(engine.status("j2").output_path).name]
    finally:
        gate.set()
        engine.stop()


def test_the_guard_and_segment_settings_reach_the_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import render
    from engine.guard import Guard
    from tests.engine.fake_backends import FakeTokenBackend

    rate = 16000
    t = np.arange(25 * rate) / rate
    speech = 0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 0.4 * t) > 0)  # pauses
    take = tmp_path / "long.wav"
    soundfile.write(take, speech, rate)
    seen: list[dict[str, Any]] = []
    real = render.render_audio

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_audio", recorded)
    config = EngineConfig(guard_max_wer=0.5, guard_tries=2, segment_seconds=10.0)
    running = Engine(FakeTokenBackend(), config)
    running.start()
    try:
        events = Events()
        running.submit("long", request(take, {"type": "emotion", "option": "happy"}), events)
        done = events.wait_finished("long")
    finally:
        running.stop()
    assert done.state == "done" and done.result is not None
    assert seen[0]["guard"] == Guard(0.5, 2) and seen[0]["segment_seconds"] == 10.0
    segments = done.result["segments"]  # 25 s in segments of at most 10 s, not the backend's 30
    assert len(segments) == 3 and all(s["end"] - s["start"] <= 10.0 for s in segments)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"guard_max_wer": 1.5}, "guard_max_wer must be 0 to 1"),
        ({"guard_tries": 0}, "guard_tries must be 1 to 10"),
        ({"segment_seconds": 2.0}, "segment_seconds must be 5 to 90 s, got 2"),
        ({"segment_seconds": 300.0}, "8192-token context"),
    ],
)
def test_guard_and_segment_settings_are_bounded(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineConfig(**setting)


def test_the_engine_defaults_are_the_guards() -> None:
    from engine.guard import Guard

    config = EngineConfig()
    assert (config.guard_max_wer, config.guard_tries) == (Guard().max_wer, Guard().tries)
    assert config.segment_seconds is None
