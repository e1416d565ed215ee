"""End to end: action scripts in Lua 5.4 (emulated REAPER) against a real `stepedit serve`.

Both transports run: "osc" (LuaSocket present, as with the Mavriq sockets package) and
"process" (no sockets: `stepedit send` through ExecProcess, then the status file is polled).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.client import StepEditClient
from bridge.launcher import EngineProcess
from tests.reaper.harness import (
    Project,
    free_port,
    ping,
    run_action,
    stepedit_command,
    stop_process,
)

pytestmark = pytest.mark.slow

TRANSPORTS = ("osc", "process")
CLIP_SECONDS = 7.658095238095238


def settings(engine: EngineProcess, transport: str, **extra: Any) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "extstate": {
            "host": "127.0.0.1",
            "port": str(engine.port),
            "engine_command": stepedit_command(),
            **extra,
        },
        "sockets": transport == "osc",
    }
    return scenario


def item_of(result: dict[str, Any], state: str, index: int) -> dict[str, Any]:
    item: dict[str, Any] = result[state]["tracks"][0]["items"][index]
    return item


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_faster_adds_the_rendered_slice_as_new_active_take(
    engine: EngineProcess, project: Project, transport: str
) -> None:
    result = run_action(
        project,
        "Faster",
        undo=True,
        items=[
            {"file": str(project.clip), "position": 0.0},
            {"file": str(project.clip), "position": 10.0, "startoffs": 1.0, "length": 4.0},
        ],
        **settings(engine, transport),
    )
    assert result["outcome"] == "idle"
    assert result["messages"] == []
    assert f"({transport} transport)" in result["console"]
    for index, slice_seconds in ((0, CLIP_SECONDS), (1, 4.0)):
        item = item_of(result, "after", index)
        original, new = item["takes"]
        assert item["active_take"] == 2
        assert new["name"] == "StepEdit faster"
        path = Path(new["source"]["file"])
        assert path.parent == project.media and path.exists()
        assert path.name.startswith("voice.stepedit.faster.")
        info = sf.info(str(path))
        assert (info.samplerate, info.channels) == (22050, 1)
        # The engine rendered exactly the slice the item plays, 1.25x faster.
        assert info.duration == pytest.approx(slice_seconds / 1.25, rel=0.01)
        assert item["values"]["D_LENGTH"] == pytest.approx(info.duration, abs=1e-6)
        assert item["values"]["B_LOOPSRC"] == 0
        assert new["values"]["D_STARTOFFS"] == 0
        assert original == item_of(result, "before", index)["takes"][0]
    assert item_of(result, "after", 0)["values"]["D_POSITION"] == 0
    assert result["undo_points"] == [{"description": "StepEdit faster", "flags": 4}]
    assert result["after_undo"] == result["before"]
    assert set(result["mutations_outside"]) <= {"take P_NAME"}  # progress in take names
    assert result["extstate"]["running"] == ""
    assert sf.info(str(project.clip)).duration == pytest.approx(CLIP_SECONDS)
    jobs = project.dir / "reaper-resource" / "Data" / "StepEdit" / "jobs"
    if transport == "process":  # request and status files are removed once applied
        assert [p["args"][1] for p in result["processes"]] == ["send", "send"]
        assert list(jobs.iterdir()) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_keep_length_and_a_section_source(
    engine: EngineProcess, project: Project, transport: str
) -> None:
    result = run_action(
        project,
        "Slower",
        items=[{"file": str(project.clip), "section_offset": 2.0, "startoffs": 0.5, "length": 2.0}],
        **settings(engine, transport, keep_length="1"),
    )
    item = item_of(result, "after", 0)
    new = item["takes"][1]
    assert new["name"] == "StepEdit slower"
    assert item["values"]["D_LENGTH"] == pytest.approx(2.0)
    # The engine lists keep_length, so the slower take was fitted to the slice.
    assert sf.info(new["source"]["file"]).duration == pytest.approx(2.0, abs=0.01)
    meta = new["ext"]["StepEdit"]
    assert '"start":2.5' in meta and '"length":2' in meta  # section offset + take offset


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_engine_down_gives_the_message_within_2_s_and_changes_nothing(
    project: Project, transport: str
) -> None:
    port = free_port()  # nothing listens there
    scenario = {
        "extstate": {"port": str(port), "engine_command": stepedit_command()},
        "sockets": transport == "osc",
    }
    result = run_action(project, "Denoise", items=[{"file": str(project.clip)}], **scenario)
    assert len(result["messages"]) == 1
    message = result["messages"][0]
    assert f"not answering on 127.0.0.1:{port}" in message["text"]
    assert f"stepedit serve --port {port}" in message["text"]
    assert "StepEdit_Start engine" in message["text"]
    assert message["at"] <= 2.0
    assert result["after"] == result["before"]
    assert result["undo_points"] == []
    assert list(project.media.iterdir()) == [project.clip]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failed_job_is_listed_and_its_item_kept_while_others_apply(
    engine: EngineProcess, project: Project, transport: str
) -> None:
    silent = project.media / "silence.wav"
    sf.write(str(silent), np.zeros(22050, dtype="float32"), 22050, subtype="PCM_16")
    result = run_action(
        project,
        "Denoise",
        items=[{"file": str(project.clip), "length": 2.0}, {"file": str(silent), "position": 5.0}],
        **settings(engine, transport),
    )
    good, bad = item_of(result, "after", 0), item_of(result, "after", 1)
    assert [t["name"] for t in good["takes"]] == ["voice.wav", "StepEdit denoise"]
    assert bad == item_of(result, "before", 1)
    assert result["undo_points"] == [{"description": "StepEdit denoise", "flags": 4}]
    [message] = result["messages"]
    assert "1 of 2 item(s) could not be edited" in message["text"]
    assert '"silence.wav" at 0:05.0: silent_input' in message["text"]


def unrenderable(engine: EngineProcess) -> tuple[str, str]:
    """An edit type and option the vocabulary lists but the running backend cannot render."""
    with StepEditClient("127.0.0.1", engine.port) as client:
        caps = client.capabilities()
    can = caps["backends"][caps["backend"]]["edits"]
    for kind, spec in caps["edit_types"].items():
        for option in spec["options"] or [""]:
            if kind not in can or (option and option not in can[kind]):
                return kind, option
    pytest.fail("the backend renders the whole vocabulary; nothing to reject")


@pytest.mark.parametrize("transport", ["osc", "process"])
def test_an_edit_the_backend_cannot_render_is_reported(
    engine: EngineProcess, project: Project, transport: str
) -> None:
    kind, option = unrenderable(engine)
    last = {"edit": {"type": kind, "option": option, "target_text": "Hello."}, "opts": {}}
    result = run_action(
        project,
        "Repeat last edit on selected items",
        items=[{"file": str(project.clip)}],
        **settings(engine, transport, last_edit=json.dumps(last)),
    )
    assert result["after"] == result["before"]
    assert result["undo_points"] == []
    [message] = result["messages"]
    assert '"voice.wav" at 0:00.0: unsupported' in message["text"]


def test_edit_dialog_offers_what_the_engine_reports(
    engine: EngineProcess, project: Project
) -> None:
    result = run_action(
        project,
        "Edit selected items",
        items=[{"file": str(project.clip), "length": 3.0}],
        responses={"showmenu": ["speed/slower"], "GetUserInputs": [["2", ""]]},
        **settings(engine, "osc"),
    )
    menu = result["menus"][0]
    kind, option = unrenderable(engine)
    assert ">speed|" in menu and f"#{option or kind}" in menu  # listed, greyed out
    assert "vad" in menu and "denoise" in menu
    assert result["inputs_asked"][0]["captions"] == ["Iterations (1-5)", "Transcript (optional)"]
    item = item_of(result, "after", 0)
    assert item["takes"][1]["name"] == "StepEdit slower \u00d72"
    assert item["values"]["D_LENGTH"] > 3.0


def test_engine_status_over_the_process_transport(engine: EngineProcess, project: Project) -> None:
    result = run_action(project, "Engine status", **settings(engine, "process"))
    text = result["messages"][0]["text"]
    assert "backend cpu on cpu" in text
    assert "speed: faster, slower" in text
    assert result["processes"][0]["timeout"] > 0  # a short blocking CLI call, no sockets


def test_start_engine_launches_it_in_the_background(project: Project) -> None:
    port = free_port()
    result = run_action(
        project,
        "Start engine",
        extstate={"port": str(port), "engine_command": stepedit_command()},
        sockets=True,
    )
    pids = [p["pid"] for p in result["processes"] if p.get("pid")]
    try:
        assert result["processes"][0]["args"][1:] == [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        assert result["processes"][0]["timeout"] == -2
        assert "the engine is running" in result["console"]
        assert ping(port)
    finally:
        for pid in pids:
            stop_process(pid)
