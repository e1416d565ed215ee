"""The Lua codec (reaper_scripts/StepEdit/codec.lua) against python-osc, liblo's
oscsend/oscdump and Python's json; its copies of the protocol contract against
bridge/protocol.py, read from both sides."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from typing import Any

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge import protocol
from tests.reaper.harness import free_port, run_lua

# The codec alone, in a plain Lua with no `reaper`: it is pure.
LIB = 'local lib = dofile("reaper_scripts/StepEdit/codec.lua")\n'

# What the scripts send, plus padding edge cases (string lengths 0-8) and UTF-8.
LUA_MESSAGES = [
    ("/stepedit/ping", []),
    ("/stepedit/capabilities", []),
    ("/stepedit/cancel", ["0123456789abcdef"]),
    ("/stepedit/status", ["", "a", "ab", "abc", "abcd", "abcde", "abcdefgh"]),
    (
        "/stepedit/edit",
        [
            "job-ü",
            json.dumps(
                {
                    "input": "/tmp/a b/voïce.wav",
                    "start": 1.25,
                    "edit": {"type": "speed", "option": "faster"},
                }
            ),
        ],
    ),
    ("/x", [0, -1, 2147483647, -2147483648, 0.5, -3.25, "✓ 😀"]),
]


def lua_literal(value: Any) -> str:
    if isinstance(value, str):
        return '"' + "".join(f"\\{b}" for b in value.encode()) + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


@pytest.mark.parametrize(("address", "args"), LUA_MESSAGES, ids=lambda v: str(v)[:20])
def test_python_osc_decodes_what_lua_encodes(address: str, args: list[Any]) -> None:
    call = ", ".join([lua_literal(address), *map(lua_literal, args)])
    hex_bytes = run_lua(
        LIB + f"io.write((lib.osc_encode({call}):gsub('.', "
        "function(c) return string.format('%02x', c:byte()) end)))"
    )
    message = OscMessage(bytes.fromhex(hex_bytes.decode()))
    assert message.address == address
    assert list(message.params) == args


def python_datagrams() -> list[bytes]:
    progress = protocol.encode(protocol.ADDRESS["progress"], "job-1", 0.375, "render")
    done = protocol.encode(
        protocol.ADDRESS["done"],
        "job-1",
        "/tmp/ä.wav",
        json.dumps({"duration": 3.12, "edit": {"type": "speed"}}),
    )
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(OscMessageBuilder("/stepedit/accepted").build())
    inner = OscBundleBuilder(IMMEDIATELY)
    builder = OscMessageBuilder("/stepedit/error")
    for arg in ("job-2", "bad_slice", "start/length lie outside the file"):
        builder.add_arg(arg)
    inner.add_content(builder.build())
    bundle.add_content(inner.build())
    return [
        protocol.encode(protocol.ADDRESS["pong"], 1, "0.1.0", "cpu", "cpu"),
        progress,
        done,
        bundle.build().dgram,
        protocol.encode("/x", -7, 1e-3, ""),
        # queue_full carries retry_after as a 4th argument
        protocol.encode(protocol.ADDRESS["error"], "job-3", "queue_full", "busy", 2.5),
    ]


def test_lua_decodes_what_python_osc_encodes() -> None:
    datagrams = python_datagrams()
    out = run_lua(
        LIB + "local out = {}\n"
        "for line in io.lines() do\n"
        "  local bytes = line:gsub('%x%x', function(h) return string.char(tonumber(h, 16)) end)\n"
        "  out[#out + 1] = lib.osc_decode(bytes)\n"
        "end\n"
        "io.write(lib.json_encode(out))",
        stdin="\n".join(d.hex() for d in datagrams).encode(),
    )
    decoded = json.loads(out)
    expected = []
    for datagram in datagrams:
        expected.append(
            [
                {"address": m.address, "args": list(m.args)}
                for m in protocol.decode_datagram(datagram)
            ]
        )
    # Both sides widen float32 to the same double, so even floats compare exactly.
    assert decoded == expected
    assert decoded[4][0]["args"][1] == pytest.approx(1e-3, rel=1e-6)
    assert decoded[5][0]["args"][3] == 2.5


def test_liblo_oscsend_reaches_the_lua_decoder() -> None:
    oscsend = shutil.which("oscsend")
    if oscsend is None:
        pytest.skip("liblo-tools is not installed")
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))
        subprocess.run(
            [
                oscsend,
                "127.0.0.1",
                str(port),
                "/stepedit/progress",
                "sfs",
                "job-é",
                "0.25",
                "generate",
            ],
            check=True,
        )
        datagram = s.recv(65536)
    out = run_lua(
        LIB + "local m = lib.osc_decode(io.read('a'))[1]\nio.write(lib.json_encode(m))",
        stdin=datagram,
    )
    assert json.loads(out) == {"address": "/stepedit/progress", "args": ["job-é", 0.25, "generate"]}


def test_liblo_oscdump_reads_what_lua_sends() -> None:
    oscdump = shutil.which("oscdump")
    if oscdump is None:
        pytest.skip("liblo-tools is not installed")
    port = free_port()
    dump = subprocess.Popen([oscdump, "-L", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        code = LIB + (
            "local socket = require('socket')\n"
            "local udp = socket.udp()\n"
            f"udp:sendto(lib.osc_encode('/stepedit/edit', 'job-1', '{{}}', 9402, 0.5), "
            f"'127.0.0.1', {port})\n"
        )
        run_lua(code)
        time.sleep(0.3)
    finally:
        dump.terminate()
    output = dump.communicate(timeout=5)[0]
    assert '/stepedit/edit ssif "job-1" "{}" 9402 0.500000' in output


JSON_VALUES: list[Any] = [
    {"input": '/tmp/ä b/"q".wav', "start": 0.1, "length": 3, "edit": {"position": [0.8, 1e-7]}},
    ["\u0000\u001f\b\f\n\r\t\\/", "é", "😀", "\u2028", ""],
    {"nested": {"a": [], "b": {}, "c": [True, False, None]}, "n": [-0.0, 1e300, -12345678901]},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
@pytest.mark.parametrize("ascii_only", [True, False])
def test_json_round_trips_through_python(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    out = run_lua(
        LIB + "io.write(lib.json_encode(lib.json_decode(io.read('a'))))", stdin=text.encode()
    )
    assert json.loads(out) == value


def test_lua_mirrors_the_protocol_module() -> None:
    """Each contract is defined in bridge/protocol.py; the Lua codec's copies are dumped by
    Lua itself and compared with the imported Python definitions."""
    out = run_lua(
        LIB + "io.write(lib.json_encode({version = lib.PROTOCOL_VERSION, "
        "port = lib.DEFAULT_PORT, address = lib.ADDRESS, codes = lib.ERROR_CODES, "
        "states = lib.JOB_STATES, state_events = lib.STATE_EVENTS}))"
    )
    mirror = json.loads(out)
    assert mirror["version"] == protocol.PROTOCOL_VERSION
    assert mirror["port"] == protocol.DEFAULT_PORT
    assert mirror["address"] == dict(protocol.ADDRESS)
    assert mirror["codes"] == dict(protocol.ERROR_CODES)
    assert mirror["states"] == list(protocol.JOB_STATES)
    # Every state a status file can hold reads as one of the replies about a job.
    assert set(mirror["state_events"]) == set(protocol.JOB_STATES)
    assert set(mirror["state_events"].values()) <= {"accepted", "progress", "done", "error"}


def test_the_library_serves_the_contract_to_the_actions() -> None:
    """The actions read the contract through StepEdit_lib.lua, which loads the codec."""
    out = run_lua(
        "reaper = {}\n"  # loading the library calls no REAPER function
        'local lib = dofile("reaper_scripts/StepEdit_lib.lua")\n'
        "io.write(lib.json_encode({lib.PROTOCOL_VERSION, lib.ADDRESS, lib.ERROR_CODES, "
        "lib.JOB_STATES}))"
    )
    assert json.loads(out) == [
        protocol.PROTOCOL_VERSION,
        dict(protocol.ADDRESS),
        dict(protocol.ERROR_CODES),
        list(protocol.JOB_STATES),
    ]
