"""The ``stepedit edit/transcribe/send/batch`` options and flow for engines on other machines.

A job's audio travels (upload, render, download over TCP) with ``--remote``, when the
engine is not on loopback, or when spans are marked sensitive (they are masked before the
upload); unless a ``--map-path`` covers its paths, which then go mapped and nothing is
copied. ``send`` in that mode stays until the job ends, mirroring its statuses into the
request's local status file (with the local result path once downloaded), so a client
that polls that file works as with a local engine.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bridge import protocol
from bridge.client import ClientError, JobOutcome, Progress, StepEditClient
from bridge.privacy import MASK_SOUNDS, Sensitive, words_from_sidecar
from bridge.remote import PathMap, audio_travels, map_request, run_with_upload, unmap_path

__all__ = ["add_remote_options", "mirror_job", "run_job", "travels"]

_LOG = logging.getLogger(__name__)

# Opens a client of the engine the arguments name, over a transport ("udp" or "tcp").
Connect = Callable[[str], StepEditClient]


def add_remote_options(parser: argparse.ArgumentParser, *, privacy: bool = True) -> None:
    """The options of commands that run a job on files: remote mode, mapping, and with
    ``privacy`` the masking of sensitive spans (which name times of one source file, so
    ``batch`` goes without them: nothing is masked there)."""
    parser.add_argument(
        "--remote",
        action="store_true",
        help="send the slice's audio to the engine and fetch the result (TCP), as is done "
        "anyway for an engine that is not on loopback unless --map-path covers the paths",
    )
    parser.add_argument(
        "--map-path",
        "--map_path",
        dest="map_paths",
        metavar="CLIENT=ENGINE",
        type=_path_map,
        action="append",
        default=[],
        help="shared storage: a client path prefix and the engine's path for it; paths "
        "under it are sent mapped and no audio is copied (repeatable)",
    )
    if not privacy:
        parser.set_defaults(
            sensitive=[], sensitive_word=[], transcript=None, sensitive_sound="room_tone"
        )
        return
    parser.add_argument(
        "--sensitive",
        metavar="START-END",
        type=_time_range,
        action="append",
        default=[],
        help="seconds of the source file masked before the audio leaves this machine "
        "(repeatable; implies sending the audio)",
    )
    parser.add_argument(
        "--sensitive-word",
        "--sensitive_word",
        metavar="WORD",
        action="append",
        default=[],
        help="a word masked before upload wherever --transcript has it (repeatable)",
    )
    parser.add_argument(
        "--transcript",
        type=Path,
        help="transcript sidecar of the source (stepedit transcribe) giving word times",
    )
    parser.add_argument(
        "--sensitive-sound",
        "--sensitive_sound",
        choices=MASK_SOUNDS,
        default="room_tone",
        help="what masked spans become (default: %(default)s)",
    )


def _path_map(text: str) -> PathMap:
    try:
        return PathMap.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _time_range(text: str) -> tuple[float, float]:
    start, dash, end = text.partition("-")
    try:
        span = (float(start), float(end))
    except ValueError:
        span = (0.0, 0.0)
    if not dash or not 0 <= span[0] < span[1]:
        raise argparse.ArgumentTypeError(f"expected START-END in seconds, got {text!r}")
    return span


def _sensitive(args: argparse.Namespace) -> Sensitive | None:
    words: tuple[tuple[str, float, float], ...] = ()
    if args.sensitive_word:
        if args.transcript is None:
            raise SystemExit(f"stepedit {args.command}: --sensitive-word needs --transcript")
        try:
            words = words_from_sidecar(args.transcript)
        except (OSError, ValueError) as e:
            raise SystemExit(f"stepedit {args.command}: --transcript: {e}") from e
    sensitive = Sensitive(
        tuple(args.sensitive), tuple(args.sensitive_word), words, args.sensitive_sound
    )
    return sensitive or None


def travels(args: argparse.Namespace, request: Mapping[str, Any]) -> bool:
    """Whether the job's audio goes to the engine (rather than its paths)."""
    if args.sensitive or args.sensitive_word:
        return True
    return audio_travels(args.engine[0], request, remote=args.remote, maps=args.map_paths)


def run_job(
    args: argparse.Namespace,
    kind: str,
    request: Mapping[str, Any],
    connect: Connect,
    on_progress: Progress | None,
    job_id: str | None = None,
) -> JobOutcome:
    """Runs an edit or a transcription as the engine can reach its files.

    Returns:
        The local path of the result and the result JSON.

    Raises:
        ClientError: the engine's refusal or failure.
    """
    address = protocol.ADDRESS[kind]
    if travels(args, request):
        with connect("tcp") as client:
            return run_with_upload(
                client,
                address,
                request,
                sensitive=_sensitive(args),
                on_progress=on_progress,
                job_id=job_id,
            )
    mapped = map_request(request, args.map_paths) if args.map_paths else None
    with connect("udp") as client:
        outcome = client.run(address, mapped or request, on_progress, job_id)
    return JobOutcome(unmap_path(outcome.output_path, args.map_paths), outcome.result)


def mirror_job(
    args: argparse.Namespace, request: dict[str, Any], connect: Connect, job_id: str
) -> int:
    """``stepedit send`` for a job whose audio travels: runs it to the end here, writing
    each status into the request's (local) status file, the last with the local result.

    Returns:
        The exit code: 0 once done, 1 on the engine's error.
    """
    from engine.status_files import StatusFiles

    status_path = request.pop("status_file", None)
    files = StatusFiles(())
    print(job_id, flush=True)

    def show(status: protocol.JobStatus) -> None:
        if isinstance(status_path, str):
            files.write(Path(status_path), status)

    def progress(fraction: float, stage: str) -> None:
        show(protocol.JobStatus(job_id, "running", fraction, stage))

    show(protocol.JobStatus(job_id, "queued", 0.0, "upload"))
    try:
        outcome = run_job(args, args.kind, request, connect, progress, job_id)
    except ClientError as e:
        state = "cancelled" if e.code == "cancelled" else "error"
        show(protocol.JobStatus(job_id, state, error=(e.code, str(e)), retry_after=e.retry_after))
        print(f"stepedit send: [{e.code}] {e}", file=sys.stderr)
        return 1
    show(protocol.JobStatus(job_id, "done", 1.0, "done", outcome.output_path, outcome.result))
    _LOG.info("job %s done: %s", job_id, outcome.output_path)
    return 0
