"""StepEdit OSC protocol v1: addresses, argument types, request JSON and error codes.

Pure: no sockets and no engine imports. The server and every Python client import this
module; ``reaper_scripts/StepEdit/codec.lua`` mirrors it and a test keeps the two in step.
See docs/protocol.md for the client author's view.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

__all__ = [
    "ADDRESS",
    "DEFAULT_PORT",
    "ERROR_CODES",
    "JOB_STATES",
    "MAX_RESULT_BYTES",
    "PROTOCOL_VERSION",
    "RESULT_KEYS",
    "EditRequest",
    "JobRequest",
    "JobStatus",
    "Message",
    "ProtocolError",
    "TranscribeRequest",
    "build_result",
    "build_transcript_result",
    "decode_datagram",
    "decode_edit",
    "decode_job_query",
    "decode_reply_port",
    "decode_transcribe",
    "encode",
    "encode_status",
    "encode_status_message",
]

PROTOCOL_VERSION = 1
DEFAULT_PORT = 9301

# Requests (client -> engine) and replies (engine -> client), by role.
ADDRESS = {
    "ping": "/stepedit/ping",  # [reply_port:i] -> pong
    "pong": "/stepedit/pong",  # protocol_version:i engine_version:s backend:s device:s
    "capabilities": "/stepedit/capabilities",  # [reply_port:i] -> capabilities json:s
    "edit": "/stepedit/edit",  # job_id:s request:s -> accepted, progress..., done | error
    "transcribe": "/stepedit/transcribe",  # job_id:s request:s -> as edit; result = transcript
    "accepted": "/stepedit/accepted",  # job_id:s
    "progress": "/stepedit/progress",  # job_id:s fraction:f stage:s
    "done": "/stepedit/done",  # job_id:s output_path:s result:s (JSON)
    "error": "/stepedit/error",  # job_id:s code:s message:s
    "cancel": "/stepedit/cancel",  # job_id:s [reply_port:i] -> the job's latest message
    "status": "/stepedit/status",  # job_id:s [reply_port:i] -> the job's latest message
}

# Every code a client can receive in /stepedit/error, with what it means.
ERROR_CODES: Mapping[str, str] = {
    "malformed": "the datagram is not a valid OSC packet",
    "unknown_address": "no such OSC address",
    "bad_arguments": "wrong number or types of OSC arguments",
    "invalid_json": "the request argument is not valid JSON",
    "bad_request": "a request field is missing, of the wrong type or out of range",
    "invalid_edit": "unknown edit type or option, bad iterations or positions",
    "unsupported": "the running backend cannot render this edit",
    "input_not_found": "the input file does not exist",
    "input_not_audio": "the input is a directory or not a readable audio file",
    "input_corrupt": "the input file is truncated or damaged",
    "bad_slice": "start/length lie outside the file or are not positive",
    "silent_input": "the slice holds only silence",
    "non_finite": "the input holds NaN or infinite samples",
    "too_long": "the slice is longer than the engine's configured maximum",
    "output_unwritable": "the output folder is missing or not writable",
    "unknown_job": "no job with that id",
    "queue_full": "too many jobs waiting; retry later",
    "cancelled": "the job was cancelled",
    "shutting_down": "the engine is stopping and takes no new jobs",
    "backend_failed": "the backend failed while rendering",
    "checkpoint": "model files are missing or malformed",
    "internal": "an unexpected engine error (see the engine log)",
}

# States of a job, as the status file and /stepedit/status report them.
JOB_STATES = ("queued", "running", "done", "error", "cancelled")
FINISHED_STATES = frozenset({"done", "error", "cancelled"})

# Largest result JSON sent in a reply: a UDP datagram holds at most 65,507 bytes, and the
# address, job id and output path share it.
MAX_RESULT_BYTES = 60_000

# Keys of the result JSON (``/stepedit/done``) that the protocol defines; a backend's own
# fields (``generation``, ``insertions``, ...) are added beside them and never replace them.
RESULT_KEYS = (
    "duration",
    "sample_rate",
    "channels",
    "backend",
    "edit",
    "input",
    "start",
    "length",
    "timings",
)

# Fields every job request may carry, and those of each kind.
_JOB_FIELDS = {"input", "start", "length", "output_dir", "reply_port", "status_file"}
_EDIT_FIELDS = _JOB_FIELDS | {"edit"}
_TRANSCRIBE_FIELDS = _JOB_FIELDS | {"language", "text"}


class ProtocolError(ValueError):
    """A message or request that does not follow protocol v1.

    Attributes:
        code: One of ``ERROR_CODES``.
        job_id: The job the bad message named, or ``""``.
    """

    def __init__(self, code: str, message: str, job_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.job_id = job_id


@dataclass(frozen=True)
class Message:
    """One decoded OSC message."""

    address: str
    args: tuple[Any, ...]


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """What every job request says: which slice of which file, where results and replies go.

    Attributes:
        input: Absolute path of the source audio file.
        start: Seconds into the file where the slice starts.
        length: Seconds in the slice; ``None`` means to the end of the file.
        output_dir: Folder for the result; ``None`` means the input's folder.
        reply_port: UDP port on the sender's host for replies; ``None`` means the
            datagram's source address.
        status_file: Absolute path the engine rewrites atomically at every state change.
    """

    input: str
    start: float = 0.0
    length: float | None = None
    output_dir: str | None = None
    reply_port: int | None = None
    status_file: str | None = None


@dataclass(frozen=True, kw_only=True)
class EditRequest(JobRequest):
    """The request JSON of ``/stepedit/edit``, checked for shape (not for meaning).

    Attributes:
        edit: The raw ``edit`` object; the engine validates its vocabulary.
    """

    edit: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class TranscribeRequest(JobRequest):
    """The request JSON of ``/stepedit/transcribe``.

    Attributes:
        language: ``"auto"``, ``"en"`` or ``"zh"`` (the engine checks which it has).
        text: The slice's transcript when known: its words are aligned instead of
            recognised.
    """

    language: str = "auto"
    text: str = ""


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job: what ``/stepedit/status``, the replies and the status file report.

    Attributes:
        job_id: The job's id.
        state: One of ``JOB_STATES``.
        progress: 0..1.
        stage: Current stage name.
        output_path: The result file once ``done``.
        result: The result JSON object once ``done`` (see ``build_result``).
        error: ``(code, message)`` once ``error`` or ``cancelled``.
    """

    job_id: str
    state: str
    progress: float = 0.0
    stage: str = "queued"
    output_path: str = ""
    result: Mapping[str, Any] | None = None
    error: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.state not in JOB_STATES:
            raise ValueError(f"state must be one of {JOB_STATES}, got {self.state!r}")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


def decode_datagram(data: bytes) -> list[Message]:
    """Decodes one UDP datagram (an OSC message or bundle) into messages.

    Raises:
        ProtocolError: code ``malformed``.
    """
    try:
        packet = OscPacket(data)
    except (ParseError, ValueError, IndexError, TypeError) as e:  # python-osc leaks a few
        raise ProtocolError("malformed", f"not a valid OSC packet: {e}") from e
    return [Message(m.message.address, tuple(m.message.params)) for m in packet.messages]


def encode(address: str, *args: Any) -> bytes:
    """Builds an OSC message; ``int`` -> i, ``float`` -> f, ``str`` -> s."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, int | float | str):
            raise TypeError(f"protocol arguments are int, float or str, got {arg!r}")
        kind = "i" if isinstance(arg, int) else "f" if isinstance(arg, float) else "s"
        builder.add_arg(arg, kind)
    return builder.build().dgram


def _port(value: Any, where: str, job_id: str = "") -> int | None:
    if value is None or value == 0:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise ProtocolError(
            "bad_arguments", f"{where} must be a port 1-65535, got {value!r}", job_id
        )
    return value


def decode_reply_port(args: Sequence[Any]) -> int | None:
    """Arguments of ping/capabilities: an optional ``reply_port:i`` (0 = source address)."""
    if len(args) > 1:
        raise ProtocolError("bad_arguments", f"expected [reply_port:i], got {len(args)} arguments")
    return _port(args[0], "reply_port") if args else None


def decode_job_query(args: Sequence[Any]) -> tuple[str, int | None]:
    """Arguments of cancel/status: ``job_id:s [reply_port:i]``."""
    if not 1 <= len(args) <= 2 or not isinstance(args[0], str) or not args[0]:
        raise ProtocolError("bad_arguments", "expected job_id:s [reply_port:i]")
    return args[0], _port(args[1], "reply_port", args[0]) if len(args) == 2 else None


def _number(data: Mapping[str, Any], name: str, job_id: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError(
            "bad_request", f"'{name}' must be a number of seconds, got {value!r}", job_id
        )
    return float(value)


def _absolute_path(data: Mapping[str, Any], name: str, job_id: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_request", f"'{name}' must be a non-empty string path", job_id)
    # Absolute on POSIX or Windows ("C:\\..." / "\\\\server\\share"), whatever the engine runs on.
    if not (value.startswith(("/", "\\\\")) or (len(value) > 2 and value[1:3] in (":\\", ":/"))):
        raise ProtocolError(
            "bad_request", f"'{name}' must be an absolute path, got {value!r}", job_id
        )
    return value


def _decode_job(
    args: Sequence[Any], fields: set[str]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The part every job request shares: ``job_id:s request:s`` with the common fields.

    Returns:
        The job id, the decoded JSON object, and the common fields for ``JobRequest``.
    """
    if len(args) != 2 or not all(isinstance(a, str) for a in args):
        job_id = args[0] if args and isinstance(args[0], str) else ""
        raise ProtocolError("bad_arguments", "expected job_id:s request:s (JSON)", job_id)
    job_id, text = args
    if not job_id or len(job_id) > 128:
        raise ProtocolError("bad_arguments", "job_id must be 1-128 characters")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProtocolError("invalid_json", f"request is not valid JSON: {e}", job_id) from e
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "request JSON must be an object", job_id)
    unknown = set(data) - fields
    if unknown:
        raise ProtocolError(
            "bad_request", f"unknown request field(s): {', '.join(sorted(unknown))}", job_id
        )
    input_path = _absolute_path(data, "input", job_id)
    if input_path is None:
        raise ProtocolError(
            "bad_request", "'input' (absolute path of the audio file) is required", job_id
        )
    start = _number(data, "start", job_id) or 0.0
    length = _number(data, "length", job_id)
    if start < 0:
        raise ProtocolError("bad_request", f"'start' must be >= 0, got {start}", job_id)
    if length is not None and length <= 0:
        raise ProtocolError("bad_request", f"'length' must be > 0, got {length}", job_id)
    common = {
        "input": input_path,
        "start": start,
        "length": length,
        "output_dir": _absolute_path(data, "output_dir", job_id),
        "reply_port": _port(data.get("reply_port"), "'reply_port'", job_id),
        "status_file": _absolute_path(data, "status_file", job_id),
    }
    return job_id, data, common


def decode_edit(args: Sequence[Any]) -> tuple[str, EditRequest]:
    """Decodes ``/stepedit/edit job_id:s request:s``.

    Returns:
        The job id and the request.

    Raises:
        ProtocolError: ``bad_arguments``, ``invalid_json`` or ``bad_request``; its
            ``job_id`` is set whenever the id could be read, so the client hears back.
    """
    job_id, data, common = _decode_job(args, _EDIT_FIELDS)
    if not isinstance(data.get("edit"), dict):
        raise ProtocolError("bad_request", "'edit' must be an object with at least 'type'", job_id)
    return job_id, EditRequest(edit=data["edit"], **common)


def decode_transcribe(args: Sequence[Any]) -> tuple[str, TranscribeRequest]:
    """Decodes ``/stepedit/transcribe job_id:s request:s``.

    Raises:
        ProtocolError: as ``decode_edit``.
    """
    job_id, data, common = _decode_job(args, _TRANSCRIBE_FIELDS)
    strings = {}
    for name in ("language", "text"):
        value = data.get(name, "")
        if not isinstance(value, str):
            raise ProtocolError("bad_request", f"'{name}' must be a string", job_id)
        strings[name] = value.strip()
    return job_id, TranscribeRequest(
        language=strings["language"] or "auto", text=strings["text"], **common
    )


def build_result(
    *,
    duration: float,
    sample_rate: int,
    channels: int,
    backend: str,
    edit: Mapping[str, Any],
    input: str,
    start: float,
    length: float | None,
    timings: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The result JSON of a finished edit; ``extra`` holds the backend's own fields.

    Extra fields named like a protocol key (``RESULT_KEYS``) are dropped, so a backend can
    never change what every client relies on.
    """
    result: dict[str, Any] = {
        "duration": round(duration, 6),
        "sample_rate": sample_rate,
        "channels": channels,
        "backend": backend,
        "edit": dict(edit),
        "input": input,
        "start": start,
        "length": length,
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    result.update((k, v) for k, v in (extra or {}).items() if k not in RESULT_KEYS)
    return result


def build_transcript_result(
    *,
    duration: float,
    sample_rate: int,
    channels: int,
    input: str,
    start: float,
    length: float | None,
    timings: Mapping[str, float],
    transcript: Mapping[str, Any],
    cache: str,
) -> dict[str, Any]:
    """The result JSON of a finished transcription.

    A transcript too long for one reply datagram keeps its words in the sidecar only:
    ``words`` is left out of the result and ``words_in_file`` is set.
    """
    result: dict[str, Any] = {
        "duration": round(duration, 6),
        "sample_rate": sample_rate,
        "channels": channels,
        "input": input,
        "start": start,
        "length": length,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "cache": cache,
        "transcript": dict(transcript),
    }
    if len(json.dumps(result, ensure_ascii=False).encode("utf-8")) > MAX_RESULT_BYTES:
        result["transcript"] = {k: v for k, v in transcript.items() if k != "words"}
        result["words_in_file"] = True
    return result


def encode_status_message(status: JobStatus) -> bytes:
    """The OSC reply that reports a job's status: accepted, progress, done or error."""
    if status.state == "queued":
        return encode(ADDRESS["accepted"], status.job_id)
    if status.state == "running":
        return encode(ADDRESS["progress"], status.job_id, float(status.progress), status.stage)
    if status.state == "done":
        result = json.dumps(status.result, ensure_ascii=False)
        return encode(ADDRESS["done"], status.job_id, status.output_path, result)
    code, message = status.error or ("internal", "no error recorded")
    return encode(ADDRESS["error"], status.job_id, code, message)


def encode_status(
    job_id: str,
    state: str,
    progress: float,
    stage: str,
    output_path: str = "",
    result: Mapping[str, Any] | None = None,
    error: tuple[str, str] | None = None,
) -> str:
    """The status-file JSON (one object, rewritten whole at every state change)."""
    if state not in JOB_STATES:
        raise ValueError(f"state must be one of {JOB_STATES}, got {state!r}")
    status: dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION,
        "job_id": job_id,
        "state": state,
        "progress": round(progress, 4),
        "stage": stage,
    }
    if output_path:
        status["output_path"] = output_path
    if result is not None:
        status["result"] = dict(result)
    if error is not None:
        status["error"] = {"code": error[0], "message": error[1]}
    return json.dumps(status, ensure_ascii=False)
