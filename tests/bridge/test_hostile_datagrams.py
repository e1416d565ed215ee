"""Hostile datagrams (issue 9): bounded decoding, right error codes, safe logs, capped threads."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import protocol
from bridge.protocol import ADDRESS, MAX_MESSAGES, ProtocolError
from bridge.server import MAX_HANDLERS, Address
from engine.engine import Engine
from tests.bridge.test_server_handler import CapturingServer, replies
from tests.engine.fake_backends import FakeRenderBackend

SOURCE: Address = ("127.0.0.1", 50000)
BUNDLE = b"#bundle\0" + bytes(8)


def bundle(*elements: bytes) -> bytes:
    return BUNDLE + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def osc_string(text: bytes) -> bytes:
    return text + b"\0" * (4 - len(text) % 4)


def edit_args(request: dict[str, Any], job_id: str = "j1") -> tuple[str, str]:
    return job_id, json.dumps(request)


@pytest.fixture()
def server() -> Iterator[CapturingServer]:
    engine = Engine(FakeRenderBackend())
    engine.start()
    running = CapturingServer(engine)
    yield running
    running.server_close()
    engine.stop()


def code_of(error: pytest.ExceptionInfo[ProtocolError]) -> str:
    return error.value.code


# -- defect 2: the spinning bundle, nesting, element counts -------------------------------


@pytest.mark.parametrize("size", [-8, -1, 0, 3, 1 << 30])
def test_bundle_element_sizes_must_fit(size: int) -> None:
    datagram = BUNDLE + struct.pack(">i", size)  # the 20-byte datagram of the issue when < 0
    started = time.monotonic()
    with pytest.raises(ProtocolError) as error:
        protocol.decode_datagram(datagram)
    assert code_of(error) == "malformed"
    assert time.monotonic() - started < 1


def test_bundles_nest_at_most_eight_deep() -> None:
    packet = protocol.encode(ADDRESS["ping"])
    for _ in range(protocol.MAX_BUNDLE_DEPTH):
        packet = bundle(packet)
    assert len(protocol.decode_datagram(packet)) == 1
    with pytest.raises(ProtocolError) as error:
        protocol.decode_datagram(bundle(packet))
    assert code_of(error) == "malformed"


def test_a_datagram_holds_at_most_sixteen_messages() -> None:
    ping = protocol.encode(ADDRESS["ping"])
    assert len(protocol.decode_datagram(bundle(*[ping] * MAX_MESSAGES))) == MAX_MESSAGES
    with pytest.raises(ProtocolError) as error:
        protocol.decode_datagram(bundle(*[ping] * (MAX_MESSAGES + 1)))
    assert code_of(error) == "malformed"


def test_the_spinning_datagram_is_answered_malformed(server: CapturingServer) -> None:
    server.handle_datagram(BUNDLE + struct.pack(">i", -8), SOURCE)
    assert [args[1] for args in replies(server, ADDRESS["error"])] == ["malformed"]


def test_bundles_nested_400_deep_get_a_reply(server: CapturingServer) -> None:
    packet = protocol.encode(ADDRESS["ping"])
    for _ in range(400):
        packet = bundle(packet)
    server.handle_datagram(packet, SOURCE)
    assert [args[1] for args in replies(server, ADDRESS["error"])] == ["malformed"]


def test_handler_threads_are_capped(server: CapturingServer, caplog: Any) -> None:
    for _ in range(MAX_HANDLERS):
        assert server._thread_slots.acquire(blocking=False)
    before = threading.active_count()
    with caplog.at_level(logging.WARNING, logger="bridge.server"):
        for _ in range(100):
            server.process_request((protocol.encode(ADDRESS["ping"]), None), SOURCE)
    assert threading.active_count() == before
    assert server.sent == []
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    for _ in range(MAX_HANDLERS):
        server._thread_slots.release()


# -- defect 9: datagrams up to 65,507 bytes -----------------------------------------------


def test_datagrams_over_8192_bytes_are_read_whole(server: CapturingServer) -> None:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
            request = {"input": "relative.wav", "language": "en", "text": "word " * 10_000}
            datagram = protocol.encode(ADDRESS["transcribe"], "big", json.dumps(request))
            assert 50_000 < len(datagram) <= protocol.MAX_DATAGRAM_BYTES
            client.sendto(datagram, ("127.0.0.1", server.port))
            deadline = time.monotonic() + 5
            while not server.sent and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        server.shutdown()
        thread.join()
    ((message, _),) = server.sent
    assert message.args[:2] == ("big", "bad_request")  # read whole: the path is the fault


def test_the_server_reads_65507_bytes() -> None:
    from bridge.server import StepEditServer

    assert StepEditServer.max_packet_size == protocol.MAX_DATAGRAM_BYTES == 65_507


# -- defect 10: every error has its own code and goes where replies go ---------------------


@pytest.mark.parametrize("length", ["1e308", "1" + "0" * 400, "-1e308", "1e400"])
def test_absurd_numbers_are_bad_requests(length: str) -> None:
    text = '{"input": "/a.wav", "edit": {"type": "denoise"}, "length": ' + length + "}"
    with pytest.raises(ProtocolError) as error:
        protocol.decode_edit(("j1", text))
    assert code_of(error) == "bad_request"


def test_integers_too_long_to_read_are_invalid_json() -> None:
    text = '{"input": "/a.wav", "edit": {"type": "denoise"}, "length": ' + "9" * 5000 + "}"
    with pytest.raises(ProtocolError) as error:
        protocol.decode_edit(("j1", text))
    assert code_of(error) == "invalid_json"


@pytest.mark.parametrize("depth", [protocol.MAX_JSON_DEPTH, 1_000, 30_000])
def test_deeply_nested_json_is_invalid_json(depth: int) -> None:
    text = '{"input": "/a.wav", "edit": {"type": "denoise", "x": %s}}' % ("[" * depth + "]" * depth)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_edit(("j1", text))
    assert code_of(error) == "invalid_json"


def test_nesting_inside_strings_does_not_count() -> None:
    text = json.dumps({"input": "/a.wav", "edit": {"type": "text", "text": "[{" * 1000}})
    _, request = protocol.decode_edit(("j1", text))
    assert request.edit["text"] == "[{" * 1000


def test_surrogate_escaped_paths_are_bad_requests() -> None:
    text = '{"input": "/take\\udcff.wav", "edit": {"type": "denoise"}}'
    with pytest.raises(ProtocolError) as error:
        protocol.decode_edit(("j1", text))
    assert code_of(error) == "bad_request"


def test_request_strings_that_are_not_utf8_are_bad_requests(server: CapturingServer) -> None:
    request = b'{"input": "/take\xff.wav", "edit": {"type": "denoise"}}'
    datagram = (
        osc_string(ADDRESS["edit"].encode()) + osc_string(b",ss") + osc_string(b"j1")
    ) + osc_string(request)
    [message] = protocol.decode_datagram(datagram)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_edit(message.args)
    assert code_of(error) == "bad_request"
    server.handle_datagram(datagram, SOURCE)
    assert [args[:2] for args in replies(server, ADDRESS["error"])] == [("j1", "bad_request")]


def test_bad_requests_are_answered_to_the_reply_port(server: CapturingServer) -> None:
    request = {"input": "/a.wav", "edit": {"type": "denoise"}, "start": -1, "reply_port": 50002}
    server.handle_datagram(protocol.encode(ADDRESS["edit"], *edit_args(request)), SOURCE)
    ((message, target),) = server.sent
    assert message.args[:2] == ("j1", "bad_request")
    assert target == ("127.0.0.1", 50002)


def test_a_missing_edit_is_answered_to_the_reply_port(server: CapturingServer) -> None:
    request = {"input": "/a.wav", "reply_port": 50003}
    server.handle_datagram(protocol.encode(ADDRESS["edit"], *edit_args(request)), SOURCE)
    ((message, target),) = server.sent
    assert message.args[1] == "bad_request"
    assert target == ("127.0.0.1", 50003)


# -- defect 11: job ids and logs ----------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a\nINFO forged", "a\rb", "tab\there", "nul\x00", "\x1b[31m"])
def test_job_ids_must_be_printable(job_id: str) -> None:
    request = json.dumps({"input": "/a.wav", "edit": {"type": "denoise"}})
    for decode in (protocol.decode_edit, protocol.decode_transcribe):
        with pytest.raises(ProtocolError) as error:
            decode((job_id, request))
        assert code_of(error) == "bad_arguments"
    with pytest.raises(ProtocolError) as error:
        protocol.decode_job_query((job_id,))
    assert code_of(error) == "bad_arguments"


def test_client_strings_cannot_forge_log_lines(server: CapturingServer, caplog: Any) -> None:
    request = json.dumps({"input": "/a.wav", "edit": {"type": "denoise"}, "x\nERROR y": 1})
    with caplog.at_level(logging.DEBUG):
        server.handle_datagram(protocol.encode("/nope\nERROR forged", 1), SOURCE)
        server.handle_datagram(protocol.encode(ADDRESS["edit"], "a\nERROR forged", request), SOURCE)
        server.handle_datagram(protocol.encode(ADDRESS["edit"], "ok", request), SOURCE)
        server.handle_datagram(protocol.encode(ADDRESS["status"], "a\nERROR forged"), SOURCE)
    assert len(caplog.records) >= 4
    assert all("\n" not in r.getMessage() for r in caplog.records)


# -- defect 12: no reply amplification ----------------------------------------------------


@pytest.mark.parametrize("address", [ADDRESS["ping"], ADDRESS["capabilities"]])
def test_one_reply_per_datagram_for_ping_and_capabilities(
    server: CapturingServer, address: str
) -> None:
    server.handle_datagram(bundle(*[protocol.encode(address)] * MAX_MESSAGES), SOURCE)
    assert len(server.sent) == 1


def test_a_bundle_of_255_capabilities_gets_one_error(server: CapturingServer) -> None:
    datagram = bundle(*[protocol.encode(ADDRESS["capabilities"])] * 255)
    server.handle_datagram(datagram, SOURCE)
    assert [args[1] for args in replies(server, ADDRESS["error"])] == ["malformed"]
    assert len(server.sent) == 1
