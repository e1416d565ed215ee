"""The job journal, and an engine restarted on it: nothing accepted silently vanishes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.protocol import EditRequest, JobStatus, TranscribeRequest
from engine.engine import Engine, EngineConfig
from engine.journal import Journal
from tests.engine.fake_backends import FakeRenderBackend
from tests.engine.test_engine import Events, request


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture()
def restarted(state: Path) -> Iterator[tuple[Engine, FakeRenderBackend]]:
    """An engine started on ``state``, as after a restart; stopped at the end."""
    backend = FakeRenderBackend()
    engine = Engine(backend, EngineConfig(state_dir=state, shutdown_grace_s=1.0))
    yield engine, backend
    engine.stop()


def test_the_journal_keeps_requests_statuses_and_status_files(state: Path) -> None:
    journal = Journal(state)
    edit = EditRequest(input="/a/b.wav", edit={"type": "speed", "option": "faster"}, start=1.5)
    words = TranscribeRequest(input="/a/c.wav", language="en", text="hello there")
    journal.accepted("e1", "alice", edit, JobStatus("e1", "queued"))
    journal.accepted("t1", "", words, JobStatus("t1", "queued"))
    journal.started(JobStatus("e1", "running", 0.2, "render"))
    error = JobStatus("t1", "error", error=("input_not_found", "gone"))
    journal.changed(error)
    journal.claimed(Path("/a/e1.status.json"), "e1")
    journal.close()

    again = Journal(state)
    jobs = again.jobs()
    assert [(j.job_id, j.owner, j.request, j.attempts) for j in jobs] == [
        ("e1", "alice", edit, 1),
        ("t1", "", words, 0),
    ]
    assert jobs[0].status == JobStatus("e1", "running", 0.2, "render")
    assert jobs[1].status == error
    assert again.status_files() == {Path("/a/e1.status.json")}
    again.forget(["e1"])
    assert [j.job_id for j in again.jobs()] == ["t1"]
    assert again.status_files() == set()
    mode = sqlite3.connect(again.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_journal_of_another_schema_version_is_refused(state: Path) -> None:
    Journal(state).close()
    with sqlite3.connect(state / Journal.FILE_NAME) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(OSError, match="schema version 99"):
        Journal(state)


def test_a_finished_job_is_answered_after_a_restart_and_never_rendered_again(
    state: Path, source: Path
) -> None:
    first = Engine(FakeRenderBackend(), EngineConfig(state_dir=state))
    first.start()
    events = Events()
    first.submit("j1", request(source), events)
    done = events.wait_finished("j1")
    first.stop()

    backend = FakeRenderBackend()
    second = Engine(backend, EngineConfig(state_dir=state))
    second.start()
    try:
        assert second.status("j1") == done
        resent = Events()
        assert second.submit("j1", request(source), resent) == done
        resent.wait_for(lambda ss: len(ss) == 1)
        assert resent.statuses == [done] and backend.calls == []
    finally:
        second.stop()


def _accepted_by_a_killed_engine(
    state: Path, job_id: str, req: EditRequest, *, running_attempts: int = 0, owner: str = ""
) -> None:
    """Journals a job the way an engine killed while it waited (or rendered) leaves it."""
    journal = Journal(state)
    journal.accepted(job_id, owner, req, JobStatus(job_id, "queued"))
    for _ in range(running_attempts):
        journal.started(JobStatus(job_id, "running", 0.3, "render"))
    journal.close()


def test_waiting_and_interrupted_jobs_are_rendered_after_a_restart(
    restarted: tuple[Engine, FakeRenderBackend], state: Path, source: Path
) -> None:
    _accepted_by_a_killed_engine(state, "waiting", request(source))
    _accepted_by_a_killed_engine(state, "cut", request(source), running_attempts=1)
    engine, backend = restarted
    engine.start()
    listener = Events()
    # The client sends its job again: it hears the job's progress from now on.
    engine.submit("cut", request(source), listener)
    assert listener.wait_finished("cut").state == "done"
    for job_id in ("waiting", "cut"):
        deadline_status = _wait_finished(engine, job_id)
        assert deadline_status.state == "done", deadline_status
        assert Path(deadline_status.output_path).is_file()
    assert len(backend.calls) == 2


def test_a_job_that_stopped_the_engine_twice_is_reported_not_retried(
    restarted: tuple[Engine, FakeRenderBackend], state: Path, source: Path
) -> None:
    _accepted_by_a_killed_engine(state, "poison", request(source), running_attempts=2)
    engine, backend = restarted
    engine.start()
    status = engine.status("poison")
    assert status.state == "error" and status.error is not None
    assert status.error[0] == "internal" and "2 times" in status.error[1]
    assert backend.calls == []


def test_an_unfinished_job_whose_input_vanished_is_reported_failed(
    restarted: tuple[Engine, FakeRenderBackend], state: Path, source: Path
) -> None:
    _accepted_by_a_killed_engine(state, "j1", request(source))
    source.unlink()
    engine, _ = restarted
    engine.start()
    status = engine.status("j1")
    assert status.state == "error" and status.error is not None
    assert status.error[0] == "input_not_found"
    assert "after a restart" in status.error[1]


def test_temporary_files_of_interrupted_jobs_are_removed_at_start(
    restarted: tuple[Engine, FakeRenderBackend], state: Path, source: Path
) -> None:
    _accepted_by_a_killed_engine(state, "cut1", request(source), running_attempts=1)
    # What a kill in the middle of the write leaves (fresh: no age rule would remove it).
    leftover = source.parent / ".take.stepedit.denoise.cut1.x1y2z3w4.wav.tmp"
    leftover.write_bytes(b"RIFF")
    someone_elses = source.parent / ".take.stepedit.denoise.other.a1b2c3d4.wav.tmp"
    someone_elses.write_bytes(b"RIFF")
    engine, _ = restarted
    engine.start()
    assert not leftover.exists()
    assert someone_elses.exists()
    assert _wait_finished(engine, "cut1").state == "done"


def test_owners_and_status_files_survive_a_restart(state: Path, source: Path) -> None:
    status_file = source.parent / "j1.status.json"
    first = Engine(FakeRenderBackend(), EngineConfig(state_dir=state))
    first.start()
    events = Events()
    first.submit("j1", request(source, status_file=str(status_file)), events, owner="alice")
    events.wait_finished("j1")
    first.stop()

    second = Engine(FakeRenderBackend(), EngineConfig(state_dir=state))
    second.start()
    try:
        assert second.status("j1", owner="bob").error is not None
        assert second.status("j1", owner="bob").error[0] == "unknown_job"  # type: ignore[index]
        assert second.status("j1", owner="alice").state == "done"
        # The status file is the engine's own: a resend rewrites it instead of refusing.
        resent = Events()
        second.submit("j1", request(source, status_file=str(status_file)), resent, "alice")
        resent.wait_for(lambda ss: len(ss) == 1)
        assert resent.statuses[0].state == "done"
    finally:
        second.stop()


def test_jobs_the_engine_forgets_leave_the_journal(state: Path, source: Path) -> None:
    engine = Engine(FakeRenderBackend(), EngineConfig(state_dir=state, retain_finished=2))
    engine.start()
    events = Events()
    for n in range(4):
        engine.submit(f"j{n}", request(source), events)
        events.wait_finished(f"j{n}")
    engine.stop()
    assert [j.job_id for j in Journal(state).jobs()] == ["j2", "j3"]


def _wait_finished(engine: Engine, job_id: str, timeout: float = 10.0) -> JobStatus:
    import time

    deadline = time.monotonic() + timeout
    while not (status := engine.status(job_id)).finished and time.monotonic() < deadline:
        time.sleep(0.02)
    return status
