"""OSC 1.0 on the wire: a bounded decoder for messages and bundles, and a message encoder.

Knows nothing of StepEdit's addresses or requests (``bridge.protocol`` does). The decoder
trusts nothing in a datagram: every size is checked against the bytes present, and nesting
and message counts are bounded by the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

__all__ = ["Message", "OscError", "decode_packet", "encode"]


class OscError(ValueError):
    """Bytes that are not a valid OSC packet within the caller's bounds."""


@dataclass(frozen=True)
class Message:
    """One decoded OSC message."""

    address: str
    args: tuple[Any, ...]


_FIXED = {"i": ">i", "h": ">q", "f": ">f", "d": ">d"}
_CONSTANTS = {"T": True, "F": False, "N": None}
_BUNDLE = b"#bundle\0"


def _osc_string(data: bytes, index: int) -> tuple[str, int]:
    """An OSC string at ``index``; bytes that are not UTF-8 become surrogate escapes."""
    end = data.find(b"\0", index)
    if end < 0:
        raise OscError("unterminated string")
    following = index + (end - index) // 4 * 4 + 4
    if following > len(data):
        raise OscError("string padding runs past the end")
    return data[index:end].decode("utf-8", "surrogateescape"), following


def _fixed(data: bytes, index: int, fmt: str) -> tuple[Any, int]:
    size = struct.calcsize(fmt)
    if index + size > len(data):
        raise OscError("argument runs past the end")
    return struct.unpack_from(fmt, data, index)[0], index + size


def _decode_message(data: bytes) -> Message:
    address, index = _osc_string(data, 0)
    if index == len(data):
        return Message(address, ())
    tags, index = _osc_string(data, index)
    if not tags.startswith(","):
        raise OscError("type tags must start with a comma")
    args: list[Any] = []
    for tag in tags[1:]:
        if tag in _FIXED:
            value, index = _fixed(data, index, _FIXED[tag])
        elif tag == "s":
            value, index = _osc_string(data, index)
        elif tag == "b":
            size, index = _fixed(data, index, ">i")
            if size < 0 or index + size > len(data):
                raise OscError(f"blob size {size} does not fit the datagram")
            value, index = data[index : index + size], index + (size + 3) // 4 * 4
        elif tag in _CONSTANTS:
            value = _CONSTANTS[tag]
        else:
            raise OscError(f"unsupported type tag {tag!r}")
        args.append(value)
    return Message(address, tuple(args))


def decode_packet(data: bytes, max_depth: int, max_messages: int) -> list[Message]:
    """The messages of one packet (a message, or bundles of them, nested).

    Raises:
        OscError: for malformed bytes, bundles nested deeper than ``max_depth`` or more than
            ``max_messages`` messages in all.
    """
    out: list[Message] = []

    def walk(chunk: bytes, depth: int) -> None:
        if chunk.startswith(_BUNDLE):
            if depth >= max_depth:
                raise OscError(f"bundles nested deeper than {max_depth}")
            index = len(_BUNDLE) + 8  # the time tag: the engine acts at once
            if index > len(chunk):
                raise OscError("bundle too short")
            while index < len(chunk):
                size, index = _fixed(chunk, index, ">i")
                if size <= 0 or size % 4 or index + size > len(chunk):
                    raise OscError(f"bundle element size {size} does not fit the datagram")
                walk(chunk[index : index + size], depth + 1)
                index += size
        elif chunk.startswith(b"/"):
            if len(out) >= max_messages:
                raise OscError(f"more than {max_messages} messages in one datagram")
            out.append(_decode_message(chunk))
        else:
            raise OscError("neither a message nor a bundle")

    walk(bytes(data), 0)
    return out


def encode(address: str, *args: Any) -> bytes:
    """Builds an OSC message; ``int`` -> i, ``float`` -> f, ``str`` -> s, ``bytes`` -> b."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, int | float | str | bytes):
            raise TypeError(f"protocol arguments are int, float or str (bytes: blob), got {arg!r}")
        if isinstance(arg, str) and "\0" in arg:
            raise ValueError(f"an OSC string ends at its first NUL, so it cannot hold one: {arg!r}")
        kind = "i" if isinstance(arg, int) else "f" if isinstance(arg, float) else "s"
        builder.add_arg(arg, "b" if isinstance(arg, bytes) else kind)
    return builder.build().dgram
