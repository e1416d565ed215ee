"""Transcription through the real engine: OSC jobs, the sidecar, the cache, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.client import ClientError, StepEditClient
from bridge.launcher import EngineProcess, start_engine, stop_engine

pytestmark = pytest.mark.slow

CLIP = "en_ljspeech_LJ050-0131.wav"  # "unless a system is established for the frequent ..."


@pytest.fixture()
def take(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "take.wav"
    shutil.copy(data_dir / CLIP, path)
    return path


def test_transcribe_a_slice_over_osc(engine: EngineProcess, take: Path) -> None:
    before = take.read_bytes()
    with StepEditClient("127.0.0.1", engine.port, timeout=10) as client:
        outcome = client.transcribe({"input": str(take), "start": 0.5, "length": 4.0})
    result = outcome.result
    transcript = result["transcript"]
    assert transcript["language"] == "en" and transcript["model"].startswith("whisper")
    assert "system" in transcript["text"].lower() and "established" in transcript["text"].lower()
    words = transcript["words"]
    assert all(0 <= w["start"] <= w["end"] <= 4.0 + 1e-3 for w in words)
    assert all(w["source_start"] == pytest.approx(w["start"] + 0.5, abs=1e-3) for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert result["start"] == 0.5 and result["length"] == 4.0 and result["cache"] == "miss"
    assert {"read", "transcribe", "write", "total", "queued"} <= set(result["timings"])
    sidecar = Path(outcome.output_path)
    assert sidecar.parent == take.parent and sidecar.name.startswith("take.stepedit.transcript.")
    written = json.loads(sidecar.read_text(encoding="utf-8"))
    assert written["words"] == words and written["input"] == str(take)
    assert take.read_bytes() == before


def test_the_second_transcription_of_a_slice_is_a_cache_hit(tmp_path: Path, take: Path) -> None:
    request = {"input": str(take), "length": 3.0}
    own = start_engine(tmp_path)
    try:
        with StepEditClient("127.0.0.1", own.port, timeout=10) as client:
            first = client.transcribe(request).result
            second = client.transcribe(request).result
    finally:
        stop_engine(own)
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    assert second["transcript"] == first["transcript"]
    # The cache lives in the state folder: a new engine on it hits too.
    again = start_engine(tmp_path)
    try:
        with StepEditClient("127.0.0.1", again.port, timeout=10) as client:
            assert client.transcribe(request).result["cache"] == "hit"
    finally:
        stop_engine(again)


def test_a_known_text_is_aligned(engine: EngineProcess, take: Path) -> None:
    known = "unless a system is established for the frequent formal review"
    with StepEditClient("127.0.0.1", engine.port, timeout=10) as client:
        transcript = client.transcribe({"input": str(take), "text": known}).result["transcript"]
    assert transcript["aligned"] is True
    assert [w["word"].lower().strip(".,") for w in transcript["words"] if not w["filler"]][
        :10
    ] == known.split()


def test_an_unknown_language_is_refused(engine: EngineProcess, take: Path) -> None:
    with (
        StepEditClient("127.0.0.1", engine.port, timeout=10) as client,
        pytest.raises(ClientError) as e,
    ):
        client.transcribe({"input": str(take), "language": "fr"})
    assert e.value.code == "invalid_edit"


def test_the_cli_prints_the_words(engine: EngineProcess, take: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "transcribe", str(take), "--length", "3", "--json",
         "--engine", engine.address, "--timeout", "10", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert Path(document["output_path"]).is_file()
    assert document["transcript"]["words"] and time.monotonic() - started < 120
