"""The OSC wire codec on raw bytes: round trips, bundles, and the bounds the caller sets."""

from __future__ import annotations

import struct

import pytest

from bridge.osc import Message, OscError, decode_packet, encode


def bundle(*elements: bytes) -> bytes:
    body = b"".join(struct.pack(">i", len(e)) + e for e in elements)
    return b"#bundle\0" + bytes(8) + body


def test_a_message_round_trips() -> None:
    data = encode("/stepedit/edit", "job-1", 3, 0.5)
    assert decode_packet(data, 8, 16) == [Message("/stepedit/edit", ("job-1", 3, 0.5))]


def test_bundles_are_flattened_in_order() -> None:
    a, b = encode("/a", 1), encode("/b", "x")
    assert decode_packet(bundle(a, bundle(b)), 8, 16) == [
        Message("/a", (1,)),
        Message("/b", ("x",)),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"#bundle\0" + bytes(8) + struct.pack(">i", -4), "element size -4"),
        (bundle(bundle(bundle(encode("/a")))), "nested deeper than 2"),
        (bundle(*[encode("/a")] * 3), "more than 2 messages"),
        (b"/a\0\0,x\0\0", "unsupported type tag 'x'"),
        (b"/a\0", "padding"),
        (b"hello", "neither a message nor a bundle"),
    ],
)
def test_bad_or_unbounded_packets_raise(data: bytes, message: str) -> None:
    with pytest.raises(OscError, match=message):
        decode_packet(data, 2, 2)


def test_strings_with_nul_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="cannot hold one"):
        encode("/a", "x\0y")
