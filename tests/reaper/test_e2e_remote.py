"""End to end: keep_length in the request, and an engine that cannot see the project folder.

The action runs in Lua 5.4 (emulated REAPER) against a real `stepedit serve`; its
`stepedit` command is a shell shim that keeps a copy of every request file the library
writes, so the test reads what was asked.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.launcher import EngineProcess, start_engine, stop_engine
from tests.reaper.harness import Project, run_action, stepedit_command

pytestmark = pytest.mark.slow


def logging_command(project: Project) -> tuple[str, Path]:
    """A `stepedit` that copies each --request-file into a folder first; (command, folder)."""
    requests = project.dir / "requests"
    requests.mkdir()
    shim = project.dir / "stepedit-shim"
    shim.write_text(
        '#!/bin/sh\nprev=\nfor a in "$@"; do\n'
        f'  [ "$prev" = --request-file ] && cp "$a" "{requests}/"\n'
        '  prev="$a"\ndone\n'
        f'exec "{stepedit_command()}" "$@"\n'
    )
    shim.chmod(0o755)
    return str(shim), requests


def requests_sent(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_keep_length_is_asked_of_the_engine_and_the_take_lasts_the_slice(
    engine: EngineProcess, project: Project
) -> None:
    command, requests = logging_command(project)
    result = run_action(
        project,
        "Slower",
        items=[{"file": str(project.clip), "startoffs": 1.0, "length": 2.0}],
        extstate={
            "port": str(engine.port),
            "engine_command": command,
            "keep_length": "1",
            "transport": "process",
        },
        sockets=False,
    )
    assert result["messages"] == []
    [request] = requests_sent(requests)
    assert request["edit"]["keep_length"] is True
    item = result["after"]["tracks"][0]["items"][0]
    new = item["takes"][1]
    assert new["name"] == "StepEdit slower"
    # The engine fitted the slower result to the slice; the item keeps its length.
    assert sf.info(new["source"]["file"]).duration == pytest.approx(2.0, abs=0.01)
    assert item["values"]["D_LENGTH"] == pytest.approx(2.0)


@pytest.fixture(scope="module")
def remote_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EngineProcess, Path]]:
    """A signed-only engine whose input and output roots hold nothing of the project."""
    own = tmp_path_factory.mktemp("engine-files")
    (own / "in").mkdir()
    (own / "out").mkdir()
    running = start_engine(
        tmp_path_factory.mktemp("remote-engine"),
        "--require-auth",
        "--state-dir",
        str(own / "state"),
        "--input-root",
        str(own / "in"),
        "--output-root",
        str(own / "out"),
    )
    yield running, own
    stop_engine(running)


def test_an_engine_that_cannot_see_the_project_gets_the_slice_and_sends_the_result_back(
    remote_engine: tuple[EngineProcess, Path], project: Project
) -> None:
    engine, own = remote_engine
    assert engine.secret is not None
    before = digest(project.clip)
    state_files = set(files_under(own / "state"))
    command, requests = logging_command(project)
    result = run_action(
        project,
        "Faster",
        items=[{"file": str(project.clip), "startoffs": 1.0, "length": 4.0}],
        regions=[{"start": 1.0, "end": 2.0, "name": "sensitive"}],
        extstate={
            "port": str(engine.port),
            "engine_command": command,
            "remote": "1",
            "mask_sound": "silence",
            "secret": engine.secret,
        },
        sockets=True,  # LuaSocket present: a remote engine still gets the stepedit client
        timeout=40,
    )
    assert result["messages"] == []
    assert "(process transport)" in result["console"]
    [process] = result["processes"]
    args = process["args"]
    assert args[1] == "send" and "--remote" in args
    assert args[args.index("--sensitive") + 1] == "2.000-3.000"  # file seconds
    [request] = requests_sent(requests)
    assert (request["input"], request["start"], request["length"]) == (str(project.clip), 1, 4)

    item = result["after"]["tracks"][0]["items"][0]
    assert item["active_take"] == 2
    new = item["takes"][1]
    path = Path(new["source"]["file"])
    assert path.parent == project.media and path.name.startswith("voice.stepedit.faster.")
    assert sf.info(str(path)).duration == pytest.approx(4.0 / 1.25, rel=0.01)
    assert digest(project.clip) == before
    assert files_under(own / "in") == [] and files_under(own / "out") == []
    # Left on the engine: the uploaded slice (4 s, not the whole file) in its transfer store,
    # the result released; and its transcript cache, which this edit did not fill.
    left = set(files_under(own / "state")) - state_files
    [upload] = [p for p in left if "transfers" in p.parts]
    assert upload.parent.name == "uploads"
    sent, rate = sf.read(str(upload))
    assert len(sent) / rate == pytest.approx(4.0, abs=1e-3)
    source, _ = sf.read(str(project.clip), start=rate, frames=4 * rate)
    masked = slice(rate, 2 * rate)  # the region, masked with silence before the upload
    assert np.abs(sent[masked]).max() == 0 and np.abs(source[masked]).max() > 0.1
    for cache in left - {upload}:
        assert cache.relative_to(own / "state") == Path("cache/transcripts.sqlite3")
        with closing(sqlite3.connect(cache)) as db:
            assert db.execute("select count(*) from transcripts").fetchone() == (0,)
