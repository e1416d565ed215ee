"""The client waits out a full queue: retried with backoff, one result per job, no double render."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.client import ClientError, StepEditClient
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
