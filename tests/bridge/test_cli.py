"""The `stepedit` command against the real engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from bridge.launcher import EngineProcess, free_udp_port

pytestmark = pytest.mark.slow


def stepedit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=120
    )


def test_edit_prints_the_new_path(engine: EngineProcess, data_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "take.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", clip)
    done = stepedit(
        "edit",
        str(clip),
        "--speed",
        "more_faster",
        "--start",
        "1",
        "--length",
        "3",
        "-o",
        str(tmp_path),
        "--engine",
        engine.address,
    )
    assert done.returncode == 0, done.stderr
    output = Path(done.stdout.strip())
    assert output.is_file() and output.parent == tmp_path
    assert soundfile.info(output).frames == pytest.approx(3 * 22050 / 1.5, abs=2)
    assert "writing" in done.stderr  # the progress display


def test_edit_json_and_errors(engine: EngineProcess, data_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "take.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", clip)
    done = stepedit("edit", str(clip), "--vad", "--json", "-q", "--engine", engine.address)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backend"] == "cpu"
    failed = stepedit("edit", str(clip), "--speed", "warp", "--engine", engine.address)
    assert failed.returncode == 1
    assert "[invalid_edit] unknown option 'warp'" in failed.stderr
    missing = stepedit("edit", str(tmp_path / "gone.wav"), "--denoise", "--engine", engine.address)
    assert missing.returncode == 1 and "[input_not_found]" in missing.stderr


def test_no_engine_is_a_clear_error() -> None:
    failed = stepedit("ping", "--engine", f"127.0.0.1:{free_udp_port()}", "--timeout", "0.5")
    assert failed.returncode == 1
    assert "no StepEdit engine answered" in failed.stderr and "stepedit serve" in failed.stderr


def test_ping_and_capabilities_to_files(engine: EngineProcess, tmp_path: Path) -> None:
    assert (
        stepedit(
            "ping", "--engine", engine.address, "--output", str(tmp_path / "p.json")
        ).returncode
        == 0
    )
    assert json.loads((tmp_path / "p.json").read_text())["backend"] == "cpu"
    assert (
        stepedit(
            "capabilities", "--engine", engine.address, "--output", str(tmp_path / "c.json")
        ).returncode
        == 0
    )
    assert "speed" in json.loads((tmp_path / "c.json").read_text())["backends"]["cpu"]["edits"]


def test_send_then_poll_the_status_file(
    engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "take.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", clip)
    status = tmp_path / "status.json"
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps({"input": str(clip), "edit": {"type": "denoise"}, "status_file": str(status)})
    )
    sent = stepedit(
        "send", "--job-id", "cli-send-1", "--request-file", str(request), "--engine", engine.address
    )
    assert sent.returncode == 0, sent.stderr
    final = stepedit("status", "cli-send-1", "--engine", engine.address)
    while final.stdout.startswith(("accepted", "progress")):
        final = stepedit("status", "cli-send-1", "--engine", engine.address)
    assert final.stdout.startswith("done")
    assert json.loads(status.read_text())["state"] == "done"


def test_rejected_request_is_written_to_the_status_file(
    engine: EngineProcess, tmp_path: Path
) -> None:
    status = tmp_path / "status.json"
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "input": str(tmp_path / "gone.wav"),
                "edit": {"type": "vad"},
                "status_file": str(status),
            }
        )
    )
    sent = stepedit(
        "send", "--job-id", "cli-send-2", "--request-file", str(request), "--engine", engine.address
    )
    assert sent.returncode == 1 and "[input_not_found]" in sent.stderr
    assert json.loads(status.read_text())["error"]["code"] == "input_not_found"


def test_edit_as_text_and_remove_fillers(
    engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "take.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", clip)
    said = "unless a system is established for the frequent formal review of activities"
    common = ["--length", "5", "--engine", engine.address, "--timeout", "10", "-q", "--json"]
    done = stepedit("edit", str(clip), "--text", said, "--as-text", said.replace(" formal", ""),
                    *common)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    actions = {w["word"]: w["action"] for w in result["words"]}
    assert actions["formal"] == "deleted" and actions["frequent"] == "kept"
    assert result["duration"] < 5.0 and Path(result["output_path"]).is_file()
    fillers = stepedit("edit", str(clip), "--fillers", *common)
    assert fillers.returncode == 0, fillers.stderr
    assert Path(json.loads(fillers.stdout)["output_path"]).is_file()


def test_decode_passes_flag_reaches_the_edit_object() -> None:
    from bridge.cli import _edit_fields, _parser

    args = _parser().parse_args(
        ["edit", "take.wav", "--emotion", "happy", "--iterations", "3", "--decode-passes"]
    )
    assert _edit_fields(args) == {
        "type": "emotion",
        "option": "happy",
        "iterations": 3,
        "decode_passes": True,
    }
    plain = _parser().parse_args(["edit", "take.wav", "--emotion", "happy"])
    assert "decode_passes" not in _edit_fields(plain)


def test_serve_guard_and_segment_flags_set_the_engine_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import _engine_config, _parser, main

    flags = ["--guard-max-wer", "0.35", "--guard-tries", "5", "--segment-seconds", "12.5"]
    config = _engine_config(_parser().parse_args(["serve", *flags]), tmp_path)
    assert (config.guard_max_wer, config.guard_tries, config.segment_seconds) == (0.35, 5, 12.5)
    default = _engine_config(_parser().parse_args(["serve"]), tmp_path)
    assert (default.guard_max_wer, default.guard_tries, default.segment_seconds) == (0.2, 3, None)
    # Out of range: a clear error before anything is served.
    assert main(["serve", "--state-dir", str(tmp_path), "--segment-seconds", "200"]) == 2
    assert "segment_seconds must be 5 to 90 s, got 200" in capsys.readouterr().err
