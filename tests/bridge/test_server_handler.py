"""The server in-process: raw datagrams into the handler, replies captured, a fake backend."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from bridge import protocol
from bridge.protocol import ADDRESS, Message
from bridge.server import Address, StepEditServer
from engine.engine import Engine
from tests.engine.fake_backends import FakeRenderBackend

SOURCE: Address = ("127.0.0.1", 50000)


class CapturingServer(StepEditServer):
    """Keeps replies instead of sending them."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, "127.0.0.1", 0)
        self.sent: list[tuple[Message, Address]] = []

    def send(self, data: bytes, address: Address) -> None:
        self.sent.extend((m, address) for m in protocol.decode_datagram(data))


@pytest.fixture()
def server() -> Iterator[CapturingServer]:
    engine = Engine(FakeRenderBackend())
    engine.start()
    running = CapturingServer(engine)
    yield running
    running.server_close()
    engine.stop()


def replies(server: CapturingServer, address: str) -> list[tuple[Any, ...]]:
    return [m.args for m, _ in server.sent if m.address == address]


def test_ping_answers_with_the_engines_facts(server: CapturingServer) -> None:
    server.handle_datagram(protocol.encode(ADDRESS["ping"]), SOURCE)
    assert server.sent == [
        (Message(ADDRESS["pong"], (1, server.engine.version, "cpu", "cpu")), SOURCE)
    ]


def test_capabilities_come_from_the_engine(server: CapturingServer) -> None:
    server.handle_datagram(protocol.encode(ADDRESS["capabilities"], 50001), SOURCE)
    ((message, target),) = server.sent
    listing = json.loads(message.args[0])
    assert target == ("127.0.0.1", 50001)
    assert listing["protocol_version"] == 1 and listing["backend"] == "cpu"
    assert set(listing["backends"]) == {"cpu", "stepaudio"}


def test_an_edit_is_answered_at_its_reply_port_until_done(
    server: CapturingServer, tmp_path: Path
) -> None:
    source = tmp_path / "take.wav"
    soundfile.write(source, 0.2 * np.sin(np.arange(16000) / 5), 16000)
    request = json.dumps({"input": str(source), "edit": {"type": "denoise"}, "reply_port": 50002})
    server.handle_datagram(protocol.encode(ADDRESS["edit"], "j1", request), SOURCE)
    deadline = time.monotonic() + 10
    while not server.engine.status("j1").finished and time.monotonic() < deadline:
        time.sleep(0.01)
    server.engine.stop()  # delivers every event
    addresses = [m.address for m, _ in server.sent]
    assert addresses[0] == ADDRESS["accepted"] and addresses[-1] == ADDRESS["done"]
    assert {target for _, target in server.sent} == {("127.0.0.1", 50002)}
    ((job_id, output, result),) = replies(server, ADDRESS["done"])
    assert job_id == "j1" and Path(output).is_file()
    assert json.loads(result)["duration"] == pytest.approx(1.0)


def test_a_rejected_edit_reaches_the_reply_port(server: CapturingServer) -> None:
    request = json.dumps(
        {"input": "/missing.wav", "edit": {"type": "denoise"}, "reply_port": 50003}
    )
    server.handle_datagram(protocol.encode(ADDRESS["edit"], "j2", request), SOURCE)
    server.engine.stop()
    assert server.sent[0][1] == ("127.0.0.1", 50003)
    assert replies(server, ADDRESS["error"])[0][:2] == ("j2", "input_not_found")


@pytest.mark.parametrize(
    ("datagram", "code"),
    [
        (b"\x00garbage", "malformed"),
        (protocol.encode("/stepedit/nope"), "unknown_address"),
        (protocol.encode(ADDRESS["edit"], "j3"), "bad_arguments"),
        (protocol.encode(ADDRESS["edit"], "j3", "{"), "invalid_json"),
        (protocol.encode(ADDRESS["status"], "never-seen"), "unknown_job"),
        (protocol.encode(ADDRESS["cancel"], "never-seen"), "unknown_job"),
    ],
)
def test_every_bad_datagram_gets_its_code(
    server: CapturingServer, datagram: bytes, code: str
) -> None:
    server.handle_datagram(datagram, SOURCE)
    ((message, target),) = server.sent
    assert message.address == ADDRESS["error"] and message.args[1] == code
    assert target == SOURCE
