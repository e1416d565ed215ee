"""Property-based fuzzing of the decoders (issue 9): only ProtocolError escapes, quickly."""

from __future__ import annotations

import contextlib
import json
import struct
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import protocol
from bridge.protocol import ADDRESS, ProtocolError

# Derandomized: the suite gives the same verdict on every run (bench/bench_fuzz.py roams).
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
QUICK = 1.0  # seconds any one decode may take


def _timed(call: Any, *args: Any) -> None:
    started = time.monotonic()
    with contextlib.suppress(ProtocolError):
        call(*args)
    assert time.monotonic() - started < QUICK


def _element(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


_messages = st.builds(
    lambda address, args: protocol.encode(address, *args),
    st.sampled_from([*ADDRESS.values(), "/x"]),
    st.lists(
        st.one_of(
            st.integers(-(2**31), 2**31 - 1),
            st.floats(width=32),
            # OSC strings end at their NUL and are UTF-8: no NUL, no lone surrogates.
            st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40),
        ),
        max_size=4,
    ),
)
_packets = st.recursive(
    _messages | st.binary(max_size=64),
    lambda inner: st.builds(
        lambda parts, sizes: (
            b"#bundle\0"
            + bytes(8)
            + b"".join(
                (struct.pack(">i", size) + part) if size is not None else _element(part)
                for part, size in zip(parts, sizes, strict=False)
            )
        ),
        st.lists(inner, max_size=5),
        st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), min_size=5, max_size=5),
    ),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    _timed(protocol.decode_datagram, data)
    _timed(protocol.decode_datagram, b"#bundle\0" + data)
    _timed(protocol.decode_datagram, b"/stepedit/edit\0\0" + data)


@FUZZ
@given(_packets, st.integers(0, 64), st.binary(max_size=8))
def test_mangled_packets_decode_or_raise_protocol_error(
    packet: bytes, cut: int, noise: bytes
) -> None:
    _timed(protocol.decode_datagram, packet)
    _timed(protocol.decode_datagram, packet[: len(packet) - cut] + noise)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["/a.wav", "rel.wav", "\udcff", "/x\udc80.wav", "C:\\a.wav"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
_fields = st.sampled_from(
    [
        "input",
        "start",
        "length",
        "edit",
        "output_dir",
        "reply_port",
        "status_file",
        "language",
        "text",
        "type",
    ]
)
_requests = st.dictionaries(_fields, _json, max_size=8)


def _as_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@FUZZ
@given(
    st.text(max_size=140) | st.integers() | st.none(),
    _requests.map(_as_text) | st.text(max_size=200) | st.binary(max_size=40),
    st.lists(st.integers() | st.text(max_size=5), max_size=2),
)
def test_job_requests_decode_or_raise_protocol_error(
    job_id: Any, request: Any, extra: list[Any]
) -> None:
    for decode in (protocol.decode_edit, protocol.decode_transcribe):
        _timed(decode, (job_id, request))
        _timed(decode, (job_id, request, *extra))
        _timed(decode, (job_id,))
    _timed(protocol.decode_job_query, (job_id, *extra))
    _timed(protocol.decode_reply_port, tuple(extra))


@FUZZ
@given(st.integers(0, 5000), st.sampled_from(["[", '{"a":', '[{"b":']))
def test_deep_json_never_raises_recursion_error(depth: int, opener: str) -> None:
    text = '{"input": "/a.wav", "edit": %s' % (opener * depth)
    for decode in (protocol.decode_edit, protocol.decode_transcribe):
        _timed(decode, ("j1", text))
