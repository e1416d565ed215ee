"""OSC 1.1 over TCP: SLIP-framed packets on a stream, served beside the UDP server.

Each connection gets a reader thread (frames in, handed to the packet handler) and a
writer thread (replies out, in order), so that a job's events, sent from the engine's event
thread, never wait on a slow client: a client that stops reading is disconnected.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from bridge import protocol
from bridge.bounded import BoundedThreadingMixIn
from bridge.slip import FrameError, SlipDecoder, encode_frame

__all__ = ["IDLE_TIMEOUT_S", "MAX_CONNECTIONS", "TcpPeer", "TcpServer"]

_LOG = logging.getLogger(__name__)

# Connections served at once; more are closed at once.
MAX_CONNECTIONS = 16
# A connection silent this long (nothing received, or a reply not taken) is closed.
IDLE_TIMEOUT_S = 120.0
# Replies waiting to be written: the reader waits beyond this (back-pressure on a client
# that pipelines downloads); other senders disconnect a client beyond twice this.
MAX_PENDING_BYTES = 4 * protocol.MAX_CHUNK_BYTES
_RECV_BYTES = 1 << 18


class TcpPeer:
    """The reply side of one connection: frames queued and written by its own thread."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.name = name
        self._sock = sock
        self._queue: deque[bytes] = deque()
        self._pending = 0
        self._closed = False
        self._changed = threading.Condition()
        self._reader = threading.get_ident()
        self._writer = threading.Thread(target=self._write, name="stepedit-tcp-out", daemon=True)
        self._writer.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def to(self, reply_port: int | None) -> TcpPeer:
        """Replies go on the connection whatever ``reply_port`` a request names."""
        return self

    def send(self, packet: bytes) -> None:
        """Queues one reply. The connection's reader waits while too much is queued; any
        other sender (a job's events) never waits: the client is disconnected instead."""
        frame = encode_frame(packet)
        with self._changed:
            if threading.get_ident() == self._reader:
                if not self._changed.wait_for(
                    lambda: self._closed or self._pending <= MAX_PENDING_BYTES, IDLE_TIMEOUT_S
                ):
                    _LOG.warning(
                        "%s took no reply for %.0f s: disconnected", self.name, IDLE_TIMEOUT_S
                    )
                    self._close()
            elif self._pending > 2 * MAX_PENDING_BYTES:
                _LOG.warning("%s does not read its replies: disconnected", self.name)
                self._close()
            if self._closed:
                return
            self._queue.append(frame)
            self._pending += len(frame)
            self._changed.notify_all()

    def close(self) -> None:
        """Closes the connection once the queued replies are written (or cannot be)."""
        with self._changed:
            self._queue.append(b"")  # the end mark
            self._changed.notify_all()
        self._writer.join(IDLE_TIMEOUT_S)
        with self._changed:
            self._close()

    def _close(self) -> None:
        """Under the condition's lock."""
        if not self._closed:
            self._closed = True
            self._queue.clear()
            self._changed.notify_all()
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _write(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or bool(self._queue))
                if self._closed:
                    return
                frame = self._queue[0]
            if not frame:
                return
            try:
                self._sock.sendall(frame)
            except OSError as e:
                _LOG.debug("%s: reply not sent: %s", self.name, e)
                with self._changed:
                    self._close()
                return
            with self._changed:
                if self._queue:
                    self._queue.popleft()
                self._pending -= len(frame)
                self._changed.notify_all()


class _Connection(socketserver.BaseRequestHandler):
    server: TcpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(IDLE_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = TcpPeer(sock, f"tcp {self.client_address!r}")
        decoder = SlipDecoder(protocol.MAX_FRAME_BYTES)
        try:
            while not peer.closed:
                try:
                    data = sock.recv(_RECV_BYTES)
                except OSError:  # idle too long, or reset
                    return
                if not data:
                    return
                for frame in decoder.feed(data):
                    if not self.server.handle_packet(frame, peer):
                        return
        except FrameError as e:
            _LOG.info("%s sent a bad frame: %s", peer.name, e)
            peer.send(protocol.encode(protocol.ADDRESS["error"], "", "malformed", str(e)))
        finally:
            peer.close()


class TcpServer(BoundedThreadingMixIn, socketserver.TCPServer):
    """Accepts connections on ``host:port`` and hands each frame to ``handle_packet``.

    Args:
        handle_packet: Answers one packet on a peer; ``False`` closes the connection
            (a refused signature).
        host: Address to listen on.
        port: TCP port (the UDP server's).
    """

    max_threads = MAX_CONNECTIONS
    allow_reuse_address = True

    def __init__(
        self, handle_packet: Callable[[bytes, TcpPeer], bool], host: str, port: int
    ) -> None:
        self.handle_packet = handle_packet
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Connection)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def refuse(self, request: Any, client_address: Any) -> None:
        """Closes a connection that came while ``MAX_CONNECTIONS`` were open."""
        _LOG.warning("connection from %r closed: %d open", client_address, MAX_CONNECTIONS)
        self.shutdown_request(request)
