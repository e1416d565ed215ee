"""Remote edits on loopback: transfer overhead against local edits, and transport throughput.

One run measures, on the same machine and engine:

- a remote edit (slice read, uploaded, rendered, downloaded, written) against a local one
  (the engine reads and writes the paths itself), for a 10 s and a 5 min clip, as ratios;
- the throughput of the transport, MB/s: a plain TCP copy of the same bytes, the same bytes
  in SLIP frames (what the engine's TCP side speaks), in length-prefixed frames (the OSC 1.0
  stream alternative), and whole uploads and downloads (OSC, signatures, hashes, disk).

Usage: python -m bench.bench_transfer [--repeats 3] [--edit vad | speed:faster]
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from bridge import protocol
from bridge.client import StepEditClient
from bridge.launcher import start_engine, stop_engine
from bridge.remote import run_with_upload
from bridge.slip import SlipDecoder, encode_frame

_LOG = logging.getLogger("bench_transfer")
_CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "en_ljspeech_LJ001-0001.wav"
_CHUNK = protocol.MAX_CHUNK_BYTES


def _take(folder: Path, seconds: int) -> Path:
    clip, rate = soundfile.read(_CLIP, dtype="int16")
    tiled = np.tile(clip, -(-seconds * rate // len(clip)))[: seconds * rate]
    path = folder / f"take-{seconds}s.wav"
    soundfile.write(path, tiled, rate, subtype="PCM_16")
    return path


def _sink(handle: Callable[[socket.socket], None]) -> tuple[int, threading.Thread]:
    """A one-connection TCP server on loopback running ``handle``; its port and thread."""
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def serve() -> None:
        connection, _ = server.accept()
        with connection, server:
            handle(connection)

    thread = threading.Thread(target=serve)
    thread.start()
    return port, thread


def _copy_rate(
    data: bytes, frame: Callable[[bytes], bytes], read: Callable[[socket.socket], int]
) -> float:
    """MB/s of sending ``data`` in chunks, each through ``frame``, read back by ``read``."""
    received: list[int] = []
    port, thread = _sink(lambda c: received.append(read(c)))
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for at in range(0, len(data), _CHUNK):
            sock.sendall(frame(data[at : at + _CHUNK]))
        sock.shutdown(socket.SHUT_WR)
        thread.join()
    elapsed = time.perf_counter() - started
    assert received == [len(data)], received
    return len(data) / elapsed / 1e6


def _read_plain(sock: socket.socket) -> int:
    total = 0
    while block := sock.recv(1 << 18):
        total += len(block)
    return total


def _read_slip(sock: socket.socket) -> int:
    decoder, total = SlipDecoder(protocol.MAX_FRAME_BYTES), 0
    while block := sock.recv(1 << 18):
        total += sum(len(frame) for frame in decoder.feed(block))
    return total


def _read_prefixed(sock: socket.socket) -> int:
    buffer, total = bytearray(), 0
    while block := sock.recv(1 << 18):
        buffer += block
        while len(buffer) >= 4 and len(buffer) >= 4 + (size := struct.unpack_from(">i", buffer)[0]):
            total += len(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
    return total


def _median_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--edit",
        default="vad",
        help="TYPE or TYPE:OPTION, e.g. speed:faster (default: %(default)s)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    kind, _, option = args.edit.partition(":")
    edit = {"type": kind, **({"option": option} if option else {})}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        files = base / "files"
        files.mkdir()
        engine = start_engine(
            base, "--backend", "cpu", "--require-auth",
            "--input-root", str(files), "--output-root", str(files),
        )  # fmt: skip
        try:
            print(f"edit {edit}, engine on loopback, median of {args.repeats}")
            print(f"{'clip':>6} {'local s':>8} {'remote s':>9} {'ratio':>6} {'up MB/s':>8} "
                  f"{'down MB/s':>9}")  # fmt: skip
            for seconds in (10, 300):
                local, remote, up, down = _compare(
                    engine.port, engine.secret, _take(files, seconds), edit, base, args.repeats
                )
                print(f"{seconds:>5}s {local:8.3f} {remote:9.3f} {remote / local:6.2f} "
                      f"{up / 1e6:8.1f} {down / 1e6:9.1f}")  # fmt: skip
            data = _take(base, 300).read_bytes()
            size, chunk = len(data) / 1e6, _CHUNK // 1024
            print(f"\ntransport, {size:.1f} MB in {chunk} KiB chunks (MB/s, median):")
            for name, frame, read in (
                ("plain TCP copy", lambda b: b, _read_plain),
                ("SLIP frames (chosen)", encode_frame, _read_slip),
                ("length-prefixed frames", lambda b: struct.pack(">i", len(b)) + b, _read_prefixed),
            ):
                rates = [_copy_rate(data, frame, read) for _ in range(args.repeats)]
                print(f"  {name:<24} {statistics.median(rates):8.1f}")
        finally:
            stop_engine(engine)


def _compare(
    port: int, secret: str | None, take: Path, edit: dict, base: Path, repeats: int
) -> tuple[float, float, float, float]:
    """Median seconds of a local and a remote edit of ``take``, and the remote's median
    upload and download rates (bytes/s)."""
    request = {"input": str(take), "edit": edit, "output_dir": str(take.parent)}
    local = _median_time(lambda: _local(port, secret, request), repeats)
    transfers: list[dict] = []
    remote = _median_time(lambda: transfers.append(_remote(port, secret, request, base)), repeats)
    up = statistics.median(t["uploaded_bytes"] / t["timings"]["upload"] for t in transfers)
    down = statistics.median(t["downloaded_bytes"] / t["timings"]["download"] for t in transfers)
    return local, remote, up, down


def _local(port: int, secret: str | None, request: dict) -> None:
    with StepEditClient("127.0.0.1", port, secret=secret) as client:
        Path(client.edit(request).output_path).unlink()


def _remote(port: int, secret: str | None, request: dict, base: Path) -> dict:
    out = base / "downloads"
    out.mkdir(exist_ok=True)
    with StepEditClient("127.0.0.1", port, secret=secret, transport="tcp") as client:
        outcome = run_with_upload(
            client, protocol.ADDRESS["edit"], {**request, "output_dir": str(out)}
        )
        client.release("upload", outcome.result["transfer"]["upload_id"])  # the next run uploads
    Path(outcome.output_path).unlink()
    return dict(outcome.result["transfer"])


if __name__ == "__main__":
    main()
