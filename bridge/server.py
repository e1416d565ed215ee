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
from bridge.auth import AuthError, Keyring, RateLimiter, Verifier, is_loopback
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
# ``unauthorized`` replies, in all: a burst, then a few per second, so that forged source
# addresses cannot turn the engine into a reflector.
UNAUTHORIZED_BURST, UNAUTHORIZED_PER_S = 10, 5.0


class _Handler(socketserver.BaseRequestHandler):
    server: StepEditServer

    def handle(self) -> None:
        data, _ = self.request
        self.server.handle_datagram(data, self.client_address)


class StepEditServer(socketserver.ThreadingUDPServer):
    """Serves protocol v1 on a UDP port for one engine.

    Replies leave from the server's own socket, so clients that read the socket they sent
    from need no reply port.

    Args:
        engine: The engine requests go to.
        host: Address to listen on; any but loopback requires signed messages.
        port: UDP port (0: any free one, see ``port``).
        keyring: Secrets of the keys that may sign messages.
        require_auth: Require signed messages on loopback too.

    Raises:
        ValueError: a non-loopback ``host`` without a key in ``keyring`` or without input
            and output roots in the engine's config, or ``require_auth`` without a key.
    """

    daemon_threads = True
    allow_reuse_address = False
    max_packet_size = protocol.MAX_DATAGRAM_BYTES

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = protocol.DEFAULT_PORT,
        keyring: Keyring | None = None,
        require_auth: bool = False,
    ) -> None:
        self.require_auth = require_auth or not is_loopback(host)
        _check_exposure(engine, host, keyring, self.require_auth)
        self.engine = engine
        self._verifier = Verifier(keyring) if keyring is not None else None
        self._refusals = RateLimiter(UNAUTHORIZED_PER_S, UNAUTHORIZED_BURST)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self._send_lock = threading.Lock()
        self._handlers = threading.BoundedSemaphore(MAX_HANDLERS)
        self._dropped = 0
        self._drop_logged = 0.0
        self._routes: dict[str, Callable[[tuple[Any, ...], Address, str], None]] = {
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
        """Decodes and answers one datagram; any failure becomes an error reply.

        A signed datagram (``/stepedit/auth``) is checked and unwrapped, and its requests
        act for the key that signed it; an unsigned one acts for no key (``""``), where
        the engine allows that.
        """
        try:
            owner, messages = self._authenticate(data)
        except AuthError as e:
            self._refuse(source, e)
            return
        except ProtocolError as e:
            self.send_error(source, "", e.code, str(e))
            return
        answered: set[str] = set()
        for message in messages:
            if message.address in _ONCE_PER_DATAGRAM:
                if message.address in answered:
                    continue
                answered.add(message.address)
            self._dispatch(message, source, owner)

    def _authenticate(self, data: bytes) -> tuple[str, list[Message]]:
        """The sender's key and the requests of a datagram.

        Raises:
            AuthError: a bad envelope (even where signing is optional), or none where it
                is required.
            ProtocolError: the datagram, or the packet a valid envelope holds, is not OSC.
        """
        try:
            messages = protocol.decode_datagram(data)
        except ProtocolError:
            if self.require_auth:  # strangers learn nothing but that signing is required
                raise AuthError("missing", "this engine takes only signed messages") from None
            raise
        envelopes = [m for m in messages if m.address == ADDRESS["auth"]]
        if not envelopes:
            if self.require_auth:
                raise AuthError("missing", "this engine takes only signed messages")
            return "", messages
        if len(messages) > 1:
            raise AuthError("malformed", "a signed message must be the datagram's only one")
        if self._verifier is None:
            raise AuthError("unknown_key", "this engine has no keyring")
        owner, packet = self._verifier.verify(envelopes[0].args)
        return owner, protocol.decode_datagram(packet)

    def _refuse(self, source: Address, error: AuthError) -> None:
        """Answers ``unauthorized`` to the source only (never a ``reply_port``), a few
        times per second at most."""
        if self._refusals.allow():
            self.send_error(source, "", "unauthorized", str(error))
        else:
            _LOG.debug("unauthorized from %r, not answered: %s", source, error)

    def _dispatch(self, message: Message, source: Address, owner: str) -> None:
        route = self._routes.get(message.address)
        try:
            if route is None:
                raise ProtocolError("unknown_address", f"unknown address {message.address!r}")
            route(message.args, source, owner)
        except ProtocolError as e:
            self.send_error(self._reply_to(source, e.reply_port), e.job_id, e.code, str(e))
        except Exception as e:  # the engine survives every request
            _LOG.exception("request %r failed", message.address)
            self.send_error(source, "", "internal", f"{type(e).__name__}: {e}")

    @staticmethod
    def _reply_to(source: Address, reply_port: int | None) -> Address:
        return (source[0], reply_port) if reply_port else source

    # -- routes ----------------------------------------------------------------------------

    def _ping(self, args: tuple[Any, ...], source: Address, owner: str) -> None:
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

    def _capabilities(self, args: tuple[Any, ...], source: Address, owner: str) -> None:
        target = self._reply_to(source, protocol.decode_reply_port(args))
        listing = {"protocol_version": protocol.PROTOCOL_VERSION, **self.engine.capabilities()}
        self.send(protocol.encode(ADDRESS["capabilities"], json.dumps(listing)), target)

    def _edit(self, args: tuple[Any, ...], source: Address, owner: str) -> None:
        self._submit(*protocol.decode_edit(args), source, owner)

    def _transcribe(self, args: tuple[Any, ...], source: Address, owner: str) -> None:
        self._submit(*protocol.decode_transcribe(args), source, owner)

    def _submit(self, job_id: str, request: JobRequest, source: Address, owner: str) -> None:
        target = self._reply_to(source, request.reply_port)

        def reply(status: JobStatus) -> None:
            self.send(protocol.encode_status_message(status), target)

        self.engine.submit(job_id, request, reply, owner)

    def _cancel(self, args: tuple[Any, ...], source: Address, owner: str) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.cancel(job_id, owner)
        self.send(protocol.encode_status_message(status), self._reply_to(source, reply_port))

    def _status(self, args: tuple[Any, ...], source: Address, owner: str) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.status(job_id, owner)
        self.send(protocol.encode_status_message(status), self._reply_to(source, reply_port))


def _check_exposure(engine: Engine, host: str, keyring: Keyring | None, require_auth: bool) -> None:
    """Refuses settings that would let others use the engine unchecked.

    Raises:
        ValueError: saying which setting is missing and how to give it.
    """
    if require_auth and (keyring is None or len(keyring) == 0):
        raise ValueError(
            f"refusing to serve {host!r} without a secret: signed messages are required "
            "there, and the keyring is empty (create one with 'stepedit secret')"
        )
    if not is_loopback(host) and not (engine.config.input_roots and engine.config.output_roots):
        raise ValueError(
            f"refusing to serve {host!r} without input and output roots: name the folders "
            "clients may read and write with --input-root DIR and --output-root DIR"
        )
