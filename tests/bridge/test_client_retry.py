"""The client waits out a full queue: retried after the engine's hint, doubled, one result
per job, no double render."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from bridge import protocol
from bridge.auth import Keyring, Verifier
from bridge.client import ClientError, StepEditClient
from bridge.protocol import JobStatus
from bridge.server import StepEditServer
from engine.engine import Engine, EngineConfig
from tests.engine.fake_backends import FakeRenderBackend


@pytest.fixture()
def served() -> Iterator[tuple[StepEditServer, FakeRenderBackend]]:
    backend = FakeRenderBackend()
    engine = Engine(backend, EngineConfig(max_queue=1))
    engine.start()
    server = StepEditServer(engine, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, backend
    if backend.gate is not None:
        backend.gate.set()
    engine.stop()
    server.shutdown()
    server.server_close()


def _take(tmp_path: Path) -> str:
    path = tmp_path / "take.wav"
    soundfile.write(path, 0.2 * np.sin(np.arange(16000) / 5), 16000)
    return str(path)


def test_a_full_queue_is_waited_out(
    served: tuple[StepEditServer, FakeRenderBackend], tmp_path: Path
) -> None:
    server, backend = served
    request = {"input": _take(tmp_path), "edit": {"type": "denoise"}}
    backend.gate = threading.Event()
    results: dict[str, object] = {}

    def edit(name: str, retries: int) -> None:
        with StepEditClient("127.0.0.1", server.port, timeout=5, queue_retries=retries) as c:
            try:
                results[name] = c.edit(request, job_id=name).output_path
            except ClientError as e:
                results[name] = e.code

    clients = [threading.Thread(target=edit, args=(n, 8)) for n in ("a", "b", "c")]
    for client in clients:
        client.start()
    refused = threading.Thread(target=edit, args=("d", 0))
    assert backend.started.wait(5)
    # One job renders and one waits: the queue (one place) is full.
    deadline = time.monotonic() + 10
    while not any(server.engine.status(n).state == "queued" for n in ("a", "b", "c")):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    refused.start()
    refused.join(10)
    threading.Timer(0.5, backend.gate.set).start()  # the queue drains after a while
    for client in clients:
        client.join(30)
    assert results["d"] == "queue_full"  # no retries asked for: the refusal is reported
    assert all(Path(str(results[n])).is_file() for n in ("a", "b", "c"))
    assert len(backend.calls) == 3  # every job rendered once


def test_the_retry_waits_for_the_engines_hint(
    served: tuple[StepEditServer, FakeRenderBackend],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, backend = served
    engine = server.engine
    request = {"input": _take(tmp_path), "edit": {"type": "denoise"}}
    backend.gate = threading.Event()
    with StepEditClient("127.0.0.1", server.port) as filler:
        filler.submit("running", request)
        assert backend.started.wait(5)
        filler.submit("waiting", request)
    sent: list[float] = []
    submit = engine.submit

    def spy(job_id: str, *args: Any) -> JobStatus:
        if job_id == "late":
            sent.append(time.monotonic())
        return submit(job_id, *args)

    monkeypatch.setattr(engine, "submit", spy)
    with (
        StepEditClient("127.0.0.1", server.port, queue_retries=1) as client,
        pytest.raises(ClientError) as refused,
    ):
        client.edit(request, job_id="late")
    hint = refused.value.retry_after
    assert refused.value.code == "queue_full" and hint is not None and 0.25 <= hint <= 60
    assert len(sent) == 2
    assert hint <= sent[1] - sent[0] <= 1.5 * hint + 0.2  # the hint plus up to half in jitter


def test_each_further_refusal_doubles_the_wait_and_every_send_is_signed_anew(
    tmp_path: Path,
) -> None:
    """A stand-in engine on a real socket refuses every send with a 0.1 s hint."""
    keyring = Keyring.in_state_dir(tmp_path)
    secret, _ = keyring.ensure()
    verifier = Verifier(keyring)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as engine:
        engine.bind(("127.0.0.1", 0))
        engine.settimeout(5)
        received: list[float] = []

        def refuse(times: int) -> None:
            for _ in range(times):
                data, source = engine.recvfrom(65536)
                received.append(time.monotonic())
                (envelope,) = protocol.decode_datagram(data)
                key, packet = verifier.verify(envelope.args)  # a replayed nonce would raise
                (request,) = protocol.decode_datagram(packet)
                assert key == "default" and request.args[0] == "job-1"
                error = JobStatus("job-1", "error", error=("queue_full", "full"), retry_after=0.1)
                engine.sendto(protocol.encode_status_message(error), source)

        thread = threading.Thread(target=refuse, args=(4,))
        thread.start()
        client = StepEditClient(
            "127.0.0.1", engine.getsockname()[1], queue_retries=3, secret=secret
        )
        with client, pytest.raises(ClientError) as refused:
            client.edit({"input": "/x.wav", "edit": {"type": "denoise"}}, job_id="job-1")
        thread.join(5)
    assert refused.value.code == "queue_full" and refused.value.retry_after == pytest.approx(0.1)
    gaps = [b - a for a, b in itertools.pairwise(received)]
    for gap, wait in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert wait <= gap <= 1.5 * wait + 0.1
