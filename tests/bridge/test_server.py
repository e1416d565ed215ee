"""The real `stepedit serve` process over real UDP, driven by the project's client."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import parselmouth
import pytest
import soundfile

from bridge import protocol
from bridge.client import ClientError, StepEditClient
from bridge.launcher import EngineProcess, start_engine, stop_engine
from bridge.protocol import ADDRESS

pytestmark = pytest.mark.slow

CLIP = "en_ljspeech_LJ050-0131.wav"


@pytest.fixture()
def workdir(tmp_path: Path, data_dir: Path) -> Path:
    shutil.copy(data_dir / CLIP, tmp_path / CLIP)
    shutil.copy(data_dir / "en_jfk_inaugural_1961.flac", tmp_path / "jfk.flac")
    return tmp_path


@pytest.fixture()
def client(engine: EngineProcess) -> Iterator[StepEditClient]:
    with StepEditClient("127.0.0.1", engine.port, timeout=5.0) as c:
        yield c


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def median_f0(samples: np.ndarray, rate: int) -> float:
    pitch = parselmouth.Sound(
        samples.mean(axis=1) if samples.ndim == 2 else samples, rate
    ).to_pitch(pitch_floor=60, pitch_ceiling=500)
    f0 = pitch.selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


def test_ping_and_capabilities(client: StepEditClient) -> None:
    pong = client.ping()
    assert (pong.protocol_version, pong.backend, pong.device) == (1, "cpu", "cpu")
    caps = client.capabilities()
    assert caps["protocol_version"] == 1 and caps["backend"] == "cpu"
    assert set(caps["edit_types"]) == {
        "emotion",
        "style",
        "paralinguistic",
        "speed",
        "denoise",
        "vad",
        "clone",
        "text",
        "fillers",
    }
    cpu = caps["backends"]["cpu"]["edits"]
    assert cpu["speed"] == ["faster", "slower", "more faster", "more slower"]
    assert cpu["denoise"] == [] and cpu["vad"] == []
    assert "clone" not in cpu


def test_speed_edit_end_to_end(client: StepEditClient, workdir: Path) -> None:
    source = workdir / CLIP
    before = sha(source)
    progress: list[tuple[float, str]] = []
    outcome = client.edit(
        {"input": str(source), "edit": {"type": "speed", "option": "faster"}},
        on_progress=lambda f, s: progress.append((f, s)),
        job_id="speed-1",
    )
    out = Path(outcome.output_path)
    assert out.parent == workdir and out.name.startswith("en_ljspeech_LJ050-0131.stepedit.faster.")
    assert sha(source) == before  # the original is never touched
    original, rate = soundfile.read(source, dtype="float32")
    edited, out_rate = soundfile.read(out, dtype="float32")
    assert out_rate == rate == 22050 and edited.ndim == 1
    assert soundfile.info(out).subtype == "PCM_24"
    assert len(edited) == pytest.approx(len(original) / 1.25, abs=2)
    assert median_f0(edited, rate) == pytest.approx(median_f0(original, rate), rel=0.03)
    result = outcome.result
    assert result["duration"] == pytest.approx(len(edited) / rate, abs=1e-4)
    assert (result["sample_rate"], result["channels"], result["backend"]) == (22050, 1, "cpu")
    assert set(result["timings"]) >= {"queued", "read", "render", "write", "total"}
    fractions = [f for f, _ in progress]
    assert (
        fractions == sorted(fractions)
        and progress[0][1] == "reading"
        and progress[-1][1] == "writing"
    )


def test_stereo_flac_slice_keeps_format(
    client: StepEditClient, workdir: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "renders"
    out_dir.mkdir()
    outcome = client.edit(
        {
            "input": str(workdir / "jfk.flac"),
            "start": 2.0,
            "length": 4.0,
            "edit": {"type": "speed", "option": "slower"},
            "output_dir": str(out_dir),
        }
    )
    info = soundfile.info(outcome.output_path)
    assert (info.samplerate, info.channels) == (44100, 2)
    assert info.frames == pytest.approx(4.0 * 44100 / 0.8, abs=2)
    assert Path(outcome.output_path).parent == out_dir


def test_resent_job_is_not_rendered_twice(client: StepEditClient, workdir: Path) -> None:
    request = {"input": str(workdir / CLIP), "edit": {"type": "speed", "option": "more faster"}}
    first = client.edit(request, job_id="dup-1")
    again = client.submit("dup-1", request)
    assert again.address == ADDRESS["done"] and again.args[1] == first.output_path
    assert len(list(workdir.glob("*.stepedit.*"))) == 1


def test_status_file_and_reply_port(engine: EngineProcess, workdir: Path) -> None:
    status_file = workdir / "job.json"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(30)
        request = {
            "input": str(workdir / CLIP),
            "edit": {"type": "vad"},
            "reply_port": listener.getsockname()[1],
            "status_file": str(status_file),
        }
        with StepEditClient("127.0.0.1", engine.port) as sender:
            sender.send(ADDRESS["edit"], "sf-1", json.dumps(request))
        addresses: list[str] = []
        while not addresses or addresses[-1] not in {ADDRESS["done"], ADDRESS["error"]}:
            [message] = protocol.decode_datagram(listener.recv(65536))
            addresses.append(message.address)
    assert addresses[0] == ADDRESS["accepted"] and addresses[-1] == ADDRESS["done"]
    assert ADDRESS["progress"] in addresses
    status = json.loads(status_file.read_text())
    assert status["state"] == "done" and status["job_id"] == "sf-1"
    assert Path(status["output_path"]).is_file() and status["result"]["backend"] == "cpu"


def test_unknown_jobs_and_unsupported_edits(client: StepEditClient, workdir: Path) -> None:
    for address in (ADDRESS["status"], ADDRESS["cancel"]):
        reply = client.query(address, "never-seen")
        assert reply.address == ADDRESS["error"] and reply.args[1] == "unknown_job"
    with pytest.raises(ClientError) as e:
        client.edit({"input": str(workdir / CLIP), "edit": {"type": "clone", "target_text": "Hi."}})
    assert e.value.code == "unsupported"
    assert "cpu backend cannot render clone" in str(e.value)


def test_cancel_running_job_leaves_no_file(
    client: StepEditClient, data_dir: Path, tmp_path: Path
) -> None:
    long_clip = tmp_path / "meeting.wav"
    shutil.copy(data_dir / "en_ami_meeting_trn04.wav", long_clip)
    request = {"input": str(long_clip), "edit": {"type": "denoise"}}
    first = client.submit("cancel-1", request)
    assert first.address == ADDRESS["accepted"]
    while (message := client.receive(10)) is not None and message.address != ADDRESS["progress"]:
        pass
    client.send(ADDRESS["cancel"], "cancel-1")
    final = next(
        m
        for m in client.events("cancel-1", first)
        if m.address in {ADDRESS["done"], ADDRESS["error"]}
    )
    assert final.address == ADDRESS["error"] and final.args[1] == "cancelled"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meeting.wav"]
    assert client.query(ADDRESS["status"], "cancel-1").args[1] == "cancelled"


def test_queue_runs_jobs_in_order(client: StepEditClient, workdir: Path) -> None:
    ids = [f"order-{i}" for i in range(3)]
    for job_id in ids:
        client.submit(
            job_id, {"input": str(workdir / CLIP), "edit": {"type": "speed", "option": "slower"}}
        )
    done_order: list[str] = []
    while len(done_order) < len(ids):
        message = client.receive(30)
        assert message is not None
        if message.address == ADDRESS["done"]:
            done_order.append(message.args[0])
    assert done_order == ids
    assert len(list(workdir.glob("*.stepedit.slower.*"))) == 3


def test_sigterm_mid_job_leaves_no_partial_files(tmp_path: Path, data_dir: Path) -> None:
    own = start_engine(tmp_path)
    clip = tmp_path / "meeting.wav"
    shutil.copy(data_dir / "en_ami_meeting_trn04.wav", clip)
    with StepEditClient("127.0.0.1", own.port) as c:
        c.submit("term-1", {"input": str(clip), "edit": {"type": "denoise"}})
        time.sleep(0.5)
    assert stop_engine(own) == 0
    leftovers = [
        p.name
        for p in tmp_path.iterdir()
        if p.suffix != ".log" and p.name not in {"meeting.wav", "state"}  # state: the engine's
    ]
    assert all(name.endswith(".wav") and ".stepedit.denoise." in name for name in leftovers)
    for name in leftovers:  # a job that finished in the grace period wrote a whole file
        assert soundfile.info(tmp_path / name).frames == soundfile.info(clip).frames
    assert "shutting down" in own.log_text()
