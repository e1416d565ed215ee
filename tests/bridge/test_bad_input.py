"""Every malformed request gets its specific error code, and the engine keeps answering."""

from __future__ import annotations

import json
import shutil
import socket
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


def cases(files: dict[str, Path]) -> list[tuple[str, bytes, str]]:
    root = files["root"]
    enc = protocol.encode
    edit = ADDRESS["edit"]
    return [
        ("malformed datagram", b"\x00\x01garbage", "malformed"),
        ("unknown address", enc("/stepedit/teleport", 1), "unknown_address"),
        ("wrong argument types", enc(edit, 5, 6), "bad_arguments"),
        ("ping with a string", enc(ADDRESS["ping"], "x"), "bad_arguments"),
        ("invalid JSON", enc(edit, "bad-job", "{nope"), "invalid_json"),
        ("missing input", enc(edit, "bad-job", '{"edit": {"type": "vad"}}'), "bad_request"),
        (
            "missing edit",
            enc(edit, "bad-job", json.dumps({"input": str(files["clip"])})),
            "bad_request",
        ),
        (
            "unknown edit type",
            enc(edit, *edit_args(files, edit={"type": "teleport"})),
            "invalid_edit",
        ),
        (
            "unknown option",
            enc(edit, *edit_args(files, edit={"type": "speed", "option": "warp"})),
            "invalid_edit",
        ),
        (
            "iterations 0",
            enc(edit, *edit_args(files, edit={"type": "vad", "iterations": 0})),
            "invalid_edit",
        ),
        (
            "iterations 9",
            enc(edit, *edit_args(files, edit={"type": "vad", "iterations": 9})),
            "invalid_edit",
        ),
        ("relative path", enc(edit, *edit_args(files, input="clip.wav")), "bad_request"),
        (
            "nonexistent path",
            enc(edit, *edit_args(files, input=str(root / "gone.wav"))),
            "input_not_found",
        ),
        ("a directory", enc(edit, *edit_args(files, input=str(root))), "input_not_audio"),
        (
            "not audio",
            enc(edit, *edit_args(files, input=str(root / "notes.wav"))),
            "input_not_audio",
        ),
        (
            "truncated WAV",
            enc(edit, *edit_args(files, input=str(files["truncated"]))),
            "input_corrupt",
        ),
        ("zero length", enc(edit, *edit_args(files, length=0)), "bad_request"),
        ("negative start", enc(edit, *edit_args(files, start=-2)), "bad_request"),
        ("start past the end", enc(edit, *edit_args(files, start=60)), "bad_slice"),
        ("slice past the end", enc(edit, *edit_args(files, start=5, length=10)), "bad_slice"),
        (
            "all silent",
            enc(edit, *edit_args(files, input=str(root / "silent.wav"))),
            "silent_input",
        ),
        ("NaN samples", enc(edit, *edit_args(files, input=str(root / "nan.wav"))), "non_finite"),
        ("too long", enc(edit, *edit_args(files, input=str(root / "long.wav"))), "too_long"),
        (
            "missing output dir",
            enc(edit, *edit_args(files, output_dir=str(root / "nowhere"))),
            "output_unwritable",
        ),
        (
            "output dir is a file",
            enc(edit, *edit_args(files, output_dir=str(root / "a_file"))),
            "output_unwritable",
        ),
        (
            "status file folder missing",
            enc(edit, *edit_args(files, status_file=str(root / "nowhere" / "s.json"))),
            "bad_request",
        ),
    ]


def test_every_bad_request_gets_its_code_and_the_engine_survives(
    engine: EngineProcess, files: dict[str, Path]
) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        StepEditClient("127.0.0.1", engine.port, timeout=5) as pinger,
    ):
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(30)
        for index, (what, datagram, code) in enumerate(cases(files)):
            # A fresh job id per case, so no case is answered from an earlier one.
            datagram = datagram.replace(b"bad-job\0", f"bad-{index:03d}\0".encode())
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
