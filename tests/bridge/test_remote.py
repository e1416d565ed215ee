"""A remote engine: two real engines on loopback that share no files; audio both ways."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.auth import Keyring
from bridge.cli import main
from bridge.client import ClientError, StepEditClient
from bridge.launcher import start_engine, stop_engine
from bridge.privacy import Sensitive
from bridge.protocol import ADDRESS
from bridge.remote import run_with_upload
from engine.text.diff import normalise
from engine.text.transcribe import transcribe

DATA = Path(__file__).resolve().parents[1] / "data"
CLIP = DATA / "en_ljspeech_LJ001-0001.wav"
ROOT = Path(__file__).resolve().parents[2]
TAKE_SECONDS = 300


class Studio:
    """The client's machine (its folders and a local engine) and a remote engine."""

    def __init__(self, base: Path) -> None:
        self.client = base / "client"
        self.out = self.client / "out"
        self.out.mkdir(parents=True)
        remote_files = base / "remote" / "files"
        remote_files.mkdir(parents=True)
        self.remote_files = remote_files
        (base / "local").mkdir()
        keyring = Keyring.in_state_dir(base / "remote" / "state")
        self.other_secret = keyring.ensure("other")[0]  # a second key of the same engine
        self.local = start_engine(base / "local", "--backend", "cpu", *_roots(self.client))
        self.shared = base / "shared"  # storage both machines mount (under other paths)
        self.shared.mkdir()
        self.remote = start_engine(
            base / "remote",
            "--backend",
            "cpu",
            "--require-auth",
            *_roots(remote_files),
            *_roots(self.shared),
        )
        self.store = base / "remote" / "state" / "transfers"
        self.take = self.client / "take.wav"
        clip, rate = soundfile.read(CLIP, dtype="int16")
        tiled = np.tile(clip, -(-TAKE_SECONDS * rate // len(clip)))[: TAKE_SECONDS * rate]
        soundfile.write(self.take, tiled, rate, subtype="PCM_16")

    def connect(self, secret: str | None = "engine", transport: str = "tcp") -> StepEditClient:
        key = self.remote.secret if secret == "engine" else secret
        return StepEditClient("127.0.0.1", self.remote.port, secret=key, transport=transport)

    def stored(self, pattern: str) -> list[Path]:
        return sorted(self.store.glob(f"*/{pattern}"))


def _roots(folder: Path) -> tuple[str, ...]:
    return ("--input-root", str(folder), "--output-root", str(folder))


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    place = Studio(tmp_path_factory.mktemp("studio"))
    yield place
    for engine in (place.local, place.remote):
        stop_engine(engine)


def _read(path: Path) -> np.ndarray:
    return soundfile.read(path, dtype="float32", always_2d=True)[0]


def test_a_five_minute_take_renders_remotely_with_audio_both_ways(studio: Studio) -> None:
    request = {"input": str(studio.take), "edit": {"type": "vad"}, "output_dir": str(studio.out)}
    seen: dict[str, list[float]] = {"upload": [], "download": []}

    def progress(fraction: float, stage: str) -> None:
        seen.setdefault(stage, []).append(fraction)

    with studio.connect() as client:
        outcome = run_with_upload(client, ADDRESS["edit"], request, on_progress=progress)
    path = Path(outcome.output_path)
    assert path.parent == studio.out and path.name.startswith("take.stepedit.vad.")
    assert outcome.result["input"] == str(studio.take)
    assert seen["upload"][-1] == seen["download"][-1] == 1.0
    assert seen["upload"] == sorted(seen["upload"]) and len(seen["upload"]) > 10
    # The local engine reads the same file itself: the same audio comes back.
    with StepEditClient("127.0.0.1", studio.local.port) as client:
        local = client.edit({**request, "output_dir": str(studio.client)})
    assert np.array_equal(_read(path), _read(Path(local.output_path)))
    assert studio.stored("results/*") == []  # the downloaded result was released
    assert not any(studio.remote_files.iterdir())


def test_wrong_or_missing_secret_is_refused(studio: Studio) -> None:
    data = studio.take.read_bytes()[:4096]
    for secret in (None, "0" * 64):
        with studio.connect(secret) as client, pytest.raises(ClientError) as refused:
            client.upload(data)
        assert refused.value.code == "unauthorized"
    with studio.connect("0" * 64, "udp") as client, pytest.raises(ClientError) as refused:
        client.ping()
    assert refused.value.code == "unauthorized"


def test_another_key_cannot_use_an_upload(studio: Studio) -> None:
    with studio.connect() as client:
        upload_id = client.upload(studio.take.read_bytes())
        client.run(ADDRESS["edit"], {"input_upload": upload_id, "edit": {"type": "vad"}})
    with (
        StepEditClient(
            "127.0.0.1",
            studio.remote.port,
            secret=studio.other_secret,
            key_id="other",
            transport="tcp",
        ) as other,
        pytest.raises(ClientError) as refused,
    ):
        other.run(ADDRESS["edit"], {"input_upload": upload_id, "edit": {"type": "vad"}})
    assert refused.value.code == "input_not_found"


_KILLED_CLIENT = """
import os, signal, sys
from bridge.client import StepEditClient
from bridge.remote import run_with_upload
port, secret, take, out, job, stage = sys.argv[1:]
def progress(fraction, at):
    if at == stage and fraction > 0.3:
        os.kill(os.getpid(), signal.SIGKILL)
with StepEditClient("127.0.0.1", int(port), secret=secret, transport="tcp") as client:
    run_with_upload(client, "/stepedit/edit", {"input": take, "edit": {"type": "speed",
        "option": "faster"}, "output_dir": out}, on_progress=progress, job_id=job)
"""


@pytest.mark.parametrize("stage", ["upload", "download"])
def test_a_client_killed_mid_transfer_leaves_no_partial_file(
    studio: Studio, tmp_path: Path, stage: str
) -> None:
    take = tmp_path / f"take-{stage}.wav"  # its own content: nothing uploaded before
    audio, rate = soundfile.read(studio.take, dtype="int16")
    soundfile.write(take, audio[: 240 * rate] // (2 if stage == "upload" else 3), rate)
    out = tmp_path / "out"
    out.mkdir()
    job = f"killed-{stage}"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_CLIENT,
            str(studio.remote.port),
            studio.remote.secret or "",
            str(take),
            str(out),
            job,
            stage,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
    )
    assert killed.returncode == -9, killed.stderr.decode()
    assert list(out.iterdir()) == []  # nothing on the client, not even a temporary file
    published = {p.name for p in studio.stored("uploads/*.wav")}
    if stage == "upload":  # the engine keeps a hidden partial, never a usable upload
        (partial,) = studio.stored("uploads/*.part")
        upload_id = partial.name.split(".")[0]
        assert f"{upload_id}.wav" not in published
        held = partial.stat().st_size
        assert 0 < held < int(partial.name.split(".")[1])
    request = {
        "input": str(take),
        "edit": {"type": "speed", "option": "faster"},
        "output_dir": str(out),
    }
    with studio.connect() as client:
        again = run_with_upload(client, ADDRESS["edit"], request, job_id=job)
    assert [p.name for p in out.iterdir()] == [Path(again.output_path).name]
    assert studio.stored("uploads/*.part") == []
    if stage == "upload":  # resumed: only the missing bytes went up the second time
        assert again.result["transfer"]["upload_id"] == upload_id
        log = studio.remote.log_text()
        assert log.count(f"upload {upload_id[:12]} complete") == 1


def test_path_mapping_renders_without_transfer(studio: Studio) -> None:
    shared = studio.shared
    mount = studio.remote_files / "mnt-shared"  # where the engine sees it
    mount.symlink_to(shared)
    clip = shared / "clip.wav"
    clip.write_bytes(CLIP.read_bytes())
    before = studio.stored("uploads/*")
    secret = studio.client / "secret"
    secret.write_text(studio.remote.secret or "")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "edit",
            str(clip),
            "--speed",
            "faster",
            "-q",
            "--engine",
            studio.remote.address,
            "--secret-file",
            str(secret),
            "--remote",
            "--map-path",
            f"{shared}={mount}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    output = Path(done.stdout.strip())
    assert output.resolve().parent == shared.resolve() and output.is_file()
    assert studio.stored("uploads/*") == before  # nothing was copied


def test_send_mirrors_a_remote_job_into_the_local_status_file(studio: Studio) -> None:
    status = studio.client / "job.status.json"
    request = studio.client / "job.request.json"
    request.write_text(
        json.dumps(
            {
                "input": str(CLIP),
                "start": 1.0,
                "length": 4.0,
                "edit": {"type": "speed", "option": "slower"},
                "output_dir": str(studio.out),
                "status_file": str(status),
            }
        )
    )
    secret = studio.client / "secret"
    secret.write_text(studio.remote.secret or "")
    sent = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "send",
            "--job-id",
            "mirror-1",
            "--request-file",
            str(request),
            "--engine",
            studio.remote.address,
            "--secret-file",
            str(secret),
            "--remote",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert sent.returncode == 0, sent.stderr
    document = json.loads(status.read_text())
    assert document["state"] == "done" and document["job_id"] == "mirror-1"
    output = Path(document["output_path"])
    assert output.parent == studio.out and output.is_file()
    assert document["result"]["start"] == 1.0
    assert soundfile.info(output).duration > 4.0  # slower


def _words(audio: np.ndarray, rate: int) -> list[str]:
    transcript, _ = transcribe(audio, rate, language="en")
    return [normalise(w.text) for w in transcript.words]


def test_sensitive_words_are_masked_before_upload_and_stay_masked(studio: Studio) -> None:
    request = {"input": str(CLIP), "language": "en", "output_dir": str(studio.out)}
    with studio.connect() as client:  # the transcript, itself made remotely
        heard = run_with_upload(client, ADDRESS["transcribe"], request)
        sidecar = json.loads(Path(heard.output_path).read_text())
        words = tuple((w["word"], w["source_start"], w["source_end"]) for w in sidecar["words"])
        assert "printing" in [normalise(w) for w, _, _ in words]
        sensitive = Sensitive(words=("printing",), transcript_words=words, sound="bleep")
        edit = {
            "input": str(CLIP),
            "edit": {"type": "speed", "option": "faster"},
            "output_dir": str(studio.out),
        }
        outcome = run_with_upload(client, ADDRESS["edit"], edit, sensitive=sensitive)
    assert outcome.result["transfer"]["masked"]
    upload_id = outcome.result["transfer"]["upload_id"]
    (uploaded,) = studio.stored(f"uploads/{upload_id}.wav")
    assert hashlib.sha256(uploaded.read_bytes()).hexdigest() == upload_id
    for path in (uploaded, Path(outcome.output_path)):
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        words_heard = _words(audio.T, rate)
        assert "printing" not in words_heard and "exhibition" in words_heard


def test_send_with_a_mapping_mirrors_a_local_status_file_without_upload(studio: Studio) -> None:
    """REAPER keeps its status files in its own (unshared) folder: the media still goes by
    path when a mapping covers it, and the statuses are mirrored here."""
    shared = studio.shared
    mount = studio.remote_files / "mnt-send"
    mount.symlink_to(shared)
    clip = shared / "take.wav"
    clip.write_bytes(CLIP.read_bytes())
    status = studio.client / "mapped.status.json"  # not under the mapping
    request = studio.client / "mapped.request.json"
    request.write_text(
        json.dumps(
            {
                "input": str(clip),
                "edit": {"type": "speed", "option": "faster"},
                "status_file": str(status),
            }
        )
    )
    secret = studio.client / "secret"
    secret.write_text(studio.remote.secret or "")
    before = studio.stored("uploads/*")
    sent = subprocess.run(
        [sys.executable, "-m", "bridge", "send", "--job-id", "mapped-1", "--request-file",
         str(request), "--engine", studio.remote.address, "--secret-file", str(secret),
         "--remote", "--map-path", f"{shared}={mount}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    document = json.loads(status.read_text())
    assert document["state"] == "done"
    output = Path(document["output_path"])
    assert output.resolve().parent == shared.resolve() and output.is_file()
    assert studio.stored("uploads/*") == before  # nothing was copied


@pytest.fixture()
def token_engine(tmp_path: Path) -> Iterator[str]:
    """An engine in this process on a token backend that decodes passes, serving UDP and
    TCP on loopback; its address."""
    from bridge.server import StepEditServer
    from engine.engine import Engine, EngineConfig
    from tests.engine.fake_backends import FakeTokenBackend

    engine = Engine(FakeTokenBackend(), EngineConfig(state_dir=tmp_path / "engine-state"))
    engine.start()
    server = StepEditServer(engine, "127.0.0.1", 0)
    tcp = server.serve_tcp()
    for serve in (server.serve_forever, tcp.serve_forever):
        threading.Thread(target=serve, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.port}"
    for running in (tcp, server):
        running.shutdown()
    server.server_close()
    engine.stop()


def _seconds(path: str) -> float:
    return float(soundfile.info(path).duration)


def test_edit_remote_downloads_the_pass_files_beside_the_result(
    token_engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["edit", str(CLIP), "--length", "2", "--emotion", "happy", "--iterations", "3"]
    remote = ["--decode-passes", "--remote", "--engine", token_engine, "--json", "-o", str(out)]
    assert main([*argv, *remote]) == 0
    result = json.loads(capsys.readouterr().out)
    stem = Path(result["output_path"]).stem
    assert result["passes"] == [str(out / f"{stem}.pass{k}.wav") for k in (1, 2)]
    # Each pass of the fake backend adds 10 ms: the files are the passes, in order.
    durations = [_seconds(p) for p in (*result["passes"], result["output_path"])]
    assert durations == pytest.approx([2.01, 2.02, 2.03], abs=1e-3)
    assert result["transfer"]["downloaded_bytes"] == sum(
        Path(p).stat().st_size for p in (*result["passes"], result["output_path"])
    )
    store = tmp_path / "engine-state" / "transfers"
    assert list(store.glob("*/results/*")) == []  # the passes were released with the result
    host, port = token_engine.split(":")
    upload_id = result["transfer"]["upload_id"]
    once = {"input_upload": upload_id, "edit": {"type": "emotion", "option": "happy"}}
    with StepEditClient(host, int(port), transport="tcp") as client:
        client.run(ADDRESS["edit"], once, job_id="one")  # no decode_passes: no passes
        with pytest.raises(ClientError) as no_pass:
            client.download("one", file=1)
    assert no_pass.value.code == "unknown_job" and "lists 0 passes" in str(no_pass.value)


def test_send_remote_takes_free_names_and_mirrors_the_local_passes(
    token_engine: str, tmp_path: Path
) -> None:
    status, request = tmp_path / "job.status.json", tmp_path / "job.request.json"
    edit = {"type": "emotion", "option": "happy", "iterations": 2, "decode_passes": True}
    request.write_text(
        json.dumps(
            {
                "input": str(CLIP),
                "length": 2.0,
                "edit": edit,
                "output_dir": str(tmp_path),
                "status_file": str(status),
            }
        )
    )
    taken = tmp_path / "en_ljspeech_LJ001-0001.stepedit.happyx2.passes.pass1.wav"
    taken.write_bytes(b"mine")
    argv = ["send", "--job-id", "passes", "--request-file", str(request), "--remote"]
    assert main([*argv, "--engine", token_engine]) == 0
    document = json.loads(status.read_text())
    assert document["state"] == "done"
    assert document["output_path"] == str(taken.with_name(taken.name.replace(".pass1", "")))
    assert document["result"]["passes"] == [str(taken.with_name(taken.stem + "-2.wav"))]
    assert _seconds(document["result"]["passes"][0]) == pytest.approx(2.01, abs=1e-3)
    assert taken.read_bytes() == b"mine"
