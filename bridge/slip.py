"""SLIP framing (RFC 1055, double-END as OSC 1.1 asks) with a bounded decoder.

A frame is ``END payload END`` where the payload's ``END`` bytes are sent as ``ESC ESC_END``
and its ``ESC`` bytes as ``ESC ESC_ESC``. python-osc's ``pythonosc.slip`` has the same
format but decodes whatever it is given; this decoder bounds every frame and its buffer,
so a peer that never sends ``END`` cannot make the engine hold more than one frame's worth.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["END", "ESC", "FrameError", "SlipDecoder", "encode_frame"]

END, ESC, ESC_END, ESC_ESC = b"\xc0", b"\xdb", b"\xdc", b"\xdd"
_ESCAPED_END, _ESCAPED_ESC = ESC + ESC_END, ESC + ESC_ESC


class FrameError(ValueError):
    """Bytes that are not a SLIP frame within the decoder's bounds."""


def encode_frame(payload: bytes) -> bytes:
    """``payload`` escaped and wrapped in ``END`` bytes (double-END)."""
    body = payload.replace(ESC, _ESCAPED_ESC).replace(END, _ESCAPED_END)
    return b"".join((END, body, END))


class SlipDecoder:
    """Splits a byte stream into frames; not thread-safe (one per connection).

    Args:
        max_frame_bytes: Largest decoded frame accepted; its escaped form may take twice
            that, which bounds the buffer.

    Example:
        >>> decoder = SlipDecoder(1024)
        >>> list(decoder.feed(encode_frame(b"\\xc0hi")))
        [b'\\xc0hi']
    """

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes <= 0:
            raise ValueError(f"max_frame_bytes must be positive, got {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Adds received bytes and yields each frame they complete (empty frames, the
        second ``END`` of a double-END, are skipped).

        Raises:
            FrameError: a frame over ``max_frame_bytes``, or an ``ESC`` not followed by
                ``ESC_END`` or ``ESC_ESC``; the stream cannot be trusted after it.
        """
        self._buffer += data
        start = 0
        while (end := self._buffer.find(END, start)) >= 0:
            if end > start:
                yield self._unescape(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > 2 * self.max_frame_bytes:
            raise FrameError(f"no frame end within {2 * self.max_frame_bytes} bytes")

    def _unescape(self, body: bytes) -> bytes:
        if len(body) > 2 * self.max_frame_bytes:
            raise FrameError(f"frame of over {2 * self.max_frame_bytes} escaped bytes")
        payload = _unescape(body) if ESC in body else body
        if len(payload) > self.max_frame_bytes:
            raise FrameError(f"frame of {len(payload)} bytes exceeds {self.max_frame_bytes}")
        return payload


def _unescape(body: bytes) -> bytes:
    """The payload of an escaped frame body, vectorised: audio has an ``ESC`` or ``END``
    byte every hundred bytes or so, where ``bytes.replace`` of two-byte patterns manages
    about 100 MB/s and this several times that (bench/bench_transfer.py).

    Raises:
        FrameError: an ``ESC`` not followed by ``ESC_END`` or ``ESC_ESC``.
    """
    import numpy as np  # here: plain client commands never unescape, and start faster

    data = np.frombuffer(body, dtype=np.uint8)
    escape = data == ESC[0]
    escaped = np.zeros_like(escape)  # the byte after each ESC
    escaped[1:] = escape[:-1]
    codes = data[escaped]
    if escape[-1] or not np.all((codes == ESC_END[0]) | (codes == ESC_ESC[0])):
        raise FrameError("an ESC byte not followed by ESC_END or ESC_ESC")
    out = data.copy()
    out[escaped & (data == ESC_END[0])] = END[0]
    out[escaped & (data == ESC_ESC[0])] = ESC[0]
    return bytes(out[~escape].tobytes())
