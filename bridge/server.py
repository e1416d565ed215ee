"""The OSC server: decodes requests, hands them to the engine, sends replies. Never renders."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from bridge import protocol
from bridge.protocol import ADDRESS, JobRequest, JobStatus, Message, ProtocolError
from engine.engine import Engine

__all__ = ["StepEditServer"]

_LOG = logging.getLogger(__name__)

Address = tuple[str, int]


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

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = protocol.DEFAULT_PORT):
        self.engine = engine
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self._send_lock = threading.Lock()
        self._routes: dict[str, Callable[[tuple[Any, ...], Address], None]] = {
            ADDRESS["ping"]: self._ping,
            ADDRESS["capabilities"]: self._capabilities,
            ADDRESS["edit"]: self._edit,
            ADDRESS["transcribe"]: self._transcribe,
            ADDRESS["cancel"]: self._cancel,
            ADDRESS["status"]: self._status,
        }

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def send(self, data: bytes, address: Address) -> None:
        try:
            with self._send_lock:
                self.socket.sendto(data, address)
        except OSError as e:  # an unreachable client must not hurt the engine
            _LOG.debug("reply to %s failed: %s", address, e)

    def send_error(self, address: Address, job_id: str, code: str, message: str) -> None:
        _LOG.info("error to %s:%s [%s] %s: %s", *address, code, job_id or "-", message)
        self.send(protocol.encode(ADDRESS["error"], job_id, code, message), address)

    def handle_datagram(self, data: bytes, source: Address) -> None:
        """Decodes and answers one datagram; any failure becomes an error reply."""
        try:
            messages = protocol.decode_datagram(data)
        except ProtocolError as e:
            self.send_error(source, "", e.code, str(e))
            return
        for message in messages:
            self._dispatch(message, source)

    def _dispatch(self, message: Message, source: Address) -> None:
        route = self._routes.get(message.address)
        try:
            if route is None:
                raise ProtocolError("unknown_address", f"unknown address {message.address!r}")
            route(message.args, source)
        except ProtocolError as e:
            self.send_error(source, e.job_id, e.code, str(e))
        except Exception as e:  # the engine survives every request
            _LOG.exception("request %s failed", message.address)
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
