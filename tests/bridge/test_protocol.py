"""Protocol v1 encode/decode on raw bytes."""

from __future__ import annotations

import json
import struct

import pytest

from bridge import protocol
from bridge.protocol import ADDRESS, ProtocolError


def osc_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return raw + b"\0" * (-len(raw) % 4)


def raw_message(address: str, *args: int | float | str) -> bytes:
    """An OSC message built by hand from the OSC 1.0 spec, independent of python-osc."""
    tags = "," + "".join(
        "i" if isinstance(a, int) else "f" if isinstance(a, float) else "s" for a in args
    )
    body = b"".join(
        struct.pack(">i", a)
        if isinstance(a, int)
        else struct.pack(">f", a)
        if isinstance(a, float)
        else osc_string(a)
        for a in args
    )
    return osc_string(address) + osc_string(tags) + body


def test_encode_matches_hand_built_bytes() -> None:
    assert protocol.encode("/stepedit/pong", 1, "0.1.0", "cpu", "cpu") == raw_message(
        "/stepedit/pong", 1, "0.1.0", "cpu", "cpu"
    )
    assert protocol.encode(ADDRESS["progress"], "j", 0.5, "render") == (
        b"/stepedit/progress\0\0"
        + b",sfs\0\0\0\0"
        + b"j\0\0\0"
        + struct.pack(">f", 0.5)
        + b"render\0\0"
    )


def test_encode_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="int, float or str"):
        protocol.encode("/x", True)


def test_decode_hand_built_datagram() -> None:
    [message] = protocol.decode_datagram(raw_message("/stepedit/ping", 9402))
    assert message.address == "/stepedit/ping"
    assert message.args == (9402,)


def test_decode_bundle() -> None:
    inner = raw_message("/stepedit/status", "job-1")
    bundle = osc_string("#bundle") + struct.pack(">Q", 1) + struct.pack(">i", len(inner)) + inner
    [message] = protocol.decode_datagram(bundle)
    assert message.args == ("job-1",)


@pytest.mark.parametrize("data", [b"", b"garbage", b"/x\0\0,i\0\0\0\0", b"\xff" * 16])
def test_malformed_datagrams(data: bytes) -> None:
    with pytest.raises(ProtocolError) as e:
        protocol.decode_datagram(data)
    assert e.value.code == "malformed"


def test_decode_edit_full_request() -> None:
    request = {
        "input": "/a/b.wav",
        "start": 1,
        "length": 2.5,
        "edit": {"type": "speed"},
        "output_dir": "/out",
        "reply_port": 9402,
        "status_file": "/tmp/s.json",
    }
    job_id, decoded = protocol.decode_edit(("job-1", json.dumps(request)))
    assert job_id == "job-1"
    assert (decoded.input, decoded.start, decoded.length) == ("/a/b.wav", 1.0, 2.5)
    assert (decoded.output_dir, decoded.reply_port, decoded.status_file) == (
        "/out",
        9402,
        "/tmp/s.json",
    )
    assert decoded.edit == {"type": "speed"}


def test_decode_edit_accepts_windows_paths() -> None:
    _, decoded = protocol.decode_edit(
        ("j", json.dumps({"input": "C:\\Audio\\take.wav", "edit": {"type": "vad"}}))
    )
    assert decoded.input == "C:\\Audio\\take.wav"


@pytest.mark.parametrize(
    ("args", "code", "job_id"),
    [
        ((), "bad_arguments", ""),
        (("only-id",), "bad_arguments", "only-id"),
        (("j", 5), "bad_arguments", "j"),
        (("", "{}"), "bad_arguments", ""),
        (("j", "{not json"), "invalid_json", "j"),
        (("j", "[1, 2]"), "bad_request", "j"),
        (("j", '{"edit": {"type": "vad"}}'), "bad_request", "j"),
        (("j", '{"input": "rel/path.wav", "edit": {"type": "vad"}}'), "bad_request", "j"),
        (("j", '{"input": "/a.wav"}'), "bad_request", "j"),
        (("j", '{"input": "/a.wav", "edit": {"type": "vad"}, "start": -1}'), "bad_request", "j"),
        (("j", '{"input": "/a.wav", "edit": {"type": "vad"}, "length": 0}'), "bad_request", "j"),
        (("j", '{"input": "/a.wav", "edit": {"type": "vad"}, "start": "1"}'), "bad_request", "j"),
        (
            ("j", '{"input": "/a.wav", "edit": {"type": "vad"}, "reply_port": 70000}'),
            "bad_arguments",
            "j",
        ),
        (
            ("j", '{"input": "/a.wav", "edit": {"type": "vad"}, "colour": "red"}'),
            "bad_request",
            "j",
        ),
    ],
)
def test_decode_edit_errors(args: tuple, code: str, job_id: str) -> None:
    with pytest.raises(ProtocolError) as e:
        protocol.decode_edit(args)
    assert (e.value.code, e.value.job_id) == (code, job_id)


def test_reply_port_and_job_query() -> None:
    assert protocol.decode_reply_port(()) is None
    assert protocol.decode_reply_port((0,)) is None
    assert protocol.decode_reply_port((9402,)) == 9402
    assert protocol.decode_job_query(("j",)) == ("j", None)
    assert protocol.decode_job_query(("j", 9402)) == ("j", 9402)
    with pytest.raises(ProtocolError, match="reply_port"):
        protocol.decode_reply_port(("9402",))
    with pytest.raises(ProtocolError, match="job_id"):
        protocol.decode_job_query((5,))


def test_status_json() -> None:
    text = protocol.encode_status("j", "error", 0.25, "render", error=("bad_slice", "past the end"))
    assert json.loads(text) == {
        "protocol_version": 1,
        "job_id": "j",
        "state": "error",
        "progress": 0.25,
        "stage": "render",
        "error": {"code": "bad_slice", "message": "past the end"},
    }
    with pytest.raises(ValueError, match="state"):
        protocol.encode_status("j", "finished", 1.0, "done")


def test_every_engine_error_code_is_documented() -> None:
    """Engine exceptions carry codes the protocol (and docs/protocol.md) define."""
    import inspect
    import re
    from pathlib import Path

    from engine import errors

    codes = {
        c.code
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.StepEditError)
    }
    engine_sources = "\n".join(p.read_text() for p in Path(errors.__file__).parent.rglob("*.py"))
    codes |= set(re.findall(r'Error\([^()]*?,\s*"([a-z_]+)"\)', engine_sources, re.S))
    assert codes <= set(protocol.ERROR_CODES)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    assert all(f"`{code}`" in doc for code in protocol.ERROR_CODES)
