"""End to end: transcripts and text edits from the REAPER actions against a real `stepedit serve`.

"Transcribe selected items", "Edit as text" (through REAPER's GetUserInputs dialog, as without
ReaImGui) and "Remove fillers" run in Lua 5.4 in the emulator, over both transports. The words
come from the engine's own recogniser; the audio checks that belong to the engine (which words
a cut removed, how joins sound) are its tests' business, not these.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from bridge import protocol
from bridge.client import StepEditClient
from bridge.launcher import EngineProcess
from tests.reaper.harness import Project, run_action, stepedit_command
from tests.reaper.test_e2e import CLIP_SECONDS, TRANSPORTS, item_of, settings

pytestmark = pytest.mark.slow


def _engine_transcribes(port: int) -> bool:
    """Whether the engine knows /stepedit/transcribe: a request without an input is refused as
    a bad request, not as an unknown address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.bind(("127.0.0.1", 0))
        s.sendto(
            protocol.encode(protocol.ADDRESS["transcribe"], f"probe-{uuid.uuid4().hex}", "{}"),
            ("127.0.0.1", port),
        )
        try:
            [reply] = protocol.decode_datagram(s.recv(65536))
        except TimeoutError:
            return False
    return not (reply.address == protocol.ADDRESS["error"] and reply.args[1] == "unknown_address")


@pytest.fixture(scope="module")
def text_engine(engine: EngineProcess) -> EngineProcess:
    """The session's engine, when it can transcribe and render text and fillers edits; these
    tests are skipped only while the engine lacks one of them."""
    with StepEditClient("127.0.0.1", engine.port) as client:
        caps = client.capabilities()
    renderable = caps["backends"][caps["backend"]]["edits"]
    missing = [kind for kind in ("text", "fillers") if kind not in renderable]
    if not _engine_transcribes(engine.port):
        missing.append("/stepedit/transcribe")
    if missing:
        pytest.skip(f"the engine cannot yet do {', '.join(missing)}")
    return engine


def transport_settings(engine: EngineProcess, transport: str, **extra: Any) -> dict[str, Any]:
    if transport == "process":
        done = subprocess.run(
            [stepedit_command(), "send", "--help"], capture_output=True, text=True, check=False
        )
        if "--kind" not in done.stdout:
            pytest.skip("`stepedit send` cannot yet send a transcription (--kind transcribe)")
    return settings(engine, transport, **extra)


def stored_transcript(take: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(take["ext"]["StepEdit_transcript"])
    return data


def sends(result: dict[str, Any]) -> list[str]:
    """The kind of each `stepedit send` the process transport ran (edit when not named)."""
    kinds = []
    for process in result["processes"]:
        args = process["args"][1:]
        if args[:1] == ["send"]:
            kinds.append(args[args.index("--kind") + 1] if "--kind" in args else "edit")
    return kinds


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_transcribe_writes_the_words_into_notes_take_and_markers(
    text_engine: EngineProcess, project: Project, transport: str
) -> None:
    result = run_action(
        project,
        "Transcribe selected items",
        undo=True,
        items=[{"file": str(project.clip), "position": 2.0, "startoffs": 1.0, "length": 4.0}],
        **transport_settings(text_engine, transport, take_markers="1"),
    )
    assert result["messages"] == []
    item = item_of(result, "after", 0)
    [take] = item["takes"]
    transcript = stored_transcript(take)
    words = transcript["words"]
    assert item["notes"] == transcript["text"] and "frequent" in item["notes"].lower()
    assert len(words) >= 5
    assert (transcript["input"], transcript["start"], transcript["length"]) == (
        str(project.clip),
        1.0,
        4.0,
    )
    for word, next_word in itertools.pairwise(words):
        assert 0 <= word[1] <= word[2] <= next_word[1] + 1e-3 <= 4.0
    # One take marker per word, at its start in the take's source time (the file's, here).
    assert [m["name"] for m in take["markers"]] == [w[0] for w in words]
    for marker, word in zip(take["markers"], words, strict=True):
        assert marker["srcpos"] == pytest.approx(1.0 + word[1], abs=1e-6)
    assert result["undo_points"] == [{"description": "StepEdit transcribe", "flags": 4}]
    assert result["after_undo"] == result["before"]
    assert set(result["mutations_outside"]) <= {"take P_NAME"}
    if transport == "process":
        assert sends(result) == ["transcribe"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_edit_as_text_deletes_a_word_as_a_new_take(
    text_engine: EngineProcess, project: Project, transport: str
) -> None:
    result = run_action(
        project,
        "Edit as text",
        undo=True,
        items=[{"file": str(project.clip)}],
        edit_text=[[["[Ff]requent ", ""]]],
        **transport_settings(text_engine, transport),
    )
    assert result["messages"] == []
    [asked] = result["inputs_asked"]
    assert "frequent" in asked["shown"].lower()  # transcribed first: no words were stored
    item = item_of(result, "after", 0)
    original, new = item["takes"]
    assert item["active_take"] == 2
    assert new["name"] == "StepEdit text edit"
    path = Path(new["source"]["file"])
    assert path.parent == project.media
    # One word (about 0.5 s) is gone; the engine's own tests check which audio went.
    assert CLIP_SECONDS - 1.5 < sf.info(str(path)).duration < CLIP_SECONDS - 0.2
    assert item["values"]["D_LENGTH"] == pytest.approx(sf.info(str(path)).duration, abs=1e-6)
    assert "frequent" not in item["notes"].lower()  # the new take's words, from the result
    assert stored_transcript(new)["text"] == item["notes"]
    assert "frequent" in stored_transcript(original)["text"].lower()
    assert [p["description"] for p in result["undo_points"]] == [
        "StepEdit transcribe",
        "StepEdit text edit",
    ]
    undone = item_of(result, "after_undo", 0)
    assert len(undone["takes"]) == 1 and "frequent" in undone["notes"].lower()
    assert not any(key.startswith("draft:") for key in result["extstate"])
    if transport == "process":
        assert sends(result) == ["transcribe", "edit"]


def test_masked_words_keep_the_length(text_engine: EngineProcess, project: Project) -> None:
    result = run_action(
        project,
        "Edit as text",
        items=[{"file": str(project.clip), "startoffs": 1.0, "length": 4.0}],
        edit_text=[[["([Ff]ormal)", "{%1}"]]],
        **settings(text_engine, "osc", mask_sound="silence"),
    )
    item = item_of(result, "after", 0)
    new = item["takes"][1]
    assert new["name"] == "StepEdit text edit"
    assert sf.info(new["source"]["file"]).duration == pytest.approx(4.0, abs=0.002)
    assert "formal" not in item["notes"].lower()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_new_words_on_the_cpu_backend_show_the_engines_message(
    text_engine: EngineProcess, project: Project, transport: str
) -> None:
    result = run_action(
        project,
        "Edit as text",
        items=[{"file": str(project.clip), "startoffs": 1.0, "length": 4.0}],
        edit_text=[[["([Ff]ormal)", "banana"]]],
        **transport_settings(text_engine, transport),
    )
    [message] = result["messages"]
    assert '"voice.wav" at 0:00.0: unsupported: ' in message["text"]
    assert "banana" in message["text"] and "stepaudio" in message["text"]  # the engine's words
    assert 'Your edited text is kept: run "StepEdit_Edit as text" again' in message["text"]
    item = item_of(result, "after", 0)
    assert len(item["takes"]) == 1
    assert [p["description"] for p in result["undo_points"]] == ["StepEdit transcribe"]
    [draft] = [json.loads(v) for k, v in result["extstate"].items() if k.startswith("draft:")]
    assert "banana" in draft["text"]


def test_remove_fillers_adds_a_take(text_engine: EngineProcess, project: Project) -> None:
    result = run_action(
        project,
        "Remove fillers",
        undo=True,
        items=[{"file": str(project.clip), "length": 4.0}],
        **settings(text_engine, "osc", language="en", fillers_en="um uh er"),
    )
    assert result["messages"] == []
    item = item_of(result, "after", 0)
    new = item["takes"][1]
    assert new["name"] == "StepEdit remove fillers"
    assert sf.info(new["source"]["file"]).duration <= 4.0 + 1e-3
    assert stored_transcript(new)["text"] == item["notes"]  # the words the result kept
    assert result["undo_points"] == [{"description": "StepEdit remove fillers", "flags": 4}]
    assert result["after_undo"] == result["before"]
