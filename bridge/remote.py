"""Jobs on an engine that cannot read the client's files: path mapping, or audio both ways.

With a path mapping that matches (shared storage: client prefix -> engine prefix), the
request names the engine's paths and nothing is copied. Otherwise the slice is read here,
masked where marked sensitive (``bridge.privacy``), uploaded over TCP, rendered from the
upload, and the result downloaded into the local output folder under a new name (never
overwriting, published whole).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, BinaryIO

from bridge import auth
from bridge.client import JobOutcome, Progress, StepEditClient, new_job_id
from bridge.privacy import Sensitive, mask_slice

__all__ = ["PathMap", "audio_travels", "map_request", "run_with_upload", "unmap_path"]

_LOG = logging.getLogger(__name__)

# Request fields that name client paths.
_PATH_FIELDS = ("input", "output_dir", "status_file")


@dataclass(frozen=True)
class PathMap:
    """One shared folder as the client and the engine see it."""

    client: str
    engine: str

    @classmethod
    def parse(cls, text: str) -> PathMap:
        """``CLIENT=ENGINE`` (both absolute prefixes).

        Raises:
            ValueError: not of that form.
        """
        client, equals, engine = text.partition("=")
        if not equals or not client or not engine:
            raise ValueError(f"a path mapping is CLIENT_PREFIX=ENGINE_PREFIX, got {text!r}")
        return cls(client.rstrip("/\\") or "/", engine.rstrip("/\\") or "/")


def _swap(path: str, old: str, new: str) -> str | None:
    """``path`` with the prefix ``old`` (whole components) replaced by ``new``; ``None``
    when ``old`` is not a prefix. Separators are written ``/`` (Windows takes them too)."""
    path, old = path.replace("\\", "/").rstrip("/"), old.replace("\\", "/").rstrip("/")
    if path != old and not path.startswith(old + "/"):
        return None
    rest = path[len(old) :].lstrip("/")
    new = new.replace("\\", "/").rstrip("/")
    return f"{new}/{rest}" if rest else new or "/"


def _mapped(path: str, maps: Sequence[PathMap]) -> str | None:
    for mapping in maps:
        swapped = _swap(path, mapping.client, mapping.engine)
        if swapped is not None:
            return swapped
    return None


def map_request(request: Mapping[str, Any], maps: Sequence[PathMap]) -> dict[str, Any] | None:
    """The request with its client paths mapped to the engine's, when a mapping covers
    every path it names (the input, and the output folder or the input's folder); ``None``
    otherwise (the audio must travel)."""
    mapped = dict(request)
    for name in _PATH_FIELDS:
        if isinstance(request.get(name), str):
            swapped = _mapped(request[name], maps)
            if swapped is None:
                return None
            mapped[name] = swapped
    return mapped


def audio_travels(
    host: str, request: Mapping[str, Any], *, remote: bool, maps: Sequence[PathMap]
) -> bool:
    """Whether a job's audio goes to the engine at ``host`` (``run_with_upload``) rather
    than its paths: not when a mapping covers every path of the request (shared storage),
    else when ``remote`` asks for it or the engine is not on loopback (it cannot read this
    machine's files)."""
    if maps and map_request(request, maps) is not None:
        return False
    return remote or not auth.is_loopback(host)


def unmap_path(path: str, maps: Sequence[PathMap]) -> str:
    """An engine path as the client sees it (unchanged when no mapping covers it)."""
    for mapping in maps:
        swapped = _swap(path, mapping.engine, mapping.client)
        if swapped is not None:
            return swapped
    return path


def run_with_upload(
    client: StepEditClient,
    address: str,
    request: Mapping[str, Any],
    *,
    sensitive: Sensitive | None = None,
    on_progress: Progress | None = None,
    job_id: str | None = None,
) -> JobOutcome:
    """Reads the request's slice here, masks what is sensitive, uploads it, runs the job on
    the upload and downloads the result into the request's output folder (else the input's
    folder), then frees the result on the engine.

    The result JSON gains ``transfer``: bytes and seconds each way, and the masked spans.

    Raises:
        ClientError: the engine's refusal or failure.
        StepEditError: the local input cannot be read, or the output folder written.
    """
    from engine.audio import read_slice

    job_id = job_id or new_job_id()
    source = Path(request["input"])
    start = float(request.get("start") or 0.0)
    length = request.get("length")
    timings: dict[str, float] = {}
    began = time.monotonic()
    samples, info = read_slice(source, start, length)
    masked: list[tuple[float, float]] = []
    if sensitive:
        samples, masked = mask_slice(samples, info.sample_rate, start, sensitive)
    data = _wav_bytes(samples, info.sample_rate, info.is_float)
    timings["read"] = time.monotonic() - began
    began = time.monotonic()
    upload_id = client.upload(data, on_progress)
    timings["upload"] = time.monotonic() - began
    remote = {k: v for k, v in request.items() if k not in (*_PATH_FIELDS, "start", "length")}
    remote["input_upload"] = upload_id
    outcome = client.run(address, remote, on_progress, job_id)
    began = time.monotonic()
    engine_name = PurePath(outcome.output_path).name
    result_bytes = client.download(job_id, on_progress)
    timings["download"] = time.monotonic() - began
    name = source.stem + engine_name[len(upload_id) :]  # "<upload id>.stepedit..." named it
    stem, suffix = _split(name)
    result = _localised(outcome.result, request, source, start)
    if suffix == ".json":
        result_bytes = _localised_sidecar(result_bytes, source, start)
    folder = Path(request.get("output_dir") or source.parent)
    path = _write_new(folder, stem, suffix, result_bytes)
    downloaded = len(result_bytes)
    if "passes" in result:
        began = time.monotonic()
        passes = _download_passes(client, job_id, result["passes"], path, on_progress)
        timings["download"] += time.monotonic() - began
        downloaded += sum(p.stat().st_size for p in passes)
        result["passes"] = [str(p) for p in passes]
    client.release("download", job_id)
    result["transfer"] = {
        "upload_id": upload_id,
        "uploaded_bytes": len(data),
        "downloaded_bytes": downloaded,
        "masked": [[round(a, 3), round(b, 3)] for a, b in masked],
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    _LOG.info("remote job done: %d bytes up, %d down -> %s", len(data), downloaded, path)
    return JobOutcome(str(path), result)


def _write_new(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Publishes ``data`` whole as a new file (a free name when ``stem`` is taken)."""
    from engine.audio import write_new_file

    def write(file: BinaryIO) -> None:
        file.write(data)

    return write_new_file(folder, stem, suffix, write)


def _download_passes(
    client: StepEditClient,
    job_id: str,
    remote_passes: Sequence[str],
    result: Path,
    on_progress: Progress | None,
) -> list[Path]:
    """Downloads the pass files of a ``decode_passes`` job beside the local ``result``,
    named as the engine names them (``<result stem>.pass<k>``, a free name when taken); if
    one fails, the result and the passes written so far are removed, as the engine does."""
    written: list[Path] = []
    try:
        for k, remote_pass in enumerate(remote_passes, start=1):
            data = client.download(job_id, on_progress, file=k)
            suffix = PurePath(remote_pass).suffix
            written.append(_write_new(result.parent, f"{result.stem}.pass{k}", suffix, data))
    except BaseException:
        for path in (result, *written):
            path.unlink(missing_ok=True)
        raise
    return written


def _wav_bytes(samples: Any, sample_rate: int, is_float: bool) -> bytes:
    """The slice as a WAV file: 32-bit float for float sources, else 24-bit PCM (lossless
    for 16- and 24-bit sources), as the engine writes its results."""
    import soundfile

    buffer = io.BytesIO()
    subtype = "FLOAT" if is_float else "PCM_24"
    soundfile.write(buffer, samples.T, sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def _split(name: str) -> tuple[str, str]:
    suffix = PurePath(name).suffix
    return name[: len(name) - len(suffix)], suffix


def _localised(
    result: Mapping[str, Any], request: Mapping[str, Any], source: Path, start: float
) -> dict[str, Any]:
    """The result JSON as a local job would give it: the local input and slice."""
    local = dict(result)
    local.update(input=str(source), start=start, length=request.get("length"))
    transcript = local.get("transcript")
    if isinstance(transcript, dict):
        local["transcript"] = _shifted(transcript, start)
    return local


def _localised_sidecar(data: bytes, source: Path, start: float) -> bytes:
    """A transcript sidecar naming the local file, with word times in it (the upload began
    at the slice's start)."""
    document = {**_shifted(json.loads(data), start), "input": str(source), "start": start}
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def _shifted(transcript: dict[str, Any], start: float) -> dict[str, Any]:
    words = [
        {
            **w,
            "source_start": round(w["start"] + start, 3),
            "source_end": round(w["end"] + start, 3),
        }
        for w in transcript.get("words", [])
    ]
    return {**transcript, "words": words} if "words" in transcript else dict(transcript)
