"""StepEdit OSC protocol v1: addresses, argument types, request JSON and error codes.

Pure: no sockets and no engine imports. The server and every Python client import this
module; ``reaper_scripts/StepEdit/codec.lua`` mirrors it and a test keeps the two in step.
See docs/protocol.md for the client author's view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.osc import Message, OscError, decode_packet, encode

__all__ = [
    "ADDRESS",
    "DEFAULT_PORT",
    "ERROR_CODES",
    "JOB_STATES",
    "MAX_BUNDLE_DEPTH",
    "MAX_CHUNK_BYTES",
    "MAX_DATAGRAM_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGES",
    "MAX_RESULT_BYTES",
    "MAX_SECONDS",
    "PROTOCOL_VERSION",
    "RESULT_KEYS",
    "TRANSFER_ADDRESS",
    "EditRequest",
    "JobRequest",
    "JobStatus",
    "Message",
    "ProtocolError",
    "TranscribeRequest",
    "build_result",
    "build_transcript_result",
    "decode_chunk",
    "decode_datagram",
    "decode_download",
    "decode_edit",
    "decode_frame",
    "decode_job_query",
    "decode_reply_port",
    "decode_transcribe",
    "decode_transfer_id",
    "decode_upload",
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
    "error": "/stepedit/error",  # job_id:s code:s message:s [retry_after:f (queue_full)]
    "cancel": "/stepedit/cancel",  # job_id:s [reply_port:i] -> the job's latest message
    "status": "/stepedit/status",  # job_id:s [reply_port:i] -> the job's latest message
    "auth": "/stepedit/auth",  # key_id:s timestamp:s nonce:s tag:s packet:b (bridge.auth)
}

# Additions to v1 over TCP only (see docs/protocol.md, "Audio over TCP"): moving audio
# to and from an engine that cannot read the client's files. Kept apart from ``ADDRESS``,
# which the REAPER library mirrors; it moves audio through ``stepedit send`` instead.
TRANSFER_ADDRESS = {
    "upload": "/stepedit/upload",  # upload_id:s size:i -> upload_offset
    "chunk": "/stepedit/upload/chunk",  # upload_id:s offset:i data:b -> upload_offset
    "upload_offset": "/stepedit/upload/offset",  # upload_id:s offset:i size:i (held/declared)
    "upload_release": "/stepedit/upload/release",  # upload_id:s -> released
    "download": "/stepedit/download",  # job_id:s offset:i length:i [file:i] -> data
    "data": "/stepedit/data",  # job_id:s offset:i total:i sha256:s data:b
    "download_release": "/stepedit/download/release",  # job_id:s -> released
    "released": "/stepedit/released",  # id:s
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
    "forbidden_path": "a path lies outside the engine's configured input or output roots",
    "unauthorized": "the request's authentication is missing, wrong, stale or replayed",
    "unknown_job": "no job with that id",
    "queue_full": "too many jobs waiting; retry after the hint in the error's 4th argument",
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

# Largest request datagram the engine reads whole (the UDP payload limit over IPv4).
MAX_DATAGRAM_BYTES = 65_507

# Most audio bytes in one upload chunk or download reply, and the largest TCP frame (a
# chunk, its arguments and a signature envelope around it).
MAX_CHUNK_BYTES = 1 << 20
MAX_FRAME_BYTES = MAX_CHUNK_BYTES + 4096

# Bounds on what one datagram may ask of the decoder: bundles nested at most this deep,
# at most this many messages in all, request JSON nested at most this deep.
MAX_BUNDLE_DEPTH = 8
MAX_MESSAGES = 16
MAX_JSON_DEPTH = 32

# Largest ``start`` or ``length`` a request may name, in seconds (about 115 days).
MAX_SECONDS = 1e7

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

# An upload's id: the SHA-256 of its bytes, lowercase hex.
_UPLOAD_ID = re.compile(r"[0-9a-f]{64}")

# Fields every job request may carry, and those of each kind.
_JOB_FIELDS = {
    "input",
    "input_upload",
    "start",
    "length",
    "output_dir",
    "reply_port",
    "status_file",
}
_EDIT_FIELDS = _JOB_FIELDS | {"edit"}
_TRANSCRIBE_FIELDS = _JOB_FIELDS | {"language", "text"}


class ProtocolError(ValueError):
    """A message or request that does not follow protocol v1.

    Attributes:
        code: One of ``ERROR_CODES``.
        job_id: The job the bad message named, or ``""``.
        reply_port: The request's ``reply_port`` when its JSON could be read, else ``None``.
    """

    def __init__(self, code: str, message: str, job_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.job_id = job_id
        self.reply_port: int | None = None


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """What every job request says: which slice of which file, where results and replies go.

    Attributes:
        input: Absolute path of the source audio file (``""`` when ``input_upload`` names
            the audio instead).
        input_upload: The id of an upload of this key (``TRANSFER_ADDRESS``) holding the
            audio, instead of a path.
        start: Seconds into the file where the slice starts.
        length: Seconds in the slice; ``None`` means to the end of the file.
        output_dir: Folder for the result; ``None`` means the input's folder.
        reply_port: UDP port on the sender's host for replies; ``None`` means the
            datagram's source address.
        status_file: Absolute path the engine rewrites atomically at every state change.
    """

    input: str
    input_upload: str | None = None
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
        retry_after: For ``queue_full``: seconds after which a resend is likely accepted.
    """

    job_id: str
    state: str
    progress: float = 0.0
    stage: str = "queued"
    output_path: str = ""
    result: Mapping[str, Any] | None = None
    error: tuple[str, str] | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.state not in JOB_STATES:
            raise ValueError(f"state must be one of {JOB_STATES}, got {self.state!r}")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


def decode_datagram(data: bytes) -> list[Message]:
    """Decodes one UDP datagram (an OSC message or bundle) into messages.

    The parser is bounded: element sizes must be positive and lie within the datagram,
    bundles nest at most ``MAX_BUNDLE_DEPTH`` deep and hold at most ``MAX_MESSAGES``
    messages in all. Strings that are not UTF-8 keep their bad bytes as surrogate escapes,
    which the request decoders refuse with ``bad_request``.

    Raises:
        ProtocolError: code ``malformed``.
    """
    return _decode_bounded(data, "datagram", MAX_DATAGRAM_BYTES)


def decode_frame(data: bytes) -> list[Message]:
    """Decodes one TCP frame (an OSC message or bundle) into messages, as
    ``decode_datagram`` does, with frames of up to ``MAX_FRAME_BYTES``.

    Raises:
        ProtocolError: code ``malformed``.
    """
    return _decode_bounded(data, "frame", MAX_FRAME_BYTES)


def _decode_bounded(data: bytes, what: str, max_bytes: int) -> list[Message]:
    if len(data) > max_bytes:
        raise _malformed(f"{what} of {len(data)} bytes exceeds {max_bytes}")
    try:
        return decode_packet(data, MAX_BUNDLE_DEPTH, MAX_MESSAGES)
    except OscError as e:
        raise _malformed(str(e)) from e


def _malformed(message: str) -> ProtocolError:
    return ProtocolError("malformed", f"not a valid OSC packet: {message}")


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


def _check_job_id(job_id: str) -> None:
    if not job_id or len(job_id) > 128 or not job_id.isprintable():
        raise ProtocolError(
            "bad_arguments", f"job_id must be 1-128 printable characters, got {job_id!r}"
        )


def decode_job_query(args: Sequence[Any]) -> tuple[str, int | None]:
    """Arguments of cancel/status: ``job_id:s [reply_port:i]``."""
    if not 1 <= len(args) <= 2 or not isinstance(args[0], str) or not args[0]:
        raise ProtocolError("bad_arguments", "expected job_id:s [reply_port:i]")
    _check_job_id(args[0])
    return args[0], _port(args[1], "reply_port", args[0]) if len(args) == 2 else None


def decode_upload(args: Sequence[Any]) -> tuple[str, int]:
    """Arguments of ``/stepedit/upload``: ``upload_id:s size:i`` (the id is the bytes'
    SHA-256 in lowercase hex)."""
    if len(args) != 2 or not isinstance(args[1], int) or isinstance(args[1], bool):
        raise ProtocolError("bad_arguments", "expected upload_id:s size:i")
    upload_id = decode_transfer_id(args[:1], upload=True)
    if args[1] <= 0:
        raise ProtocolError("bad_arguments", f"size must be positive, got {args[1]}", upload_id)
    return upload_id, args[1]


def decode_chunk(args: Sequence[Any]) -> tuple[str, int, bytes]:
    """Arguments of ``/stepedit/upload/chunk``: ``upload_id:s offset:i data:b``."""
    if len(args) != 3 or not isinstance(args[2], bytes):
        raise ProtocolError("bad_arguments", "expected upload_id:s offset:i data:b")
    upload_id = decode_transfer_id(args[:1], upload=True)
    offset = _non_negative(args[1], "offset", upload_id)
    if not 0 < len(args[2]) <= MAX_CHUNK_BYTES:
        raise ProtocolError(
            "too_long", f"a chunk holds 1-{MAX_CHUNK_BYTES} bytes, got {len(args[2])}", upload_id
        )
    return upload_id, offset, args[2]


def decode_download(args: Sequence[Any]) -> tuple[str, int, int, int]:
    """Arguments of ``/stepedit/download``: ``job_id:s offset:i length:i [file:i]`` (length
    at most ``MAX_CHUNK_BYTES``; ``file`` 0, the default, is the result and k the result's
    k-th pass file, a v1 addition for ``decode_passes``).

    Returns:
        The job id, offset, length and file number.
    """
    if len(args) not in (3, 4):
        raise ProtocolError("bad_arguments", "expected job_id:s offset:i length:i [file:i]")
    job_id = decode_transfer_id(args[:1])
    offset = _non_negative(args[1], "offset", job_id)
    length = _non_negative(args[2], "length", job_id)
    if not 0 < length <= MAX_CHUNK_BYTES:
        raise ProtocolError(
            "too_long", f"length must be 1-{MAX_CHUNK_BYTES} bytes, got {length}", job_id
        )
    file = _non_negative(args[3], "file", job_id) if len(args) == 4 else 0
    return job_id, offset, length, file


def decode_transfer_id(args: Sequence[Any], upload: bool = False) -> str:
    """The single ``id:s`` argument of a release (a job id, or an upload id when
    ``upload``), also the first argument of the other transfer messages."""
    if len(args) != 1 or not isinstance(args[0], str):
        raise ProtocolError("bad_arguments", "expected id:s")
    if upload and not _UPLOAD_ID.fullmatch(args[0]):
        raise ProtocolError(
            "bad_arguments", f"an upload id is 64 lowercase hex characters, got {args[0]!r}"
        )
    _check_job_id(args[0])
    return str(args[0])


def _non_negative(value: Any, name: str, job_id: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError("bad_arguments", f"{name} must be an int >= 0, got {value!r}", job_id)
    return value


def _number(data: Mapping[str, Any], name: str, job_id: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not -MAX_SECONDS <= value <= MAX_SECONDS  # NaN fails too; huge ints never convert
    ):
        shown = f"{value!r}"[:40]
        raise ProtocolError(
            "bad_request",
            f"'{name}' must be a finite number of seconds up to {MAX_SECONDS:g}, got {shown}",
            job_id,
        )
    return float(value)


def _absolute_path(data: Mapping[str, Any], name: str, job_id: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_request", f"'{name}' must be a non-empty string path", job_id)
    if not _is_utf8(value):
        raise ProtocolError("bad_request", f"'{name}' is not valid UTF-8: {value!r}", job_id)
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
    _check_job_id(job_id)
    if len(text) > MAX_DATAGRAM_BYTES:
        raise ProtocolError("bad_request", "request JSON is too long", job_id)
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ProtocolError(
            "invalid_json", f"request JSON is nested deeper than {MAX_JSON_DEPTH}", job_id
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: also ints of > 4300 digits
        raise ProtocolError("invalid_json", f"request is not valid JSON: {e}", job_id) from e
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "request JSON must be an object", job_id)
    reply_port = _port(data.get("reply_port"), "'reply_port'", job_id)
    try:
        common = _common_fields(data, fields, job_id)
        common["reply_port"] = reply_port
        return job_id, data, common
    except ProtocolError as e:
        e.reply_port = reply_port  # the client named where it listens: answer there
        raise


def _common_fields(data: dict[str, Any], fields: set[str], job_id: str) -> dict[str, Any]:
    unknown = set(data) - fields
    if unknown:
        shown = ", ".join(repr(name) for name in sorted(unknown))
        raise ProtocolError("bad_request", f"unknown request field(s): {shown}", job_id)
    if not _is_utf8(data):
        raise ProtocolError("bad_request", "request holds a string that is not valid UTF-8", job_id)
    input_path = _absolute_path(data, "input", job_id)
    upload = data.get("input_upload")
    if (input_path is None) == (upload is None):
        raise ProtocolError(
            "bad_request",
            "give one of 'input' (absolute path of the audio file) or 'input_upload'",
            job_id,
        )
    if upload is not None and not (isinstance(upload, str) and _UPLOAD_ID.fullmatch(upload)):
        raise ProtocolError(
            "bad_request", "'input_upload' must be an upload id (64 hex characters)", job_id
        )
    start = _number(data, "start", job_id) or 0.0
    length = _number(data, "length", job_id)
    if start < 0:
        raise ProtocolError("bad_request", f"'start' must be >= 0, got {start}", job_id)
    if length is not None and length <= 0:
        raise ProtocolError("bad_request", f"'length' must be > 0, got {length}", job_id)
    return {
        "input": input_path or "",
        "input_upload": upload,
        "start": start,
        "length": length,
        "output_dir": _absolute_path(data, "output_dir", job_id),
        "status_file": _absolute_path(data, "status_file", job_id),
    }


def _json_depth(text: str) -> int:
    """How deeply ``[`` and ``{`` nest in JSON text (strings skipped); stops past the bound."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _is_utf8(value: Any) -> bool:
    """Whether every string in a decoded JSON value (keys included) encodes as UTF-8.

    Lone surrogates come from bytes that were not UTF-8 or from ``\\udcXX`` escapes; no
    file system call or reply could carry them.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_is_utf8(k) and _is_utf8(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_utf8(v) for v in value)
    return True


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
        error = ProtocolError(
            "bad_request", "'edit' must be an object with at least 'type'", job_id
        )
        error.reply_port = common["reply_port"]
        raise error
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
            error = ProtocolError("bad_request", f"'{name}' must be a string", job_id)
            error.reply_port = common["reply_port"]
            raise error
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
    if status.retry_after is not None:
        return encode(ADDRESS["error"], status.job_id, code, message, float(status.retry_after))
    return encode(ADDRESS["error"], status.job_id, code, message)


def encode_status(
    job_id: str,
    state: str,
    progress: float,
    stage: str,
    output_path: str = "",
    result: Mapping[str, Any] | None = None,
    error: tuple[str, str] | None = None,
    retry_after: float | None = None,
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
        if retry_after is not None:
            status["error"]["retry_after"] = round(retry_after, 3)
    return json.dumps(status, ensure_ascii=False)
