"""The OSC server: decodes requests, hands them to the engine, sends replies. Never renders."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge import protocol
from bridge.protocol import ADDRESS, Message, ProtocolError
from engine import __version__
from engine.audio import atomic_write_bytes
from engine.capabilities import describe
from engine.edits import parse_edit
from engine.errors import StepEditError
from engine.jobs import EditJob, Engine, JobStatus, Listener
from engine.render import check_request_paths

__all__ = ["StepEditServer", "status_message"]

_LOG = logging.getLogger(__name__)

Address = tuple[str, int]


def status_message(status: JobStatus) -> bytes:
    """The OSC message that reports a job's status: accepted, progress, done or error."""
    if status.state == "queued":
        return protocol.encode(ADDRESS["accepted"], status.job_id)
    if status.state == "running":
        return protocol.encode(
            ADDRESS["progress"], status.job_id, float(status.progress), status.stage
        )
    if status.state == "done":
        result = json.dumps(status.result, ensure_ascii=False)
        return protocol.encode(ADDRESS["done"], status.job_id, status.output_path, result)
    code, message = status.error or ("internal", "no error recorded")
    return protocol.encode(ADDRESS["error"], status.job_id, code, message)


def _write_status_file(path: Path, status: JobStatus) -> None:
    text = protocol.encode_status(
        status.job_id,
        status.state,
        status.progress,
        status.stage,
        status.output_path,
        status.result,
        status.error,
    )
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as e:
        _LOG.warning("cannot write status file %s: %s", path, e)


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
        except StepEditError as e:
            job_id = message.args[0] if message.args and isinstance(message.args[0], str) else ""
            self.send_error(source, job_id, e.code, str(e))
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
            ADDRESS["pong"], protocol.PROTOCOL_VERSION, __version__, backend.name, backend.device
        )
        self.send(pong, target)

    def _capabilities(self, args: tuple[Any, ...], source: Address) -> None:
        target = self._reply_to(source, protocol.decode_reply_port(args))
        listing = {"protocol_version": protocol.PROTOCOL_VERSION, **describe(self.engine.backend)}
        self.send(protocol.encode(ADDRESS["capabilities"], json.dumps(listing)), target)

    def _edit(self, args: tuple[Any, ...], source: Address) -> None:
        job_id, request = protocol.decode_edit(args)
        target = self._reply_to(source, request.reply_port)
        status_file = Path(request.status_file) if request.status_file else None

        def listener(status: JobStatus) -> None:
            # The file first: a client that hears "done" may read it at once.
            if status_file is not None:
                _write_status_file(status_file, status)
            self.send(status_message(status), target)

        try:
            if status_file is not None and not status_file.parent.is_dir():
                raise ProtocolError(
                    "bad_request",
                    f"status_file folder does not exist: {status_file.parent}",
                    job_id,
                )
            job = EditJob(
                job_id=job_id,
                input=Path(request.input),
                edit=parse_edit(request.edit),
                start=request.start,
                length=request.length,
                output_dir=Path(request.output_dir) if request.output_dir else None,
            )
            check_request_paths(job.input, job.output_dir)
            status, created = self.engine.submit(job, listener)
        except (StepEditError, ProtocolError) as e:
            self._known_or_rejected(job_id, e.code, str(e), listener)
            return
        if not created:
            listener(status)  # a resend: repeat the latest message

    def _known_or_rejected(self, job_id: str, code: str, message: str, listener: Listener) -> None:
        """A resend of a known job gets its status (even if its file is gone by now);
        anything else is rejected through the same channels a job would report on."""
        try:
            status = self.engine.status(job_id)
        except StepEditError:
            _LOG.info("rejected job %s [%s]: %s", job_id, code, message)
            status = JobStatus(job_id, "error", error=(code, message))
        listener(status)

    def _cancel(self, args: tuple[Any, ...], source: Address) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.cancel(job_id)
        self.send(status_message(status), self._reply_to(source, reply_port))

    def _status(self, args: tuple[Any, ...], source: Address) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        self.send(status_message(self.engine.status(job_id)), self._reply_to(source, reply_port))
