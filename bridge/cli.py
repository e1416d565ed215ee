"""The ``stepedit`` command: serve the engine, or talk to a running one."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge import auth, protocol, remote_cli
from bridge.client import ClientError, JobOutcome, StepEditClient, new_job_id
from bridge.edit_flags import EDIT_FLAGS, edit_from_flags
from engine.backends import BACKEND_NAMES, DEFAULT_BACKEND

if TYPE_CHECKING:
    from engine.engine import EngineConfig

__all__ = ["main"]

_LOG = logging.getLogger("stepedit")

# Where client commands find the engine's secret when --secret-file names none.
_SECRET_ENV = "STEPEDIT_SECRET"


def _engine_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def _client(args: argparse.Namespace, transport: str = "udp") -> StepEditClient:
    host, port = args.engine
    return StepEditClient(
        host,
        port,
        timeout=args.timeout,
        secret=_client_secret(args),
        key_id=args.key_id,
        transport=transport,
    )


def _client_secret(args: argparse.Namespace) -> str | None:
    """The secret to sign with: ``--secret-file``, else ``$STEPEDIT_SECRET``, else none."""
    if args.secret_file is not None:
        try:
            text, where = args.secret_file.read_text(encoding="ascii"), str(args.secret_file)
        except (OSError, UnicodeDecodeError) as e:
            raise SystemExit(f"stepedit {args.command}: cannot read --secret-file: {e}") from e
    else:
        text, where = os.environ.get(_SECRET_ENV, ""), f"${_SECRET_ENV}"
        if not text:
            return None
    try:
        return auth.check_secret(text)
    except ValueError as e:
        raise SystemExit(f"stepedit {args.command}: {where}: {e}") from e


def _default_engine() -> str:
    return os.environ.get("STEPEDIT_ENGINE", f"127.0.0.1:{protocol.DEFAULT_PORT}")


def _serve(args: argparse.Namespace) -> int:
    # Imported here so that client commands start fast and need no audio stack.
    from bridge.server import StepEditServer
    from engine.backends import create_backend
    from engine.engine import Engine
    from engine.errors import StepEditError
    from engine.state import CACHE_SUBDIR, state_dir

    try:
        if args.state_dir is not None:
            args.state_dir.mkdir(parents=True, exist_ok=True)
        state = args.state_dir or state_dir()
        options = _backend_options(args)
        backend = create_backend(args.backend, cache_dir=state / CACHE_SUBDIR, **options)
        engine = Engine(backend, _engine_config(args, state))
        # The server checks the settings (secret, roots) before the model takes time to load.
        server = StepEditServer(
            engine, args.host, args.port, _serve_keyring(args, state), args.require_auth
        )
        tcp = server.serve_tcp()
    except (ValueError, OSError, StepEditError) as e:  # bad settings
        print(f"stepedit serve: {e}", file=sys.stderr)
        return 2
    try:
        engine.start()
    except (OSError, StepEditError) as e:  # model files
        server.server_close()
        print(f"stepedit serve: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for name, target in (("stepedit-osc", server), ("stepedit-tcp", tcp)):
        threading.Thread(target=target.serve_forever, name=name, daemon=True).start()
    _LOG.info(
        "serving protocol v%d on %s:%d, UDP and TCP (%s)",
        protocol.PROTOCOL_VERSION,
        args.host,
        server.port,
        "signed messages only" if server.require_auth else "plain or signed messages",
    )
    stop.wait()
    _LOG.info("shutting down")
    engine.stop()
    tcp.shutdown()
    server.shutdown()
    server.server_close()
    return 0


def _engine_config(args: argparse.Namespace, state: Path) -> EngineConfig:
    """The engine's settings from ``serve``'s flags.

    Raises:
        ValueError: naming a setting out of its range.
    """
    from engine.engine import EngineConfig

    return EngineConfig(
        max_queue=args.max_queue,
        max_input_seconds=args.max_seconds,
        state_dir=state,
        input_roots=tuple(args.input_roots),
        output_roots=tuple(args.output_roots),
        transfer_bytes=int(args.transfer_mb * 2**20),
        guard_max_wer=args.guard_max_wer,
        guard_tries=args.guard_tries,
        segment_seconds=args.segment_seconds,
    )


def _serve_keyring(args: argparse.Namespace, state: Path) -> auth.Keyring:
    """The engine's keyring; its first key is created when signed messages are required."""
    keyring = auth.Keyring.in_state_dir(state)
    if len(keyring) == 0 and (args.require_auth or not auth.is_loopback(args.host)):
        keyring.ensure(auth.DEFAULT_KEY_ID)
        shown = "stepedit secret" + ("" if args.state_dir is None else f" --state-dir {state}")
        _LOG.info(
            "created the secret %r in %s; clients need it: show it with '%s'",
            auth.DEFAULT_KEY_ID,
            keyring.path,
            shown,
        )
    return keyring


def _secret(args: argparse.Namespace) -> int:
    from engine.state import state_dir

    try:
        keyring = auth.Keyring.in_state_dir(args.state_dir or state_dir())
        if args.new:
            secret, created = keyring.renew(args.key), True
        else:
            secret, created = keyring.ensure(args.key)
    except (ValueError, OSError) as e:
        print(f"stepedit secret: {e}", file=sys.stderr)
        return 2
    if created:
        _LOG.info("new secret %r in %s: clients need it", args.key, keyring.path)
    print(secret)
    return 0


def _edit_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``edit`` object that the flags of ``_add_edit_arguments`` name."""
    names = (*EDIT_FLAGS, "mask", "iterations", "text", "language", "keep_length", "decode_passes")
    try:
        return edit_from_flags(
            **{name: getattr(args, name) for name in names}, position=args.positions
        )
    except ValueError as e:
        flags = "/".join(f"--{name.replace('_', '-')}" for name in EDIT_FLAGS)
        raise SystemExit(f"stepedit {args.command}: give exactly one of {flags}") from e


def _edit_request(args: argparse.Namespace) -> dict[str, Any]:
    return {**_slice_request(args), "edit": _edit_fields(args)}


class _ProgressBar:
    """One line on stderr, redrawn in a terminal and printed per stage otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._stage = ""

    def __call__(self, fraction: float, stage: str) -> None:
        if self._tty:
            filled = int(fraction * 30)
            print(
                f"\r[{'#' * filled}{' ' * (30 - filled)}] {fraction:4.0%} {stage:<10}",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif stage != self._stage:
            print(f"{fraction:4.0%} {stage}", file=sys.stderr, flush=True)
        self._stage = stage

    def close(self) -> None:
        if self._tty:
            print(file=sys.stderr)


def _run_job(args: argparse.Namespace, kind: str, request: dict[str, Any]) -> JobOutcome:
    """Runs an edit or a transcription with a progress bar; prints the result JSON (with
    ``output_path``) when ``--json`` asks for it."""
    bar = _ProgressBar()
    try:
        outcome = remote_cli.run_job(
            args,
            kind,
            request,
            lambda transport: _client(args, transport),
            None if args.quiet else bar,
        )
    finally:
        bar.close()
    if args.json:
        document = {"output_path": outcome.output_path, **outcome.result}
        print(json.dumps(document, indent=2, ensure_ascii=False))
    return outcome


def _edit(args: argparse.Namespace) -> int:
    outcome = _run_job(args, "edit", _edit_request(args))
    if not args.json:
        print(outcome.output_path)
    return 0


def _batch(args: argparse.Namespace) -> int:
    from bridge.batch import run_batch
    from engine.errors import EditError

    try:
        report = run_batch(
            args.inputs,
            _edit_fields(args),
            args.output_dir,
            jobs=args.jobs,
            connect=lambda: _client(args),
            run_job=lambda request, on_progress, job_id: remote_cli.run_job(
                args,
                "edit",
                request,
                lambda transport: _client(args, transport),
                on_progress,
                job_id,
            ),
        )
    except (ValueError, EditError) as e:
        print(f"stepedit batch: {e}", file=sys.stderr)
        return 2
    return 1 if report.failed else 0


def _slice_request(args: argparse.Namespace) -> dict[str, Any]:
    """The fields every job request shares, from ``input``, ``--start``, ``--length``, ``-o``."""
    request: dict[str, Any] = {"input": str(Path(args.input).resolve())}
    if args.start is not None:
        request["start"] = args.start
    if args.length is not None:
        request["length"] = args.length
    if args.output_dir is not None:
        request["output_dir"] = str(Path(args.output_dir).resolve())
    return request


def _transcribe(args: argparse.Namespace) -> int:
    request = {**_slice_request(args), "language": args.language}
    if args.text:
        request["text"] = args.text
    outcome = _run_job(args, "transcribe", request)
    if not args.json:
        print(outcome.result["transcript"]["text"])
        print(outcome.output_path, file=sys.stderr)
    return 0


def _send(args: argparse.Namespace) -> int:
    try:
        request = json.loads(Path(args.request_file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        print(f"stepedit send: cannot read {args.request_file}: {e}", file=sys.stderr)
        return 2
    if isinstance(request, dict) and remote_cli.travels(args, request):
        connect = lambda transport: _client(args, transport)  # noqa: E731
        return remote_cli.mirror_job(args, request, connect, args.job_id)
    with _client(args) as client:
        try:
            reply = client.submit(args.job_id, request, protocol.ADDRESS[args.kind])
        except ClientError as e:  # unauthorized; without an engine the file stays free
            if e.code != "no_engine":
                _report_in_status_file(request, args.job_id, e)
            raise
    if reply.address == protocol.ADDRESS["error"]:
        error = ClientError.from_reply(reply)
        _report_in_status_file(request, args.job_id, error)
        raise error
    print(args.job_id)
    return 0


def _report_in_status_file(request: Any, job_id: str, error: ClientError) -> None:
    """Puts a refusal the engine could not record (``unauthorized``, a malformed request)
    into the request's status file, for clients that only poll that file. Only a file that
    does not exist yet is written: one the engine made already says more."""
    path = request.get("status_file") if isinstance(request, dict) else None
    if not isinstance(path, str) or not path:
        return
    from engine.status_files import create_status_file

    status = protocol.JobStatus(job_id, "error", error=(error.code, str(error)))
    try:
        create_status_file(Path(path), status)
    except OSError as e:
        print(f"stepedit send: cannot write {path}: {e}", file=sys.stderr)


def _print_or_save(text: str, output: Path | None) -> None:
    """Prints ``text``, or writes it atomically to ``output`` (for clients that poll files)."""
    if output is None:
        print(text)
    else:
        from engine.audio import atomic_write_bytes

        atomic_write_bytes(output, (text + "\n").encode("utf-8"))


def _ping(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pong = client.ping()
    if args.output is not None:
        _print_or_save(json.dumps(asdict(pong)), args.output)
        return 0
    print(
        f"StepEdit {pong.engine_version} (protocol v{pong.protocol_version}), "
        f"backend {pong.backend} on {pong.device}"
    )
    return 0


def _capabilities(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_or_save(json.dumps(client.capabilities(), indent=2), args.output)
    return 0


def _job_query(args: argparse.Namespace) -> int:
    address = protocol.ADDRESS[args.command]
    with _client(args) as client:
        message = client.query(address, args.job_id)
    if message.address == protocol.ADDRESS["error"]:
        raise ClientError.from_reply(message)
    print(message.address.rsplit("/", 1)[-1], *message.args[1:])
    return 0


def _eval(args: argparse.Namespace) -> int:
    from engine.backends import create_backend
    from engine.evaluation.command import run

    try:
        backend = create_backend(args.backend, **_backend_options(args))
    except ValueError as e:
        print(f"stepedit eval: {e}", file=sys.stderr)
        return 2
    return run(args, backend)


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        choices=BACKEND_NAMES,
        help="backend (default: %(default)s)",
    )
    parser.add_argument(
        "--model-dir", "--model_dir", type=Path, help="model root (stepaudio; no default)"
    )
    parser.add_argument("--device", help="cpu, cuda or mps (stepaudio; default cpu)")
    parser.add_argument("--dtype", help="bf16, fp16 or fp32 (stepaudio; default fp32)")
    parser.add_argument(
        "--quantize",
        help="none or int8: LLM weights held in int8, activations in --dtype (stepaudio; "
        "default none)",
    )
    parser.add_argument(
        "--length-multiple",
        "--length_multiple",
        type=float,
        help="stop generating at this multiple of the expected length (stepaudio; default 3)",
    )
    parser.add_argument(
        "--retokenize",
        action="store_const",
        const=True,
        help="decode and re-tokenize every iteration as the official pipeline does, instead of "
        "editing the previous pass's tokens (stepaudio; default: off)",
    )


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings ``_add_backend_arguments`` read, for ``create_backend``."""
    names = ("model_dir", "device", "dtype", "quantize", "length_multiple", "retokenize")
    return {name: getattr(args, name) for name in names}


def _add_client_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--engine",
        type=_engine_address,
        default=_default_engine(),
        help="engine host:port (env STEPEDIT_ENGINE)",
    )
    sub.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="seconds to wait for the engine to answer (default: %(default)s)",
    )
    sub.add_argument(
        "--secret-file",
        "--secret_file",
        type=Path,
        help=f"file holding the engine's secret, to sign messages (default: ${_SECRET_ENV}, "
        "else unsigned, which only a loopback engine takes)",
    )
    sub.add_argument(
        "--key-id",
        "--key_id",
        default=auth.DEFAULT_KEY_ID,
        help="the secret's name in the engine's keyring (default: %(default)s)",
    )


def _add_serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the resident engine")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s); any other than loopback requires "
        "signed messages (see 'stepedit secret') and --input-root/--output-root",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=protocol.DEFAULT_PORT,
        help="UDP port, and TCP port of the same number (default: %(default)s)",
    )
    serve.add_argument(
        "--transfer-mb",
        "--transfer_mb",
        type=float,
        default=4096.0,
        help="budget of uploaded audio and results kept for remote clients, in MiB "
        "(default: %(default)s)",
    )
    _add_backend_arguments(serve)
    serve.add_argument(
        "--max-seconds",
        "--max_seconds",
        type=float,
        default=600.0,
        help="longest slice accepted, in seconds (default: %(default)s)",
    )
    serve.add_argument(
        "--guard-max-wer",
        "--guard_max_wer",
        type=float,
        default=0.2,
        help="word error rate (0-1) up to which a model edit's generation is kept; above it "
        "the edit is generated again with a new seed (default: %(default)s)",
    )
    serve.add_argument(
        "--guard-tries",
        "--guard_tries",
        type=int,
        default=3,
        help="generations of a checked model edit at most, 1-10; 1 checks and reports only "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--segment-seconds",
        "--segment_seconds",
        type=float,
        help="longest slice a model edits in one piece, 5-90 s; longer ones are edited in "
        "segments cut at pauses (default: the backend's, stepaudio 30)",
    )
    serve.add_argument(
        "--max-queue",
        "--max_queue",
        type=int,
        default=32,
        help="jobs that may wait behind the running one (default: %(default)s)",
    )
    serve.add_argument(
        "--state-dir",
        "--state_dir",
        type=Path,
        help="folder for the engine's caches and keyring (default: $STEPEDIT_STATE_DIR, else "
        "the platform's state folder, e.g. ~/.local/state/stepedit)",
    )
    serve.add_argument(
        "--require-auth",
        "--require_auth",
        action="store_true",
        help="take only signed messages on loopback too (default: off; always on for "
        "other addresses)",
    )
    for kind, what in (
        ("input", "inputs may be read from"),
        ("output", "results and status files may be written to"),
    ):
        serve.add_argument(
            f"--{kind}-root",
            f"--{kind}_root",
            dest=f"{kind}_roots",
            metavar="DIR",
            type=_existing_folder,
            action="append",
            default=[],
            help=f"a folder {what} (repeatable; default: none, so any folder on loopback; "
            "required on other addresses)",
        )
    serve.set_defaults(run=_serve)


def _existing_folder(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a folder: {text!r}")
    return path.resolve()


def _add_secret_command(commands: Any) -> None:
    secret = commands.add_parser(
        "secret", help="show the engine's secret for signed messages (created if needed)"
    )
    secret.add_argument(
        "--key", default=auth.DEFAULT_KEY_ID, help="the key's name (default: %(default)s)"
    )
    secret.add_argument(
        "--new", action="store_true", help="replace the secret (clients need the new one)"
    )
    secret.add_argument(
        "--state-dir",
        "--state_dir",
        type=Path,
        help="the engine's state folder (default: as 'stepedit serve')",
    )
    secret.set_defaults(run=_secret)


def _add_edit_command(commands: Any) -> None:
    edit = commands.add_parser("edit", help="edit an audio file with a running engine")
    _add_slice_arguments(edit)
    _add_edit_arguments(edit)
    edit.add_argument("--json", action="store_true", help="print the result JSON")
    _add_client_options(edit)
    remote_cli.add_remote_options(edit)
    edit.set_defaults(run=_edit)


def _add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that name the edit, read by ``_edit_fields`` (``edit`` and ``batch``)."""
    parser.add_argument("--emotion")
    parser.add_argument("--style")
    parser.add_argument("--speed", help='faster, slower, "more faster" or "more slower"')
    parser.add_argument("--paralinguistic", metavar="TAG", help="e.g. Laughter, Breathing")
    parser.add_argument("--denoise", action="store_true")
    parser.add_argument("--vad", action="store_true", help="remove silences")
    parser.add_argument("--clone", metavar="TARGET_TEXT", help="say this text in the clip's voice")
    parser.add_argument(
        "--as-text",
        "--as_text",
        metavar="TARGET_TEXT",
        help="edit as text: the transcript as it should be (delete, move, {mask} words, "
        "[Laughter] between words); --text is the transcript it was made from",
    )
    parser.add_argument(
        "--fillers", action="store_true", help="remove um, uh, 嗯 ... and their pauses"
    )
    parser.add_argument(
        "--mask", choices=("room_tone", "silence", "bleep"), help="what {masked} words become"
    )
    parser.add_argument("--language", choices=("auto", "en", "zh"), help="the slice's language")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--text", help="transcript of the input")
    parser.add_argument(
        "--position",
        dest="positions",
        type=float,
        action="append",
        help="insertion time in seconds (repeatable)",
    )
    parser.add_argument(
        "--keep-length",
        "--keep_length",
        action="store_true",
        help="fit the result to the slice's duration (pitch-preserving time-scale)",
    )
    parser.add_argument(
        "--decode-passes",
        "--decode_passes",
        action="store_true",
        help="also write every iteration before the last beside the result, as "
        "<result stem>.pass<k>.wav (model backends; the cpu backend renders once and "
        "writes none)",
    )


def _add_batch_command(commands: Any) -> None:
    batch = commands.add_parser(
        "batch", help="edit every audio file of a list or folder (resumable; a running engine)"
    )
    batch.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR")
    batch.add_argument(
        "-o", "--output-dir", "--output_dir", type=Path, required=True, help="folder for results"
    )
    batch.add_argument(
        "--jobs", type=int, default=2, help="files in flight at once (default: %(default)s)"
    )
    _add_edit_arguments(batch)
    _add_client_options(batch)
    remote_cli.add_remote_options(batch, privacy=False)
    batch.set_defaults(run=_batch)


def _add_slice_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input")
    parser.add_argument("--start", type=float, help="slice start in seconds")
    parser.add_argument("--length", type=float, help="slice length in seconds")
    parser.add_argument("-o", "--output-dir", "--output_dir", help="folder for the result")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_transcribe_command(commands: Any) -> None:
    transcribe = commands.add_parser(
        "transcribe", help="the words of an audio file, with times (a running engine)"
    )
    _add_slice_arguments(transcribe)
    transcribe.add_argument(
        "--language", choices=("auto", "en", "zh"), default="auto", help="(default: %(default)s)"
    )
    transcribe.add_argument("--text", help="the known transcript: align it instead")
    transcribe.add_argument(
        "--json", action="store_true", help="print the result JSON (words with times)"
    )
    _add_client_options(transcribe)
    remote_cli.add_remote_options(transcribe)
    transcribe.set_defaults(run=_transcribe)


def _add_query_commands(commands: Any) -> None:
    send = commands.add_parser("send", help="start a job from a request file and exit")
    send.add_argument("--job-id", "--job_id", default=new_job_id())
    send.add_argument("--request-file", "--request_file", required=True)
    send.add_argument(
        "--kind",
        choices=("edit", "transcribe"),
        default="edit",
        help="what the request file asks for (default: %(default)s)",
    )
    _add_client_options(send)
    remote_cli.add_remote_options(send)
    send.set_defaults(run=_send)
    for name, helptext, run in (
        ("ping", "check that the engine answers", _ping),
        ("capabilities", "list backends, edit types and options", _capabilities),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--output", type=Path, help="write the answer (JSON) to this file")
        _add_client_options(sub)
        sub.set_defaults(run=run)
    for name in ("status", "cancel"):
        sub = commands.add_parser(name, help=f"{name} a job")
        sub.add_argument("job_id")
        _add_client_options(sub)
        sub.set_defaults(run=_job_query)


def _add_eval_command(commands: Any) -> None:
    try:
        from engine.evaluation.command import add_arguments
    except ImportError:
        return  # the evaluation harness is optional
    evaluate = commands.add_parser("eval", help="measure what each edit does on clips")
    add_arguments(evaluate)
    _add_backend_arguments(evaluate)
    evaluate.set_defaults(run=_eval)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepedit", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve_command(commands)
    _add_secret_command(commands)
    _add_edit_command(commands)
    _add_batch_command(commands)
    _add_transcribe_command(commands)
    _add_query_commands(commands)
    _add_eval_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except ClientError as e:
        print(f"stepedit {args.command}: [{e.code}] {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
