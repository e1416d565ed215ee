"""Runs Lua for the REAPER-script tests: action scripts in the emulator, or snippets."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "reaper_scripts"
CLIP = REPO / "tests" / "data" / "en_ljspeech_LJ050-0131.wav"
LUA = shutil.which("lua5.4")
LUA_HINT = "lua5.4 is not installed (apt-get install lua5.4 lua-socket lua-dkjson)"


@dataclass
class Project:
    """A project folder; its media folder holds a copy of a real speech clip."""

    dir: Path
    media: Path
    clip: Path


@functools.cache
def make_index() -> ModuleType:
    """reaper_scripts/make_index.py (not in a package: the scripts folder is the ReaPack repo)."""
    spec = importlib.util.spec_from_file_location("make_index", SCRIPTS / "make_index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_index"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def stepedit_command() -> str:
    """The `stepedit` CLI of this environment (what a user sets as the engine command)."""
    candidate = Path(sys.executable).parent / "stepedit"
    found = str(candidate) if candidate.exists() else shutil.which("stepedit")
    if found is None:
        pytest.skip("the stepedit command is not installed (pip install -e .)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    from bridge.client import ClientError, StepEditClient

    try:
        with StepEditClient("127.0.0.1", port, timeout=timeout) as client:
            client.ping()
    except ClientError:
        return False
    return True


def stop_process(pid: int) -> None:
    """Ends a process the Lua side started with ExecProcess (the emulator records its pid)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def install_scripts(resource_dir: Path) -> Path:
    """Installs the scripts as ReaPack does from index.xml; returns their folder.

    Each ``<source>`` becomes a copy of its file named by its ``file`` attribute (an alias of
    a metapackage, or a library module's path such as ``StepEdit/codec.lua``) or by the file
    itself, in ``<resource>/Scripts/<index>/<category>/``.
    """
    root = ET.parse(SCRIPTS / "index.xml").getroot()
    category = root.find("category")
    assert category is not None
    folder = resource_dir / "Scripts" / root.get("name", "") / category.get("name", "")
    folder.mkdir(parents=True, exist_ok=True)
    for source in category.iter("source"):
        assert source.text is not None
        path = unquote(source.text.split("/reaper_scripts/", 1)[1])
        target = folder / source.get("file", path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCRIPTS / path, target)
    return folder


def run_lua(code: str, *args: str, stdin: bytes = b"") -> bytes:
    """Runs a Lua 5.4 snippet from the repository root; returns its stdout."""
    if LUA is None:
        pytest.skip(LUA_HINT)
    done = subprocess.run(
        [LUA, "-e", code, "-", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def run_action(project: Project, script: str, **scenario: Any) -> dict[str, Any]:
    """Runs the action StepEdit_<script>.lua, installed as ReaPack would, in the emulator;
    returns its result JSON."""
    if LUA is None:
        pytest.skip(LUA_HINT)
    resource_dir = project.dir / "reaper-resource"
    action = install_scripts(resource_dir) / f"StepEdit_{script}.lua"
    assert action.exists(), f"no action {action.name} is installed from index.xml"
    scenario = {
        "script": str(action),
        "project_dir": str(project.dir),
        "media_dir": str(project.media),
        "resource_dir": str(resource_dir),
        "process_log": str(project.dir / "processes.log"),
        **scenario,
    }
    scenario_file = project.dir / f"scenario-{time.monotonic_ns()}.json"
    result_file = scenario_file.with_suffix(".result.json")
    scenario_file.write_text(json.dumps(scenario))
    done = subprocess.run(
        [LUA, "tests/reaper/run_action.lua", str(scenario_file), str(result_file)],
        cwd=REPO,
        capture_output=True,
        timeout=scenario.get("timeout", 60) + 30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(result_file.read_text())
    assert result["errors"] == [], "\n".join(result["errors"])
    assert result["ui_refresh"] == 0, "PreventUIRefresh calls are unbalanced"
    assert result["undo_depth"] == 0, "an undo block was left open"
    return result
