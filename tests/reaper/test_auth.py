"""The library's signing (reaper_scripts/StepEdit/hmac.lua, auth.lua) against Python's
hashlib and hmac, the protocol's envelope and bridge.auth; a real server that requires
signatures serves the actions, and a full queue is waited out."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage

from bridge import protocol
from tests.reaper.harness import Project, run_action, run_lua, stepedit_command

# The pure modules in a plain Lua, loaded as the library loads them.
MODULES = (
    "local function import(name)\n"
    "  return assert(loadfile('reaper_scripts/StepEdit/' .. name .. '.lua'))(import)\n"
    "end\n"
    "local hmac, auth, codec = import('hmac'), import('auth'), import('codec')\n"
    "local function unhex(h) return (h:gsub('%x%x', function(x) "
    "return string.char(tonumber(x, 16)) end)) end\n"
)
SECRET = "0123456789abcdef" * 4


def lua_lines(code: str, lines: list[str]) -> list[str]:
    return run_lua(MODULES + code, stdin="\n".join(lines).encode()).decode().splitlines()


def sample_inputs() -> list[bytes]:
    """Empty, every length around the padding boundaries (55/56 and 64 bytes), every byte."""
    rng = random.Random(9)
    lengths = [0, 1, 3, 54, 55, 56, 57, 62, 63, 64, 65, 111, 119, 120, 121, 127, 128, 129, 1000]
    inputs = [rng.randbytes(n) for n in lengths]
    return [*inputs, b"abc", bytes(range(256)), "stepedit ✓ 😀".encode()]


def test_sha256_matches_hashlib() -> None:
    inputs = sample_inputs()
    out = lua_lines(
        "for line in io.lines() do print(hmac.hex(hmac.sha256(unhex(line)))) end",
        [b.hex() for b in inputs],
    )
    assert out == [hashlib.sha256(b).hexdigest() for b in inputs]


def test_sha256_of_a_megabyte_matches_hashlib() -> None:
    data = random.Random(1).randbytes(1_000_000)
    out = run_lua(MODULES + "io.write(hmac.hex(hmac.sha256(io.read('a'))))", stdin=data)
    assert out.decode() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "key",
    [b"", b"k", SECRET.encode(), bytes(range(64)), bytes(range(65)), b"x" * 200],
    ids=["empty", "1 byte", "secret text", "64 bytes", "65 bytes (hashed)", "200 bytes"],
)
def test_hmac_sha256_matches_python(key: bytes) -> None:
    messages = sample_inputs()
    out = lua_lines(
        f"local key = unhex('{key.hex()}')\n"
        "for line in io.lines() do print(hmac.hex(hmac.hmac_sha256(key, unhex(line)))) end",
        [m.hex() for m in messages],
    )
    assert out == [hmac.new(key, m, hashlib.sha256).hexdigest() for m in messages]


@dataclass
class Envelope:
    message: OscMessage
    packet: bytes
    datagram: bytes


def lua_sign(key_id: str, secret: str, timestamp: str = "nil", nonce: str = "nil") -> Envelope:
    """The Lua library signs an /stepedit/edit; returns the envelope as python-osc reads it."""
    out = lua_lines(
        "local packet = codec.osc_encode('/stepedit/edit', 'job-ü', '{\"input\": \"/tmp/a.wav\"}')\n"
        f"local key = {{ id = '{key_id}', secret = '{secret}' }}\n"
        f"local datagram = auth.sign(packet, key, {timestamp}, {nonce})\n"
        "print(hmac.hex(packet)) print(hmac.hex(datagram))",
        [],
    )
    packet, datagram = (bytes.fromhex(line) for line in out)
    return Envelope(OscMessage(datagram), packet, datagram)


def test_the_envelope_is_as_the_protocol_says() -> None:
    envelope = lua_sign("studio", SECRET, "'1796000000.25'", "'nonce-0001'")
    assert envelope.message.address == "/stepedit/auth" == protocol.ADDRESS["auth"]
    key_id, timestamp, nonce, tag, packet = envelope.message.params
    assert (key_id, timestamp, nonce, packet) == (
        "studio",
        "1796000000.25",
        "nonce-0001",
        envelope.packet,
    )
    signed = b"stepedit-auth-v1\nstudio\n1796000000.25\nnonce-0001\n" + envelope.packet
    assert tag == hmac.new(SECRET.encode("ascii"), signed, hashlib.sha256).hexdigest()
    inner = protocol.decode_datagram(packet)
    assert [(m.address, list(m.args)) for m in inner] == [
        ("/stepedit/edit", ["job-ü", '{"input": "/tmp/a.wav"}'])
    ]


def test_the_documented_example_tag() -> None:
    """The example in docs/protocol.md, "Authentication"."""
    out = lua_lines(
        "local secret = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'\n"
        "print(auth.tag(secret, 'default', '1796000000.250', '0123456789abcdef', "
        "codec.osc_encode('/stepedit/ping', 9402)))",
        [],
    )
    assert out == ["42fbb88b124c39e4fa763865cbe11a72b10a4bb15affa6f7c1d91ebe24016dae"]


def test_each_signature_has_the_time_and_a_new_nonce() -> None:
    before = time.time()
    first, second = lua_sign("default", SECRET), lua_sign("default", SECRET)
    for envelope in (first, second):
        timestamp, nonce = envelope.message.params[1:3]
        # Whole seconds: REAPER's Lua has no sub-second wall clock.
        assert re.fullmatch(r"[0-9]+", timestamp)
        assert before - 1 <= int(timestamp) <= time.time()
        assert re.fullmatch(r"[\x20-\x7e]{8,64}", nonce)
    assert first.message.params[2] != second.message.params[2]


def test_lua_and_bridge_auth_sign_the_same_bytes(tmp_path: Path) -> None:
    auth = pytest.importorskip("bridge.auth")
    envelope = lua_sign("studio", SECRET, "'1796000000.000'", "'n0nce-xyz'")
    assert envelope.datagram == auth.sign(
        envelope.packet, "studio", SECRET, now=1796000000.0, nonce="n0nce-xyz"
    )
    keyring = auth.Keyring(tmp_path / "secrets.json")
    secret, _ = keyring.ensure("default")
    signed = lua_sign("default", secret)
    verifier = auth.Verifier(keyring)
    assert verifier.verify(signed.message.params) == ("default", signed.packet)
    with pytest.raises(auth.AuthError, match="wrong_tag"):
        verifier.verify(lua_sign("default", "f" * 64).message.params)


# A real server in this process that requires signatures, on a backend that renders at
# once (or waits at its gate): what the actions do with auth and a full queue does not
# depend on what is rendered.


@dataclass
class Served:
    server: Any
    backend: Any
    secret: str


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    auth = pytest.importorskip("bridge.auth")
    from bridge.server import StepEditServer
    from engine.engine import Engine, EngineConfig
    from tests.engine.fake_backends import FakeRenderBackend

    options: dict[str, Any] = getattr(request, "param", {})
    keyring = auth.Keyring(tmp_path / "keys" / "secrets.json")
    secret, _ = keyring.ensure("default")
    backend = FakeRenderBackend()
    engine = Engine(backend, EngineConfig(max_queue=options.get("max_queue", 32)))
    engine.start()
    server = StepEditServer(engine, "127.0.0.1", 0, keyring=keyring, require_auth=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(server, backend, secret)
    if backend.gate is not None:
        backend.gate.set()
    engine.stop()
    server.shutdown()
    server.server_close()


def scenario(served: Served, transport: str, secret: str, **extra: Any) -> dict[str, Any]:
    return {
        "extstate": {
            "host": "127.0.0.1",
            "port": str(served.server.port),
            "engine_command": stepedit_command(),
            "secret": secret,
        },
        "sockets": transport == "osc",
        "timeout": 30,
        **extra,
    }


TRANSPORTS = ("osc", "process")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_signed_edit_is_served_by_an_engine_that_requires_auth(
    served: Served, project: Project, transport: str
) -> None:
    result = run_action(
        project,
        "Denoise",
        items=[{"file": str(project.clip), "position": 0.0, "length": 1.0}],
        **scenario(served, transport, served.secret),
    )
    assert result["messages"] == []
    assert len(result["after"]["tracks"][0]["items"][0]["takes"]) == 2
    assert len(served.backend.calls) == 1
    assert served.secret not in result["console"]
    for process in result["processes"]:  # the client reads it from a private file
        assert served.secret not in process["cmdline"]
    if transport == "process":
        secret_file = project.dir / "reaper-resource" / "Data" / "StepEdit" / "secret"
        assert secret_file.read_text() == served.secret
        assert secret_file.stat().st_mode & 0o777 == 0o600


def test_a_wrong_secret_is_refused_and_the_settings_action_named(
    served: Served, project: Project
) -> None:
    result = run_action(
        project,
        "Denoise",
        items=[{"file": str(project.clip), "position": 0.0, "length": 1.0}],
        **scenario(served, "osc", "f" * 64),
    )
    assert len(result["messages"]) == 1
    text = result["messages"][0]["text"]
    assert "unauthorized" in text and '"StepEdit_Settings"' in text
    assert len(result["after"]["tracks"][0]["items"][0]["takes"]) == 1
    assert served.backend.calls == []


@pytest.mark.parametrize("served", [{"max_queue": 1}], indirect=True)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_full_queue_is_waited_out_without_errors(
    served: Served, project: Project, transport: str
) -> None:
    """One job renders (held at the gate), one waits in the queue (one place): the third
    hears queue_full, waits, and is sent again once the gate opens."""
    served.backend.gate = threading.Event()
    threading.Timer(1.5, served.backend.gate.set).start()
    items = [
        {"file": str(project.clip), "position": 2.0 * i, "startoffs": 0.5 * i, "length": 1.0}
        for i in range(3)
    ]
    result = run_action(
        project, "Denoise", items=items, **scenario(served, transport, served.secret)
    )
    assert result["messages"] == []
    assert "waiting for the engine (queue full)" in result["console"]
    assert all(len(item["takes"]) == 2 for item in result["after"]["tracks"][0]["items"])
    assert len(served.backend.calls) == 3  # every job rendered once
