"""Python client of the StepEdit engine (protocol v1 over UDP, or over TCP with transfers)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import auth, protocol
from bridge.protocol import ADDRESS, TRANSFER_ADDRESS, Message
from bridge.slip import SlipDecoder, encode_frame

__all__ = ["ClientError", "JobOutcome", "Pong", "StepEditClient", "new_job_id"]

# Resend an unanswered edit request this often (UDP may drop it; the engine de-duplicates).
_RESEND_INTERVAL_S = 0.5
# Pause after ``queue_full`` when the engine gives no hint (an older engine), and the
# longest pause however often it doubles.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 60.0
# Chunks in flight at once during a transfer (each up to protocol.MAX_CHUNK_BYTES).
TRANSFER_WINDOW = 4
# Fractions of a transfer reported to ``on_progress``.
Progress = Callable[[float, str], None]


class ClientError(Exception):
    """The engine answered with an error, or did not answer.

    Attributes:
        code: A protocol error code, or ``"no_engine"`` when nothing answered.
        retry_after: For ``queue_full``: the engine's hint, in seconds, when it gave one.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after

    @classmethod
    def from_reply(cls, message: Message) -> ClientError:
        """The error a ``/stepedit/error`` reply reports."""
        hint = message.args[3] if len(message.args) > 3 else None
        return cls(
            str(message.args[1]),
            str(message.args[2]),
            float(hint) if isinstance(hint, int | float) else None,
        )


@dataclass(frozen=True)
class Pong:
    protocol_version: int
    engine_version: str
    backend: str
    device: str


@dataclass(frozen=True)
class JobOutcome:
    output_path: str
    result: dict[str, Any]


def new_job_id() -> str:
    return uuid.uuid4().hex


def _unauthorized(message: Message) -> bool:
    return message.address == ADDRESS["error"] and message.args[1:2] == ("unauthorized",)


def _no_engine(host: str, port: int) -> ClientError:
    return ClientError(
        "no_engine",
        f"no StepEdit engine answered at {host}:{port}; start it with 'stepedit serve'",
    )


class StepEditClient:
    """Talks to one engine from one UDP socket; replies come back to that socket.

    Args:
        host: The engine's address.
        port: Its port (UDP, and TCP with the same number).
        timeout: Seconds to wait for the engine to answer a request.
        queue_retries: How often a job refused with ``queue_full`` is sent again.
        secret: The engine's secret (``stepedit secret``); every message is then signed.
            ``None`` sends plain messages, which only a loopback engine takes.
        key_id: The secret's name in the engine's keyring.
        transport: ``"udp"`` (protocol v1 as every client speaks it) or ``"tcp"`` (OSC 1.1
            with SLIP frames: every v1 message, plus uploads and downloads).
        transfer_timeout: Seconds to wait for each transfer reply (TCP).

    Raises:
        ValueError: ``secret`` is not 64 hex characters, or an unknown transport.
        ClientError: ``no_engine`` when a TCP connection cannot be made.

    Example:
        >>> with StepEditClient("127.0.0.1", 9301) as client:
        ...     outcome = client.edit({"input": "/abs/take.wav", "edit": {"type": "denoise"}})
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = protocol.DEFAULT_PORT,
        timeout: float = 2.0,
        queue_retries: int = 8,
        secret: str | None = None,
        key_id: str = auth.DEFAULT_KEY_ID,
        transport: str = "udp",
        transfer_timeout: float = 60.0,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
        self.host, self.port, self.timeout = host, port, timeout
        self.transport, self.transfer_timeout = transport, transfer_timeout
        self.queue_retries = queue_retries
        self._secret = None if secret is None else auth.check_secret(secret)
        self.key_id = key_id
        self._received: deque[Message] = deque()  # decoded, not yet returned (TCP)
        self._decoder = SlipDecoder(protocol.MAX_FRAME_BYTES)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if transport == "tcp":
            try:
                self._sock = socket.create_connection((host, port), timeout=max(timeout, 1.0))
            except OSError as e:
                raise _no_engine(host, port) from e
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind(
            ("::1" if family == socket.AF_INET6 else "127.0.0.1", 0)
            if host in {"127.0.0.1", "localhost", "::1"}
            else ("", 0)
        )

    def __enter__(self) -> StepEditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def send(self, address: str, *args: Any) -> None:
        """Sends one message, signed anew (fresh time and nonce) when there is a secret."""
        data = protocol.encode(address, *args)
        if self._secret is not None:
            data = auth.sign(data, self.key_id, self._secret)
        if self.transport == "tcp":
            try:
                self._sock.sendall(encode_frame(data))
            except OSError as e:
                raise ClientError("no_engine", f"the connection to the engine broke: {e}") from e
        else:
            self._sock.sendto(data, (self.host, self.port))

    def receive(self, timeout: float) -> Message | None:
        """The next reply, or ``None`` when nothing arrived within ``timeout`` seconds."""
        if self.transport == "tcp":
            return self._receive_frame(timeout)
        self._sock.settimeout(max(timeout, 0.001))
        try:
            data = self._sock.recv(65536)
        except (TimeoutError, ConnectionRefusedError):  # refused: ICMP from a closed port
            return None
        messages = protocol.decode_datagram(data)
        return messages[0] if messages else None

    def _receive_frame(self, timeout: float) -> Message | None:
        deadline = time.monotonic() + timeout
        while not self._received:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._sock.settimeout(max(left, 0.001))
            try:
                data = self._sock.recv(1 << 18)
            except TimeoutError:
                return None
            except OSError as e:
                raise ClientError("no_engine", f"the connection to the engine broke: {e}") from e
            if not data:
                raise ClientError("no_engine", "the engine closed the connection")
            for frame in self._decoder.feed(data):
                self._received.extend(protocol.decode_frame(frame))
        return self._received.popleft()

    def _first_reply(
        self, address: str, args: tuple[Any, ...], wanted: Callable[[Message], bool]
    ) -> Message:
        """Sends one request and returns the first reply ``wanted`` accepts."""
        deadline = time.monotonic() + self.timeout
        self.send(address, *args)
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and wanted(message):
                return message
        raise _no_engine(self.host, self.port)

    def _request(self, address: str, reply: str) -> Message:
        message = self._first_reply(address, (), lambda m: m.address in {reply, ADDRESS["error"]})
        if message.address == ADDRESS["error"]:
            raise ClientError.from_reply(message)
        return message

    def ping(self) -> Pong:
        reply = self._request(ADDRESS["ping"], ADDRESS["pong"])
        return Pong(*reply.args)

    def capabilities(self) -> dict[str, Any]:
        reply = self._request(ADDRESS["capabilities"], ADDRESS["capabilities"])
        return dict(json.loads(reply.args[0]))

    def submit(
        self, job_id: str, request: Mapping[str, Any], address: str = ADDRESS["edit"]
    ) -> Message:
        """Sends a job request (an edit unless ``address`` says otherwise) and resends it
        until the engine answers about this job.

        Returns:
            The first reply naming the job (``accepted``, ``progress``, ``done`` or ``error``).

        Raises:
            ClientError: ``unauthorized``, or ``no_engine`` when nothing answered.
        """
        text = json.dumps(dict(request), ensure_ascii=False)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.send(address, job_id, text)
            resend_at = time.monotonic() + _RESEND_INTERVAL_S
            while (left := min(resend_at, deadline) - time.monotonic()) > 0:
                message = self.receive(left)
                if message is not None and message.args and message.args[0] == job_id:
                    return message
                if message is not None and _unauthorized(message):
                    raise ClientError.from_reply(message)
        raise _no_engine(self.host, self.port)

    def events(self, job_id: str, first: Message, stall_timeout: float = 30.0) -> Iterator[Message]:
        """Yields the job's replies from ``first`` until ``done`` or ``error``.

        When nothing arrives for a while, asks ``/stepedit/status`` (a lost datagram must not
        hang the client); gives up after ``stall_timeout`` seconds of silence.
        """
        message: Message | None = first
        silent_since = time.monotonic()
        while True:
            if message is not None and message.args and message.args[0] == job_id:
                silent_since = time.monotonic()
                yield message
                if message.address in {ADDRESS["done"], ADDRESS["error"]}:
                    return
            elif time.monotonic() - silent_since > stall_timeout:
                raise ClientError("no_engine", f"the engine stopped answering about job {job_id}")
            message = self.receive(1.0)
            if message is None:
                self.send(ADDRESS["status"], job_id)

    def edit(
        self,
        request: Mapping[str, Any],
        on_progress: Callable[[float, str], None] | None = None,
        job_id: str | None = None,
    ) -> JobOutcome:
        """Runs one edit to the end.

        Raises:
            ClientError: with the engine's error code and message.
        """
        return self.run(ADDRESS["edit"], request, on_progress, job_id)

    def transcribe(
        self,
        request: Mapping[str, Any],
        on_progress: Callable[[float, str], None] | None = None,
        job_id: str | None = None,
    ) -> JobOutcome:
        """Transcribes a slice; the outcome's path is the transcript sidecar.

        Raises:
            ClientError: with the engine's error code and message.
        """
        return self.run(ADDRESS["transcribe"], request, on_progress, job_id)

    def run(
        self,
        address: str,
        request: Mapping[str, Any],
        on_progress: Callable[[float, str], None] | None = None,
        job_id: str | None = None,
    ) -> JobOutcome:
        """Runs one job (``/stepedit/edit`` or ``/stepedit/transcribe``) to the end.

        A full queue is waited out (``queue_retries`` times at most): the request is sent
        again after the engine's ``retry_after`` hint, doubled on each further refusal, plus
        random jitter of up to half of it, so many clients do not retry in step.
        """
        job_id = job_id or new_job_id()
        for attempt in range(self.queue_retries + 1):
            try:
                return self._run_once(address, request, on_progress, job_id)
            except ClientError as e:
                if e.code != "queue_full" or attempt == self.queue_retries:
                    raise
                hint = e.retry_after if e.retry_after is not None else _RETRY_FIRST_S
            pause = min(_RETRY_MAX_S, hint * 2**attempt)
            time.sleep(pause + random.uniform(0, pause / 2))
        raise AssertionError("unreachable")  # the last attempt returned or raised

    def _run_once(
        self,
        address: str,
        request: Mapping[str, Any],
        on_progress: Callable[[float, str], None] | None,
        job_id: str,
    ) -> JobOutcome:
        for message in self.events(job_id, self.submit(job_id, request, address)):
            if message.address == ADDRESS["progress"] and on_progress is not None:
                on_progress(float(message.args[1]), str(message.args[2]))
            elif message.address == ADDRESS["done"]:
                return JobOutcome(str(message.args[1]), json.loads(message.args[2]))
            elif message.address == ADDRESS["error"]:
                raise ClientError.from_reply(message)
        raise ClientError("internal", f"job {job_id} ended without a result")

    # -- transfers (TCP) -------------------------------------------------------------------

    def upload(self, data: bytes, on_progress: Progress | None = None) -> str:
        """Uploads audio (the bytes of a WAV file) and returns its id, the bytes' SHA-256.

        An upload the engine holds already (whole or in part, from an earlier try) is not
        sent again: only the bytes it lacks.

        Raises:
            ClientError: the engine's refusal (``too_long``, ``queue_full``, ...), or
                ``no_engine``.
        """
        upload_id, size = hashlib.sha256(data).hexdigest(), len(data)
        self.send(TRANSFER_ADDRESS["upload"], upload_id, size)
        held = int(self._transfer_reply(upload_id, TRANSFER_ADDRESS["upload_offset"]).args[1])
        chunk = protocol.MAX_CHUNK_BYTES
        while held < size:
            expected: deque[int] = deque()
            sent = held
            while sent < size and len(expected) < TRANSFER_WINDOW:
                piece = data[sent : sent + chunk]
                self.send(TRANSFER_ADDRESS["chunk"], upload_id, sent, piece)
                sent += len(piece)
                expected.append(sent)
            while expected:
                reply = self._transfer_reply(upload_id, TRANSFER_ADDRESS["upload_offset"])
                held = int(reply.args[1])
                if held != expected.popleft():  # out of step: drain, then go on from held
                    for _ in expected:
                        held = int(self._transfer_reply(upload_id, reply.address).args[1])
                    break
                if on_progress is not None:
                    on_progress(held / size, "upload")
        return upload_id

    def download(self, job_id: str, on_progress: Progress | None = None, file: int = 0) -> bytes:
        """A file a finished job wrote in the engine's transfer store, checked against the
        SHA-256 the engine reports.

        Args:
            file: 0 for the result, k for the k-th file of the result's ``passes`` (an
                engine older than that addition answers ``bad_arguments``).

        Raises:
            ClientError: ``unknown_job`` (no such file of this key), ``input_corrupt``
                (the bytes do not match), ``no_engine``.
        """
        chunk = protocol.MAX_CHUNK_BYTES
        # The file is named only when it is not the result, so older engines serve results.
        which = (file,) if file else ()
        self.send(TRANSFER_ADDRESS["download"], job_id, 0, chunk, *which)
        first = self._transfer_reply(job_id, TRANSFER_ADDRESS["data"])
        total, digest = int(first.args[2]), str(first.args[3])
        out = bytearray(first.args[4])
        asked = len(out)
        pending: deque[int] = deque()
        while len(out) < total:
            while asked < total and len(pending) < TRANSFER_WINDOW:
                self.send(TRANSFER_ADDRESS["download"], job_id, asked, chunk, *which)
                pending.append(asked)
                asked += chunk
            reply = self._transfer_reply(job_id, TRANSFER_ADDRESS["data"])
            if int(reply.args[1]) != pending.popleft() or int(reply.args[1]) != len(out):
                raise ClientError("internal", f"download of {job_id} went out of step")
            out += reply.args[4]
            if on_progress is not None:
                on_progress(len(out) / total, "download")
        if hashlib.sha256(out).hexdigest() != digest:
            raise ClientError("input_corrupt", f"the result of {job_id} did not arrive intact")
        return bytes(out)

    def release(self, kind: str, item_id: str) -> None:
        """Frees an upload (``kind`` ``"upload"``) or a job's result (``"download"``) on
        the engine.

        Raises:
            ClientError: the engine's refusal, or ``no_engine``.
        """
        self.send(TRANSFER_ADDRESS[f"{kind}_release"], item_id)
        self._transfer_reply(item_id, TRANSFER_ADDRESS["released"])

    def _transfer_reply(self, item_id: str, address: str) -> Message:
        """The next reply about ``item_id`` at ``address``; an error about it raises."""
        deadline = time.monotonic() + self.transfer_timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None or not message.args or message.args[0] not in (item_id, ""):
                continue
            if message.address == ADDRESS["error"]:
                raise ClientError.from_reply(message)
            if message.address == address:
                return message
        raise _no_engine(self.host, self.port)

    def query(self, address: str, job_id: str) -> Message:
        """Sends ``/stepedit/cancel`` or ``/stepedit/status`` and returns the job's message."""
        return self._first_reply(
            address, (job_id,), lambda m: bool(m.args) and m.args[0] in {job_id, ""}
        )
