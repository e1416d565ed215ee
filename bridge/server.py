"""The OSC server: decodes requests, hands them to the engine, sends replies. Never renders."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge import protocol
from bridge.protocol import ADDRESS, JobRequest, JobStatus, Message, ProtocolError
from engine.engine import Engine

__all__ = ["StepEditServer"]

_LOG = logging.getLogger(__name__)

Address = tuple[str, int]

# Datagrams handled at once; those beyond are dropped (UDP may drop them anyway).
MAX_HANDLERS = 32
# At most one "dropped" log line per this many seconds.
_DROP_LOG_INTERVAL = 5.0
# Addresses answered at most once per datagram, so a bundle cannot multiply replies.
_ONCE_PER_DATAGRAM = frozenset({ADDRESS["ping"], ADDRESS["capabilities"]})


class _Handler(socketserver.BaseRequestHandler):
    server: StepEditServer

    def handle(self) -> None:
        data, _ = self.request
        self.server.handle_datagram(data, self.client_address)


class StepEditServer(socketserver.ThreadingUDPServer):
    """Serves protocol v1 on a UDP port for one engine.

    Replies leave from the server's own socket, so clients that read the socket they sent
    from need no reply port.
    """

    daemon_threads = True
    allow_reuse_address = False
    max_packet_size = protocol.MAX_DATAGRAM_BYTES

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = protocol.DEFAULT_PORT):
        self.engine = engine
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self._send_lock = threading.Lock()
        self._handlers = threading.BoundedSemaphore(MAX_HANDLERS)
        self._dropped = 0
        self._drop_logged = 0.0
        self._routes: dict[str, Callable[[tuple[Any, ...], Address], None]] = {
            ADDRESS["ping"]: self._ping,
            ADDRESS["capabilities"]: self._capabilities,
            ADDRESS["edit"]: self._edit,
            ADDRESS["transcribe"]: self._transcribe,
            ADDRESS["cancel"]: self._cancel,
            ADDRESS["status"]: self._status,
        }

    def process_request(self, request: Any, client_address: Any) -> None:
        """Starts a handler thread unless ``MAX_HANDLERS`` are busy; then drops the datagram."""
        if not self._handlers.acquire(blocking=False):
            self._note_dropped()
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._handlers.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._handlers.release()

    def _note_dropped(self) -> None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._drop_logged >= _DROP_LOG_INTERVAL:
            _LOG.warning("%d datagram(s) dropped: %d handlers busy", self._dropped, MAX_HANDLERS)
            self._dropped = 0
            self._drop_logged = now

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def send(self, data: bytes, address: Address) -> None:
        try:
            with self._send_lock:
                self.socket.sendto(data, address)
        except OSError as e:  # an unreachable client must not hurt the engine
            _LOG.debug("reply to %r failed: %s", address, e)

    def send_error(self, address: Address, job_id: str, code: str, message: str) -> None:
        # Client strings are quoted (%r) so that none can forge a log line.
        _LOG.info("error to %r [%r] %s: %r", address, job_id, code, message)
        self.send(protocol.encode(ADDRESS["error"], job_id, code, message), address)

    def handle_datagram(self, data: bytes, source: Address) -> None:
        """Decodes and answers one datagram; any failure becomes an error reply."""
        try:
            messages = protocol.decode_datagram(data)
        except ProtocolError as e:
            self.send_error(source, "", e.code, str(e))
            return
        answered: set[str] = set()
        for message in messages:
            if message.address in _ONCE_PER_DATAGRAM:
                if message.address in answered:
                    continue
                answered.add(message.address)
            self._dispatch(message, source)

    def _dispatch(self, message: Message, source: Address) -> None:
        route = self._routes.get(message.address)
        try:
            if route is None:
                raise ProtocolError("unknown_address", f"unknown address {message.address!r}")
            route(message.args, source)
        except ProtocolError as e:
            self.send_error(self._reply_to(source, e.reply_port), e.job_id, e.code, str(e))
        except Exception as e:  # the engine survives every request
            _LOG.exception("request %r failed", message.address)
            self.send_error(source, "", "internal", f"{type(e).__name__}: {e}")

    @staticmethod
    def _reply_to(source: Address, reply_port: int | None) -> Address:
        return (source[0], reply_port) if reply_port else source

    # -- routes ----------------------------------------------------------------------------

    def _ping(self, args: tuple[Any, ...], source: Address) -> None:
        target = self._reply_to(source, protocol.decode_reply_port(args))
        backend = self.engine.backend
        pong = protocol.encode(
            ADDRESS["pong"],
            protocol.PROTOCOL_VERSION,
            self.engine.version,
            backend.name,
            backend.device,
        )
        self.send(pong, target)

    def _capabilities(self, args: tuple[Any, ...], source: Address) -> None:
        target = self._reply_to(source, protocol.decode_reply_port(args))
        listing = {"protocol_version": protocol.PROTOCOL_VERSION, **self.engine.capabilities()}
        self.send(protocol.encode(ADDRESS["capabilities"], json.dumps(listing)), target)

    def _edit(self, args: tuple[Any, ...], source: Address) -> None:
        self._submit(*protocol.decode_edit(args), source)

    def _transcribe(self, args: tuple[Any, ...], source: Address) -> None:
        self._submit(*protocol.decode_transcribe(args), source)

    def _submit(self, job_id: str, request: JobRequest, source: Address) -> None:
        target = self._reply_to(source, request.reply_port)

        def reply(status: JobStatus) -> None:
            self.send(protocol.encode_status_message(status), target)

        self.engine.submit(job_id, request, reply)

    def _cancel(self, args: tuple[Any, ...], source: Address) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.cancel(job_id)
        self.send(protocol.encode_status_message(status), self._reply_to(source, reply_port))

    def _status(self, args: tuple[Any, ...], source: Address) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.status(job_id)
        self.send(protocol.encode_status_message(status), self._reply_to(source, reply_port))
