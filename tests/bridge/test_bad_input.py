"""Every malformed request gets its specific error code, and the engine keeps answering."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge import protocol
from bridge.client import StepEditClient
from bridge.launcher import EngineProcess
from bridge.protocol import ADDRESS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    clip = root / "clip.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", clip)
    truncated = root / "truncated.wav"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    (root / "notes.wav").write_text("this is not audio")
    soundfile.write(root / "silent.wav", np.zeros(16000, np.float32), 16000, subtype="FLOAT")
    nan = np.full(16000, 0.1, np.float32)
    nan[500] = np.nan
    soundfile.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    # 601 s: just over the engine's default 600 s limit (8 kHz keeps the file small).
    noise = np.random.default_rng(0).normal(0, 0.05, 601 * 8000).astype(np.float32)
    soundfile.write(root / "long.wav", noise, 8000, subtype="PCM_16")
    (root / "a_file").write_text("not a folder")
    return {"root": root, "clip": clip, "truncated": truncated}


def edit_args(files: dict[str, Path], **overrides: object) -> tuple[str, str]:
    request: dict[str, object] = {"input": str(files["clip"]), "edit": {"type": "vad"}}
    request.update(overrides)
    return "bad-job", json.dumps(request)


def edit(files: dict[str, Path], **overrides: object) -> bytes:
    """An edit request for the good clip, with OVERRIDES in its JSON."""
    return protocol.encode(ADDRESS["edit"], *edit_args(files, **overrides))


# (what, the datagram built from the module's files, the error code expected)
CASES: list[tuple[str, Callable[[dict[str, Path]], bytes], str]] = [
    ("malformed datagram", lambda f: b"\x00\x01garbage", "malformed"),
    ("unknown address", lambda f: protocol.encode("/stepedit/teleport", 1), "unknown_address"),
    ("wrong argument types", lambda f: protocol.encode(ADDRESS["edit"], 5, 6), "bad_arguments"),
    ("ping with a string", lambda f: protocol.encode(ADDRESS["ping"], "x"), "bad_arguments"),
    (
        "invalid JSON",
        lambda f: protocol.encode(ADDRESS["edit"], "bad-job", "{nope"),
        "invalid_json",
    ),
    (
        "missing input",
        lambda f: protocol.encode(ADDRESS["edit"], "bad-job", '{"edit": {"type": "vad"}}'),
        "bad_request",
    ),
    (
        "missing edit",
        lambda f: protocol.encode(
            ADDRESS["edit"], "bad-job", json.dumps({"input": str(f["clip"])})
        ),
        "bad_request",
    ),
    ("unknown edit type", lambda f: edit(f, edit={"type": "teleport"}), "invalid_edit"),
    ("unknown option", lambda f: edit(f, edit={"type": "speed", "option": "warp"}), "invalid_edit"),
    ("iterations 0", lambda f: edit(f, edit={"type": "vad", "iterations": 0}), "invalid_edit"),
    ("iterations 9", lambda f: edit(f, edit={"type": "vad", "iterations": 9}), "invalid_edit"),
    ("relative path", lambda f: edit(f, input="clip.wav"), "bad_request"),
    ("nonexistent path", lambda f: edit(f, input=str(f["root"] / "gone.wav")), "input_not_found"),
    ("a directory", lambda f: edit(f, input=str(f["root"])), "input_not_audio"),
    ("not audio", lambda f: edit(f, input=str(f["root"] / "notes.wav")), "input_not_audio"),
    ("truncated WAV", lambda f: edit(f, input=str(f["truncated"])), "input_corrupt"),
    ("zero length", lambda f: edit(f, length=0), "bad_request"),
    ("negative start", lambda f: edit(f, start=-2), "bad_request"),
    ("start past the end", lambda f: edit(f, start=60), "bad_slice"),
    ("slice past the end", lambda f: edit(f, start=5, length=10), "bad_slice"),
    ("all silent", lambda f: edit(f, input=str(f["root"] / "silent.wav")), "silent_input"),
    ("NaN samples", lambda f: edit(f, input=str(f["root"] / "nan.wav")), "non_finite"),
    ("too long", lambda f: edit(f, input=str(f["root"] / "long.wav")), "too_long"),
    (
        "missing output dir",
        lambda f: edit(f, output_dir=str(f["root"] / "nowhere")),
        "output_unwritable",
    ),
    (
        "output dir is a file",
        lambda f: edit(f, output_dir=str(f["root"] / "a_file")),
        "output_unwritable",
    ),
    (
        "status file folder missing",
        lambda f: edit(f, status_file=str(f["root"] / "nowhere" / "s.json")),
        "bad_request",
    ),
]


@pytest.mark.parametrize(
    ("index", "what", "build", "code"),
    [pytest.param(i, what, build, code, id=what) for i, (what, build, code) in enumerate(CASES)],
)
def test_bad_request_gets_its_code_and_the_engine_survives(
    engine: EngineProcess,
    files: dict[str, Path],
    index: int,
    what: str,
    build: Callable[[dict[str, Path]], bytes],
    code: str,
) -> None:
    # A fresh job id per case, of the same length (the OSC string padding stays valid), so no
    # case is answered from an earlier one.
    datagram = build(files).replace(b"bad-job\0", f"bad-{index:03d}\0".encode())
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        StepEditClient("127.0.0.1", engine.port, timeout=5) as pinger,
    ):
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(30)
        sock.sendto(datagram, ("127.0.0.1", engine.port))
        while True:
            [reply] = protocol.decode_datagram(sock.recv(65536))
            if reply.address != ADDRESS["accepted"] and reply.address != ADDRESS["progress"]:
                break
        assert reply.address == ADDRESS["error"], what
        assert reply.args[1] == code, f"{what}: {reply.args}"
        assert reply.args[2], f"{what}: empty message"
        assert pinger.ping().backend == "cpu", f"engine stopped answering after: {what}"
    assert engine.process.poll() is None
    assert sorted(p.name for p in files["root"].iterdir() if ".stepedit." in p.name) == []
