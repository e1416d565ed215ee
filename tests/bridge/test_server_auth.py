"""A real server over real UDP: signed messages, job owners, input and output roots."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge import auth, protocol
from bridge.auth import Keyring
from bridge.client import ClientError, StepEditClient
from bridge.protocol import ADDRESS, Message
from bridge.server import UNAUTHORIZED_BURST, UNAUTHORIZED_PER_S, StepEditServer
from engine.engine import Engine, EngineConfig
from tests.engine.fake_backends import FakeRenderBackend


@dataclass
class Served:
    server: StepEditServer
    backend: FakeRenderBackend
    keyring: Keyring
    inputs: Path
    outputs: Path
    outside: Path

    @property
    def port(self) -> int:
        return self.server.port

    def secret(self, key: str) -> str:
        secret = self.keyring.get(key)
        assert secret is not None
        return secret

    def client(self, key: str | None = "alice", timeout: float = 3.0) -> StepEditClient:
        secret = None if key is None else self.secret(key)
        return StepEditClient("127.0.0.1", self.port, timeout, secret=secret, key_id=key or "")


def _take(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "take.wav"
    soundfile.write(path, 0.2 * np.sin(np.arange(8000) / 5), 16000)
    return path


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Starts a server on a free port: ``serve(host, require_auth)``; keys alice and bob."""
    started: list[tuple[StepEditServer, Engine, FakeRenderBackend]] = []

    def start(host: str = "0.0.0.0", require_auth: bool = False) -> Served:
        inputs, outputs, outside = (tmp_path / n for n in ("inputs", "outputs", "outside"))
        for folder in (inputs, outputs, outside):
            _take(folder)
        keyring = Keyring.in_state_dir(tmp_path / "state")
        keyring.ensure("alice")
        keyring.ensure("bob")
        backend = FakeRenderBackend()
        config = EngineConfig(input_roots=(inputs,), output_roots=(outputs,))
        engine = Engine(backend, config)
        engine.start()
        server = StepEditServer(engine, host, 0, keyring, require_auth)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append((server, engine, backend))
        return Served(server, backend, keyring, inputs, outputs, outside)

    yield start
    for server, engine, backend in started:
        if backend.gate is not None:
            backend.gate.set()
        engine.stop()
        server.shutdown()
        server.server_close()


class Peer:
    """A raw UDP socket on loopback: sends any bytes, collects the replies."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def replies(self, quiet: float = 0.3) -> list[Message]:
        """What arrives until ``quiet`` seconds pass without a datagram."""
        got: list[Message] = []
        self.sock.settimeout(quiet)
        while True:
            try:
                got.extend(protocol.decode_datagram(self.sock.recv(65536)))
            except TimeoutError:
                return got

    def until_finished(self, timeout: float = 10.0) -> list[Message]:
        """What arrives until a job's ``done`` or ``error``."""
        got: list[Message] = []
        self.sock.settimeout(timeout)
        while not got or got[-1].address not in {ADDRESS["done"], ADDRESS["error"]}:
            got.extend(protocol.decode_datagram(self.sock.recv(65536)))
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


def edit(job_id: str, request: dict[str, object]) -> bytes:
    return protocol.encode(ADDRESS["edit"], job_id, json.dumps(request))


def job_request(served: Served, **fields: object) -> dict[str, object]:
    """A denoise of the take in the input root, written to the output root."""
    return {
        "input": str(served.inputs / "take.wav"),
        "output_dir": str(served.outputs),
        "edit": {"type": "denoise"},
        **fields,
    }


# -- refusing to start ----------------------------------------------------------------------


def test_a_non_loopback_engine_needs_a_secret_and_roots(tmp_path: Path) -> None:
    engine = Engine(
        FakeRenderBackend(), EngineConfig(input_roots=(tmp_path,), output_roots=(tmp_path,))
    )
    empty = Keyring.in_state_dir(tmp_path / "state")
    for keyring in (None, empty):
        with pytest.raises(ValueError, match=r"refusing to serve '0\.0\.0\.0' without a secret"):
            StepEditServer(engine, "0.0.0.0", 0, keyring)
    with pytest.raises(ValueError, match="without a secret"):
        StepEditServer(engine, "127.0.0.1", 0, None, require_auth=True)
    empty.ensure()
    unrooted = Engine(FakeRenderBackend())
    with pytest.raises(ValueError, match="--input-root DIR and --output-root DIR"):
        StepEditServer(unrooted, "0.0.0.0", 0, empty)
    served = StepEditServer(engine, "0.0.0.0", 0, empty)
    try:
        assert served.require_auth  # forced on another address, though not asked for
    finally:
        served.server_close()
    loopback = StepEditServer(unrooted, "127.0.0.1", 0)
    try:
        assert not loopback.require_auth
    finally:
        loopback.server_close()


# -- refused signatures ---------------------------------------------------------------------


def _signed(served: Served, packet: bytes, now: float | None = None) -> bytes:
    return auth.sign(packet, "alice", served.secret("alice"), now=now)


BAD_SIGNATURES: dict[str, Callable[[Served, bytes], bytes]] = {
    "missing": lambda s, p: p,
    "wrong_tag": lambda s, p: auth.sign(p, "alice", s.secret("bob")),
    "stale": lambda s, p: _signed(s, p, now=time.time() - 90),
    "unknown_key": lambda s, p: auth.sign(p, "carol", s.secret("alice")),
    "malformed": lambda s, p: protocol.encode(ADDRESS["auth"], "alice", "1", "nonce-123", "x"),
}


@pytest.mark.parametrize("reason", BAD_SIGNATURES)
def test_bad_signatures_are_refused_and_do_nothing(
    serve: Callable[..., Served], peer: Peer, reason: str
) -> None:
    served = serve()
    listener = Peer()  # the request names a reply port: refusals never go there
    try:
        request = job_request(
            served,
            reply_port=listener.port,
            status_file=str(served.outputs / "job.json"),
        )
        peer.send(BAD_SIGNATURES[reason](served, edit("job-1", request)), served.port)
        peer.send(BAD_SIGNATURES[reason](served, protocol.encode(ADDRESS["ping"])), served.port)
        replies = peer.replies()
        assert listener.replies(0.05) == []
    finally:
        listener.close()
    assert [m.address for m in replies] == [ADDRESS["error"]] * 2
    for message in replies:
        job_id, code, text = message.args
        assert (job_id, code) == ("", "unauthorized")
        assert text.startswith(f"{reason}: ")
    assert served.backend.calls == []
    for owner in ("", "alice", "bob"):
        assert served.server.engine.status("job-1", owner).error == (
            "unknown_job",
            "no job with id 'job-1'",
        )
    assert not (served.outputs / "job.json").exists()


def test_a_replayed_datagram_is_refused(serve: Callable[..., Served], peer: Peer) -> None:
    served = serve()
    datagram = _signed(served, edit("job-1", job_request(served)))
    peer.send(datagram, served.port)
    first = peer.until_finished()
    assert first[0].address == ADDRESS["accepted"] and first[-1].address == ADDRESS["done"]
    peer.send(datagram, served.port)
    (refusal,) = peer.replies()
    assert refusal.args[1] == "unauthorized" and refusal.args[2].startswith("replayed: ")
    assert len(served.backend.calls) == 1


def test_garbage_gets_the_same_answer_as_an_unsigned_request(
    serve: Callable[..., Served], peer: Peer
) -> None:
    served = serve()
    peer.send(b"\xff garbage", served.port)
    (refusal,) = peer.replies()
    assert refusal.args == ("", "unauthorized", "missing: this engine takes only signed messages")


def test_unauthorized_replies_are_rate_limited(serve: Callable[..., Served], peer: Peer) -> None:
    served = serve()
    started = time.monotonic()
    for i in range(200):
        peer.send(protocol.encode(ADDRESS["status"], f"job-{i}"), served.port)
    replies = peer.replies(quiet=0.5)
    elapsed = time.monotonic() - started
    assert all(m.args[1] == "unauthorized" for m in replies)
    assert (
        UNAUTHORIZED_BURST <= len(replies) <= UNAUTHORIZED_BURST + UNAUTHORIZED_PER_S * elapsed + 1
    )


def test_a_bad_signature_is_refused_where_signing_is_optional(
    serve: Callable[..., Served], peer: Peer
) -> None:
    served = serve(host="127.0.0.1")
    assert not served.server.require_auth
    peer.send(
        auth.sign(protocol.encode(ADDRESS["ping"]), "alice", served.secret("bob")), served.port
    )
    (refusal,) = peer.replies()
    assert refusal.args[1] == "unauthorized" and refusal.args[2].startswith("wrong_tag: ")
    with served.client(None) as plain, served.client("alice") as alice:
        assert plain.ping().backend == alice.ping().backend == "cpu"
        plain.edit(job_request(served), job_id="plain-1")
        # An unsigned job belongs to no key: a signed client cannot see it, nor resend it.
        assert alice.query(ADDRESS["status"], "plain-1").args[1] == "unknown_job"
        assert plain.query(ADDRESS["status"], "plain-1").address == ADDRESS["done"]


def test_a_signed_envelope_must_be_alone_in_its_datagram(
    serve: Callable[..., Served], peer: Peer
) -> None:
    served = serve()
    ping = protocol.encode(ADDRESS["ping"])
    signed = _signed(served, ping)
    bundle = b"#bundle\0" + bytes(8)
    for element in (signed, ping):
        bundle += len(element).to_bytes(4, "big") + element
    peer.send(bundle, served.port)
    (refusal,) = peer.replies()
    assert refusal.args[1] == "unauthorized" and refusal.args[2].startswith("malformed: ")


# -- signed clients ---------------------------------------------------------------------------


def test_a_signed_client_edits_end_to_end(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.client("alice") as alice:
        assert alice.ping().backend == "cpu"
        assert alice.capabilities()["protocol_version"] == 1
        outcome = alice.edit(job_request(served), job_id="e2e-1")
    out = Path(outcome.output_path)
    assert out.parent == served.outputs.resolve() and out.is_file()
    assert soundfile.info(out).frames == 8000
    with served.client(None) as plain, pytest.raises(ClientError) as refused:
        plain.ping()
    assert refused.value.code == "unauthorized"


def test_one_key_cannot_see_or_cancel_anothers_job(serve: Callable[..., Served]) -> None:
    served = serve()
    served.backend.gate = threading.Event()
    request = job_request(served)
    with served.client("alice") as alice, served.client("bob") as bob:
        assert alice.submit("shared-1", request).address == ADDRESS["accepted"]
        assert served.backend.started.wait(5)
        for address in (ADDRESS["status"], ADDRESS["cancel"]):
            reply = bob.query(address, "shared-1")
            assert reply.args[:2] == ("shared-1", "unknown_job")
        taken = bob.submit("shared-1", request)  # nor take the job over by resending it
        assert taken.args[:2] == ("shared-1", "bad_request") and "taken" in taken.args[2]
        assert served.server.engine.status("shared-1", "alice").state == "running"
        reply = alice.query(ADDRESS["cancel"], "shared-1")
        final = [m for m in alice.events("shared-1", reply) if m.address == ADDRESS["error"]]
        assert final[0].args[:2] == ("shared-1", "cancelled")


# -- input and output roots -------------------------------------------------------------------


def _escapes(served: Served) -> dict[str, dict[str, object]]:
    (served.inputs / "link.wav").symlink_to(served.outside / "take.wav")
    (served.outputs / "linked").symlink_to(served.outside, target_is_directory=True)
    inside = str(served.inputs / "take.wav")
    return {
        "input outside": {"input": str(served.outside / "take.wav")},
        "input missing outside": {"input": str(served.outside / "gone.wav")},
        "input ..": {"input": f"{served.inputs}/../outside/take.wav"},
        "input symlink": {"input": str(served.inputs / "link.wav")},
        "output_dir outside": {"input": inside, "output_dir": str(served.outside)},
        "output_dir ..": {"input": inside, "output_dir": f"{served.outputs}/.."},
        "output_dir symlink": {"input": inside, "output_dir": str(served.outputs / "linked")},
        "default output folder": {"input": inside},  # the input's folder is no output root
        "status_file outside": {
            "input": inside,
            "output_dir": str(served.outputs),
            "status_file": str(served.outside / "job.json"),
        },
        "status_file symlink": {
            "input": inside,
            "output_dir": str(served.outputs),
            "status_file": str(served.outputs / "linked" / "job.json"),
        },
    }


def test_paths_outside_the_roots_are_forbidden(serve: Callable[..., Served]) -> None:
    served = serve()
    before = {p.name for p in served.outside.iterdir()}
    with served.client("alice") as alice:
        for index, (name, request) in enumerate(_escapes(served).items()):
            with pytest.raises(ClientError) as refused:
                alice.edit({**request, "edit": {"type": "denoise"}}, job_id=f"escape-{index}")
            assert refused.value.code == "forbidden_path", name
    assert {p.name for p in served.outside.iterdir()} == before
    assert served.backend.calls == []


def test_an_existing_status_file_is_not_overwritten(serve: Callable[..., Served]) -> None:
    served = serve()
    existing = served.outputs / "notes.json"
    existing.write_text("mine")
    with served.client("alice") as alice, pytest.raises(ClientError) as refused:
        alice.edit(
            job_request(served, status_file=str(existing)),
            job_id="sf-1",
        )
    assert refused.value.code == "bad_request" and "already exists" in str(refused.value)
    assert existing.read_text() == "mine"
