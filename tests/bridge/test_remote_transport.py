"""The remote transport in-process: SLIP frames, transfer decoding, the transfer store."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pythonosc import slip as python_osc_slip

from bridge import protocol
from bridge.protocol import ProtocolError
from bridge.slip import FrameError, SlipDecoder, encode_frame
from bridge.tcp_server import MAX_CONNECTIONS, TcpPeer, TcpServer
from engine.errors import StepEditError
from engine.transfers import TransferLimits, TransferStore


@pytest.mark.parametrize(
    "payload", [b"plain", b"\xc0", b"\xdb", b"\xdb\xdc\xdb\xdd\xc0\xc0", bytes(range(256)) * 3]
)
def test_slip_frames_round_trip_and_match_python_osc(payload: bytes) -> None:
    frame = encode_frame(payload)
    assert frame == python_osc_slip.encode(payload)
    decoder = SlipDecoder(4096)
    assert list(decoder.feed(frame[:3])) == []
    assert list(decoder.feed(frame[3:] + frame)) == [payload, payload]
    assert decoder.pending == 0


def test_slip_decoder_bounds_frames_and_refuses_bad_escapes() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        list(SlipDecoder(16).feed(encode_frame(b"x" * 17)))
    with pytest.raises(FrameError, match="no frame end"):
        list(SlipDecoder(16).feed(b"\xc0" + b"x" * 40))
    with pytest.raises(FrameError, match="ESC"):
        list(SlipDecoder(16).feed(b"\xc0\xdbx\xc0"))


def test_transfer_messages_are_bounded() -> None:
    upload_id = "a" * 64
    assert protocol.decode_chunk((upload_id, 0, b"x")) == (upload_id, 0, b"x")
    with pytest.raises(ProtocolError) as big:
        protocol.decode_chunk((upload_id, 0, b"x" * (protocol.MAX_CHUNK_BYTES + 1)))
    assert big.value.code == "too_long"
    with pytest.raises(ProtocolError):
        protocol.decode_upload(("not-a-hash", 10))
    with pytest.raises(ProtocolError):
        protocol.decode_download(("job", -1, 10))
    # The file number is a later addition: without it, the result (file 0).
    assert protocol.decode_download(("job", 0, 10)) == ("job", 0, 10, 0)
    assert protocol.decode_download(("job", 0, 10, 2)) == ("job", 0, 10, 2)
    with pytest.raises(ProtocolError):
        protocol.decode_download(("job", 0, 10, -1))
    with pytest.raises(ProtocolError) as both:
        protocol.decode_edit(
            ("j", '{"input": "/a.wav", "input_upload": "' + upload_id + '", "edit": {}}')
        )
    assert both.value.code == "bad_request"
    _, request = protocol.decode_edit(("j", '{"input_upload": "' + upload_id + '", "edit": {}}'))
    assert request.input_upload == upload_id and request.input == ""


def _wav(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    tone = 0.1 * np.sin(np.arange(int(seconds * rate)) * 0.05).astype(np.float32)
    soundfile.write(buffer, tone, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _store(tmp_path: Path, in_use: set[Path] | None = None, **limits: float) -> TransferStore:
    return TransferStore(tmp_path / "t", TransferLimits(**limits), lambda: in_use or set())  # type: ignore[arg-type]


def _upload(store: TransferStore, owner: str, data: bytes, chunk: int = 1000) -> str:
    upload_id = hashlib.sha256(data).hexdigest()
    offset = store.begin(owner, upload_id, len(data))
    while offset < len(data):
        offset, _ = store.write(owner, upload_id, offset, data[offset : offset + chunk])
    return upload_id


def test_uploads_resume_publish_whole_and_belong_to_their_key(tmp_path: Path) -> None:
    store, data = _store(tmp_path), _wav(1.0)
    upload_id = hashlib.sha256(data).hexdigest()
    assert store.begin("a", upload_id, len(data)) == 0
    assert store.write("a", upload_id, 0, data[:5000]) == (5000, len(data))
    assert store.write("a", upload_id, 9000, data[9000:9100]) == (5000, len(data))  # a gap
    with pytest.raises(StepEditError) as partial:
        store.upload_path("a", upload_id)  # nothing usable before the last byte
    assert partial.value.code == "input_not_found"
    restarted = _store(tmp_path)  # an engine restart resumes at the bytes held
    assert restarted.begin("a", upload_id, len(data)) == 5000
    assert _upload(restarted, "a", data) == upload_id
    assert restarted.upload_path("a", upload_id).read_bytes() == data
    with pytest.raises(StepEditError):
        restarted.upload_path("b", upload_id)


def test_bytes_that_do_not_match_their_hash_are_dropped(tmp_path: Path) -> None:
    store, data = _store(tmp_path), _wav(0.5)
    wrong = hashlib.sha256(b"other").hexdigest()
    store.begin("a", wrong, len(data))
    with pytest.raises(StepEditError) as corrupt:
        store.write("a", wrong, 0, data)
    assert corrupt.value.code == "input_corrupt"
    assert list((tmp_path / "t").rglob("*.part")) == []


def test_uploads_are_bounded_by_size_seconds_and_count(tmp_path: Path) -> None:
    store = _store(tmp_path, max_upload_bytes=10_000, max_seconds=0.2, max_partial=1)
    with pytest.raises(StepEditError) as big:
        store.begin("a", "0" * 64, 10_001)
    assert big.value.code == "too_long"
    with pytest.raises(StepEditError) as long:
        _upload(store, "a", _wav(0.25))
    assert long.value.code == "too_long"
    store.begin("a", "1" * 64, 100)
    with pytest.raises(StepEditError) as busy:
        store.begin("a", "2" * 64, 100)
    assert busy.value.code == "queue_full"


def test_the_budget_evicts_least_recently_used_files_never_one_in_use(tmp_path: Path) -> None:
    in_use: set[Path] = set()
    first_data, second_data = _wav(1.0), _wav(1.1)
    store = _store(tmp_path, in_use, max_bytes=len(first_data) + len(second_data) + 100)
    first = store.upload_path("a", _upload(store, "a", first_data))
    os.utime(first, (time.time() - 10, time.time() - 10))
    second = store.upload_path("a", _upload(store, "a", second_data))
    in_use.add(first)
    with pytest.raises(StepEditError) as full:  # the job's input stays; no room
        store.begin("a", "3" * 64, len(second_data) + 200)
    assert full.value.code == "queue_full" and first.exists() and not second.exists()
    in_use.clear()
    _upload(store, "a", _wav(1.2))
    assert not first.exists()


def test_expired_partials_are_removed(tmp_path: Path) -> None:
    store = _store(tmp_path, partial_ttl_s=1.0)
    store.begin("a", "4" * 64, 100)
    (partial,) = (tmp_path / "t").rglob("*.part")
    os.utime(partial, (time.time() - 5, time.time() - 5))
    store.begin("a", "5" * 64, 100)
    assert not partial.exists()


def test_connections_beyond_the_bound_are_closed_at_once(caplog: pytest.LogCaptureFixture) -> None:
    def echo(packet: bytes, peer: TcpPeer) -> bool:
        peer.send(packet)
        return True

    server = TcpServer(echo, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        for _ in range(MAX_CONNECTIONS):  # as if every slot served a connection
            assert server._thread_slots.acquire(blocking=False)
        with (
            caplog.at_level(logging.WARNING, logger="bridge.tcp_server"),
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as late,
        ):
            assert late.recv(16) == b""  # closed by the engine
        assert any("closed" in r.getMessage() for r in caplog.records)
        for _ in range(MAX_CONNECTIONS):
            server._thread_slots.release()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(encode_frame(b"hello"))
            assert client.recv(64) == encode_frame(b"hello")
    finally:
        server.shutdown()
        server.server_close()
