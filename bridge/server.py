"""The OSC server: decodes requests, hands them to the engine, sends replies. Never renders.

The same dispatch serves UDP datagrams and SLIP-framed TCP packets (``bridge.tcp_server``);
a *peer* is where replies go: a UDP address (or the request's ``reply_port``), or the TCP
connection the request came on.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from bridge import protocol
from bridge.auth import AuthError, Keyring, RateLimiter, Verifier, is_loopback
from bridge.bounded import BoundedThreadingMixIn
from bridge.protocol import (
    ADDRESS,
    TRANSFER_ADDRESS,
    JobRequest,
    JobStatus,
    Message,
    ProtocolError,
)
from bridge.tcp_server import TcpServer
from engine.engine import Engine
from engine.errors import InputError, JobError, StepEditError
from engine.transfers import TransferStore

__all__ = ["StepEditServer"]

_LOG = logging.getLogger(__name__)

Address = tuple[str, int]


class Peer(Protocol):
    """Where replies to one request go."""

    name: str

    def send(self, packet: bytes) -> None: ...

    def to(self, reply_port: int | None) -> Peer:
        """The peer replies go to when a request names ``reply_port``."""
        ...


class _UdpPeer:
    """A UDP address; a ``reply_port`` moves replies to that port of the same host."""

    def __init__(self, server: StepEditServer, address: Address) -> None:
        self.server, self.address, self.name = server, address, repr(address)

    def send(self, packet: bytes) -> None:
        self.server.send(packet, self.address)

    def to(self, reply_port: int | None) -> _UdpPeer:
        return _UdpPeer(self.server, (self.address[0], reply_port)) if reply_port else self


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


class StepEditServer(BoundedThreadingMixIn, socketserver.UDPServer):
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

    max_threads = MAX_HANDLERS
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
        self._host = host
        self._verifier = Verifier(keyring) if keyring is not None else None
        self._refusals = RateLimiter(UNAUTHORIZED_PER_S, UNAUTHORIZED_BURST)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self._send_lock = threading.Lock()
        self._dropped = 0
        self._drop_logged = 0.0
        self._routes: dict[str, Callable[[tuple[Any, ...], Peer, str], None]] = {
            ADDRESS["ping"]: self._ping,
            ADDRESS["capabilities"]: self._capabilities,
            ADDRESS["edit"]: self._edit,
            ADDRESS["transcribe"]: self._transcribe,
            ADDRESS["cancel"]: self._cancel,
            ADDRESS["status"]: self._status,
            TRANSFER_ADDRESS["upload"]: self._upload,
            TRANSFER_ADDRESS["chunk"]: self._chunk,
            TRANSFER_ADDRESS["upload_release"]: self._upload_release,
            TRANSFER_ADDRESS["download"]: self._download,
            TRANSFER_ADDRESS["download_release"]: self._download_release,
        }
        self.tcp: TcpServer | None = None

    def serve_tcp(self) -> TcpServer:
        """Opens the TCP side (OSC 1.1, SLIP frames) on the same address and port number;
        run its ``serve_forever`` on a thread of its own.

        Raises:
            OSError: the TCP port is taken.
        """
        self.tcp = TcpServer(self.handle_frame, self._host, self.port)
        return self.tcp

    def server_close(self) -> None:
        super().server_close()
        if self.tcp is not None:
            self.tcp.server_close()

    def refuse(self, request: Any, client_address: Any) -> None:
        """Drops a datagram that came while ``MAX_HANDLERS`` were busy (logged, seldom)."""
        self._note_dropped()

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

    @staticmethod
    def send_error(
        peer: Peer, job_id: str, code: str, message: str, retry_after: float | None = None
    ) -> None:
        # Client strings are quoted (%r) so that none can forge a log line.
        _LOG.info("error to %s [%r] %s: %r", peer.name, job_id, code, message)
        hint = () if retry_after is None else (float(retry_after),)
        peer.send(protocol.encode(ADDRESS["error"], job_id, code, message, *hint))

    def handle_datagram(self, data: bytes, source: Address) -> None:
        """Decodes and answers one datagram; any failure becomes an error reply."""
        self._handle(data, _UdpPeer(self, source), protocol.decode_datagram)

    def handle_frame(self, data: bytes, peer: Peer) -> bool:
        """Decodes and answers one TCP frame on its connection's ``peer``.

        Returns:
            ``False`` when its signature was refused (the connection is then closed).
        """
        return self._handle(data, peer, protocol.decode_frame)

    def _handle(self, data: bytes, peer: Peer, decode: Callable[[bytes], list[Message]]) -> bool:
        """Decodes and answers one packet. A signed one (``/stepedit/auth``) is checked and
        unwrapped, and its requests act for the key that signed it; an unsigned one acts
        for no key (``""``), where the engine allows that.

        Returns:
            ``False`` when the signature was refused or missing where required.
        """
        try:
            owner, messages = self._authenticate(data, decode)
        except AuthError as e:
            self._refuse(peer, e)
            return False
        except ProtocolError as e:
            self.send_error(peer, "", e.code, str(e))
            return True
        answered: set[str] = set()
        for message in messages:
            if message.address in _ONCE_PER_DATAGRAM:
                if message.address in answered:
                    continue
                answered.add(message.address)
            self._dispatch(message, peer, owner)
        return True

    def _authenticate(
        self, data: bytes, decode: Callable[[bytes], list[Message]]
    ) -> tuple[str, list[Message]]:
        """The sender's key and the requests of a datagram.

        Raises:
            AuthError: a bad envelope (even where signing is optional), or none where it
                is required.
            ProtocolError: the datagram, or the packet a valid envelope holds, is not OSC.
        """
        try:
            messages = decode(data)
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
        return owner, decode(packet)

    def _refuse(self, peer: Peer, error: AuthError) -> None:
        """Answers ``unauthorized`` to the source only (never a ``reply_port``), a few
        times per second at most."""
        if self._refusals.allow():
            self.send_error(peer, "", "unauthorized", str(error))
        else:
            _LOG.debug("unauthorized from %s, not answered: %s", peer.name, error)

    def _dispatch(self, message: Message, peer: Peer, owner: str) -> None:
        route = self._routes.get(message.address)
        try:
            if route is None:
                raise ProtocolError("unknown_address", f"unknown address {message.address!r}")
            route(message.args, peer, owner)
        except ProtocolError as e:
            self.send_error(peer.to(e.reply_port), e.job_id, e.code, str(e))
        except StepEditError as e:  # a transfer the engine refused
            about = message.args[0] if message.args and isinstance(message.args[0], str) else ""
            self.send_error(peer, about, e.code, str(e), getattr(e, "retry_after", None))
        except Exception as e:  # the engine survives every request
            _LOG.exception("request %r failed", message.address)
            self.send_error(peer, "", "internal", f"{type(e).__name__}: {e}")

    # -- routes ----------------------------------------------------------------------------

    def _ping(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        target = peer.to(protocol.decode_reply_port(args))
        backend = self.engine.backend
        pong = protocol.encode(
            ADDRESS["pong"],
            protocol.PROTOCOL_VERSION,
            self.engine.version,
            backend.name,
            backend.device,
        )
        target.send(pong)

    def _capabilities(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        target = peer.to(protocol.decode_reply_port(args))
        listing = {"protocol_version": protocol.PROTOCOL_VERSION, **self.engine.capabilities()}
        target.send(protocol.encode(ADDRESS["capabilities"], json.dumps(listing)))

    def _edit(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        self._submit(*protocol.decode_edit(args), peer, owner)

    def _transcribe(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        self._submit(*protocol.decode_transcribe(args), peer, owner)

    def _submit(self, job_id: str, request: JobRequest, peer: Peer, owner: str) -> None:
        target = peer.to(request.reply_port)

        def reply(status: JobStatus) -> None:
            target.send(protocol.encode_status_message(status))

        self.engine.submit(job_id, request, reply, owner)

    def _cancel(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.cancel(job_id, owner)
        peer.to(reply_port).send(protocol.encode_status_message(status))

    def _status(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        job_id, reply_port = protocol.decode_job_query(args)
        status = self.engine.status(job_id, owner)
        peer.to(reply_port).send(protocol.encode_status_message(status))

    # -- transfers (docs/protocol.md, "Audio over TCP") -----------------------------------

    def _store(self) -> TransferStore:
        if self.engine.transfers is None:
            raise InputError("this engine keeps no uploads: it runs without a state folder")
        return self.engine.transfers

    def _upload(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        upload_id, size = protocol.decode_upload(args)
        offset = self._store().begin(owner, upload_id, size)
        peer.send(protocol.encode(TRANSFER_ADDRESS["upload_offset"], upload_id, offset, size))

    def _chunk(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        upload_id, offset, data = protocol.decode_chunk(args)
        held, size = self._store().write(owner, upload_id, offset, data)
        peer.send(protocol.encode(TRANSFER_ADDRESS["upload_offset"], upload_id, held, size))

    def _upload_release(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        upload_id = protocol.decode_transfer_id(args, upload=True)
        self._store().release_upload(owner, upload_id)
        peer.send(protocol.encode(TRANSFER_ADDRESS["released"], upload_id))

    def _download(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        job_id, offset, length, file = protocol.decode_download(args)
        files = self.engine.result_files(job_id, owner)
        if file >= len(files):
            raise JobError(
                f"job {job_id!r} has no file {file}: its result lists {len(files) - 1} passes"
            )
        data, total, digest = self._store().read_result(owner, files[file], offset, length)
        peer.send(protocol.encode(TRANSFER_ADDRESS["data"], job_id, offset, total, digest, data))

    def _download_release(self, args: tuple[Any, ...], peer: Peer, owner: str) -> None:
        job_id = protocol.decode_transfer_id(args)
        for path in self.engine.result_files(job_id, owner):  # its pass files too
            self._store().release_result(owner, path)
        peer.send(protocol.encode(TRANSFER_ADDRESS["released"], job_id))


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
