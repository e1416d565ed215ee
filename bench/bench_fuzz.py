"""Fuzz run: hostile datagrams and corrupt audio files against the engine's decoders.

Datagrams (random bytes; valid messages, bundles and signed ``/stepedit/auth`` envelopes
with bytes flipped, cut or repeated; absurd bundle sizes and nesting; edit and transcribe
requests with mangled JSON) go through ``decode_datagram``, the envelope check and the
request decoders; corrupt files (WAV, AIFF, FLAC, OGG and MP3
cut at random points or with random header bytes changed, absurd declared channel counts
and sizes, FIFOs) go through ``check_input_file`` and ``read_slice``. Every case must end in
a result or a StepEdit error with a protocol code: anything else is a crash; a case over
1 s is a hang. Seeded, so a run can be repeated.

    python bench/bench_fuzz.py [--datagrams N] [--files N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from bridge import auth, protocol
from bridge.protocol import ADDRESS, ProtocolError
from engine.audio import check_input_file, read_slice
from engine.errors import StepEditError

REPO = Path(__file__).resolve().parent.parent
HANG_S = 1.0
FORMATS = {".wav": "WAV", ".aiff": "AIFF", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}


def seed_datagrams(secret: str) -> list[bytes]:
    request = {"input": "/tmp/take.wav", "edit": {"type": "speed", "option": "faster"}}
    valid = [
        protocol.encode(ADDRESS["ping"]),
        protocol.encode(ADDRESS["edit"], "job-1", json.dumps(request)),
        protocol.encode(ADDRESS["transcribe"], "job-2", json.dumps({"input": "/tmp/a.wav"})),
        protocol.encode(ADDRESS["status"], "job-1", 9000),
    ]
    bundles = [b"#bundle\0" + bytes(8) + struct.pack(">i", len(m)) + m for m in valid]
    signed = [auth.sign(m, auth.DEFAULT_KEY_ID, secret) for m in valid]
    return valid + bundles + signed


def mutate(data: bytes, rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    buf = bytearray(data)
    if choice == 0:
        return rng.randbytes(rng.randrange(0, 256))
    if choice == 1 and buf:
        for _ in range(rng.randrange(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if choice == 2:
        return bytes(buf[: rng.randrange(len(buf) + 1)])
    if choice == 3:  # an absurd element size inside a bundle
        size = rng.choice([-1, -(2**31), 0, 3, 2**31 - 1, len(buf) * 7])
        return b"#bundle\0" + bytes(8) + struct.pack(">i", size) + bytes(buf)
    if choice == 4:  # nesting
        for _ in range(rng.randrange(1, 64)):
            buf = bytearray(b"#bundle\0" + bytes(8) + struct.pack(">i", len(buf)) + buf)
        return bytes(buf)
    text = json.dumps({"input": "/tmp/a.wav", "start": rng.choice([1e308, -1, "x", 10**400])})
    text = rng.choice([text, "[" * rng.randrange(1, 2000), text.replace('"', "\\u")])
    return protocol.encode(ADDRESS["edit"], rng.choice(["j", "j\nx", "é" * 200]), text)


def decode_all(data: bytes, verifier: auth.Verifier) -> None:
    for message in protocol.decode_datagram(data):
        if message.address == ADDRESS["auth"]:
            decode_all(verifier.verify(message.args)[1], verifier)
        elif message.address == ADDRESS["edit"]:
            protocol.decode_edit(message.args)
        elif message.address == ADDRESS["transcribe"]:
            protocol.decode_transcribe(message.args)
        elif message.address in (ADDRESS["status"], ADDRESS["cancel"]):
            protocol.decode_job_query(message.args)


def seed_files(folder: Path) -> list[Path]:
    samples, rate = soundfile.read(REPO / "tests" / "data" / "en_ljspeech_LJ050-0131.wav")
    clip = samples[: 2 * rate]
    paths = []
    for suffix, kind in FORMATS.items():
        path = folder / f"seed{suffix}"
        soundfile.write(path, clip, rate, format=kind)
        paths.append(path)
    return paths


def corrupt(seed: Path, folder: Path, index: int, rng: random.Random) -> Path:
    data = bytearray(seed.read_bytes())
    path = folder / f"case{index}{seed.suffix}"
    choice = rng.randrange(4)
    if choice == 0:
        data = data[: rng.randrange(len(data))]
    elif choice == 1:
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
    elif choice == 2 and seed.suffix == ".wav":  # absurd channel count and data size
        data[22:24] = struct.pack("<H", rng.choice([0, 7, 255, 65535]))
        data[40:44] = struct.pack("<I", rng.choice([0, 2**32 - 1]))
    else:
        for _ in range(rng.randrange(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return path


def run(case: Callable[[], object], errors: type[Exception] | tuple[type[Exception], ...]) -> str:
    started = time.perf_counter()
    try:
        case()
        outcome = "ok"
    except errors as e:
        outcome = getattr(e, "code", None) or f"unauthorized {getattr(e, 'reason', e)}"
    except Exception as e:  # what the run counts as a crash
        outcome = f"CRASH {type(e).__name__}: {e}"
    if time.perf_counter() - started > HANG_S:
        outcome = f"HANG ({outcome})"
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datagrams", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keyring = auth.Keyring.in_state_dir(folder)
        seeds = seed_datagrams(keyring.ensure()[0])
        verifier = auth.Verifier(keyring)
        started = time.perf_counter()
        for _ in range(args.datagrams):
            data = mutate(rng.choice(seeds), rng)

            def decode(d: bytes = data) -> None:
                decode_all(d, verifier)

            outcomes["datagram " + run(decode, (ProtocolError, auth.AuthError))] += 1
        datagram_s = time.perf_counter() - started
        files = seed_files(folder)
        fifo = folder / "pipe.wav"
        os.mkfifo(fifo)
        started = time.perf_counter()
        for i in range(args.files):
            path = fifo if i % 500 == 0 else corrupt(rng.choice(files), folder, i, rng)

            def read(p: Path = path) -> object:
                check_input_file(p)
                return read_slice(p, max_seconds=600.0)

            outcomes["file " + run(read, StepEditError)] += 1
            if path != fifo:
                path.unlink()
        file_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    crashes = {k: v for k, v in outcomes.items() if "CRASH" in k or "HANG" in k}
    total = args.datagrams + args.files
    print(f"{total} cases ({args.datagrams} datagrams in {datagram_s:.1f} s, "
          f"{args.files} files in {file_s:.1f} s), peak RSS {peak_mb:.0f} MB")  # fmt: skip
    for outcome, count in sorted(outcomes.items(), key=lambda kv: -kv[1])[:20]:
        print(f"{count:>8}  {outcome[:100]}")
    print(f"crashes and hangs: {sum(crashes.values())}")
    for outcome in list(crashes)[:10]:
        print("  ", outcome[:200])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
