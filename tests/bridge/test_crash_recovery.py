"""SIGKILL the real engine while it renders one job, holds two more in its queue and has
finished another; restart it on the same state folder and check what the journal promises:
every accepted job finished or re-run, finished ones answered and never rendered again, no
temporary files, sources byte-identical."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import soundfile

from bridge.client import StepEditClient
from bridge.launcher import start_engine, stop_engine
from bridge.protocol import ADDRESS, Message

CLIP = "en_ljspeech_LJ050-0131.wav"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for(client: StepEditClient, job_id: str, address: str, timeout: float) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.query(ADDRESS["status"], job_id)
        if message.address == address:
            return message
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {address}: last {message}")


def test_a_killed_engine_finishes_every_accepted_job_after_a_restart(
    tmp_path: Path, data_dir: Path
) -> None:
    media, out = tmp_path / "media", tmp_path / "out"
    media.mkdir()
    out.mkdir()
    short = media / "short.wav"
    short.write_bytes((data_dir / CLIP).read_bytes())
    audio, rate = soundfile.read(short, dtype="float32")
    long = media / "long.wav"  # long enough to be killed in the middle of its render
    soundfile.write(long, np.tile(audio, int(np.ceil(40 * rate / len(audio)))), rate)
    sources = {path: _digest(path) for path in (short, long)}
    denoise = {"edit": {"type": "denoise"}, "output_dir": str(out)}

    first = start_engine(tmp_path)
    try:
        with StepEditClient("127.0.0.1", first.port, timeout=10) as client:
            finished = client.edit({"input": str(short), **denoise}, job_id="before")
            reply = client.submit("cut", {"input": str(long), **denoise})
            for message in client.events("cut", reply):
                if message.address == ADDRESS["progress"] and message.args[2] == "render":
                    break
            for job_id in ("queued1", "queued2"):
                accepted = client.submit(job_id, {"input": str(short), **denoise})
                assert accepted.address == ADDRESS["accepted"]
    finally:
        first.process.kill()  # SIGKILL: no cleanup of any kind
        first.process.wait()

    second = start_engine(tmp_path)
    try:
        with StepEditClient("127.0.0.1", second.port, timeout=10) as client:
            again = client.query(ADDRESS["status"], "before")
            assert again.address == ADDRESS["done"]
            assert again.args[1] == finished.output_path
            resent = client.submit("before", {"input": str(short), **denoise})
            assert resent.address == ADDRESS["done"] and resent.args[1] == finished.output_path
            outputs = {
                job_id: _wait_for(client, job_id, ADDRESS["done"], 180).args[1]
                for job_id in ("cut", "queued1", "queued2")
            }
    finally:
        stop_engine(second)

    log = second.log_text()
    assert all(f"job {job_id!r} resumed after a restart" in log for job_id in outputs)
    assert "job 'before' done" not in log  # answered from the journal, not rendered again
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(Path(p).name for p in [finished.output_path, *outputs.values()])
    assert not list(out.glob(".*.tmp")) and not list(media.glob(".*"))
    assert {path: _digest(path) for path in sources} == sources
