"""The REAPER scripts as a ReaPack repository: headers, index.xml, names, lint, Lua specs."""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest

from tests.reaper.harness import REPO, SCRIPTS


@functools.cache
def make_index() -> ModuleType:
    """reaper_scripts/make_index.py (not in a package: the scripts folder is the ReaPack repo)."""
    spec = importlib.util.spec_from_file_location("make_index", SCRIPTS / "make_index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_index"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SCRIPT_FILES = sorted(SCRIPTS.glob("StepEdit_*.lua"))

# The actions the issue asks for, by file name.
REQUIRED_ACTIONS = (
    "More happy", "More sad", "More angry", "Whisper", "Denoise", "Remove silences", "Faster",
    "Slower", "Insert breath at edit cursor", "Insert laughter at edit cursor",
    "Edit selected items", "Repeat last edit on selected items",
    "One more pass on the active take", "Cancel jobs", "Engine status", "Start engine",
)


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
def test_every_script_has_a_complete_reapack_header(path: Path) -> None:
    module = make_index()
    package = module.parse_header(path)
    module.check_header(package)  # raises naming what is missing
    assert package.tags["version"] == "0.1.0"


def test_a_missing_tag_is_reported(tmp_path: Path) -> None:
    module = make_index()
    script = tmp_path / "StepEdit_Broken.lua"
    script.write_text("-- @description Broken\n-- @version 1.0\n\nreturn\n")
    with pytest.raises(module.HeaderError, match=r"missing @author, @changelog, @about"):
        module.check_header(module.parse_header(script))


def test_index_xml_matches_the_headers() -> None:
    module = make_index()
    expected = module.render_index(module.packages())
    assert (SCRIPTS / "index.xml").read_text(encoding="utf-8") == expected, (
        "index.xml drifted from the script headers: run python reaper_scripts/make_index.py")


def test_index_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = make_index()
    for path in SCRIPT_FILES:
        shutil.copy(path, tmp_path)
    changed = tmp_path / "StepEdit_Faster.lua"
    changed.write_text(changed.read_text().replace("@version 0.1.0", "@version 0.1.1"))
    assert module.render_index(module.packages(tmp_path)) != (SCRIPTS / "index.xml").read_text()


def test_index_lists_every_script_once_with_its_file() -> None:
    root = ET.parse(SCRIPTS / "index.xml").getroot()
    packages = root.findall("./category/reapack")
    assert sorted(p.get("name") for p in packages) == [p.name for p in SCRIPT_FILES]
    for package in packages:
        source = package.find("./version/source")
        assert source is not None and source.text is not None
        assert (SCRIPTS / unquote(source.text.rsplit("/", 1)[1])).exists()
        assert (source.get("main") is None) == (package.get("name") == "StepEdit_lib.lua")


def test_actions_are_named_as_sentences_and_cover_the_issue() -> None:
    names = [p.stem.removeprefix("StepEdit_") for p in SCRIPT_FILES if p.name != "StepEdit_lib.lua"]
    for name in names:
        assert re.fullmatch(r"[A-Z][a-z]*( [a-z]+)*", name), name
    assert set(REQUIRED_ACTIONS) <= set(names)


@pytest.mark.parametrize("path", [p for p in SCRIPT_FILES if p.name != "StepEdit_lib.lua"],
                         ids=lambda p: p.name)
def test_actions_are_tiny_and_go_through_the_library(path: Path) -> None:
    code = [line for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("--")]
    assert len(code) <= 12
    assert re.search(r"^StepEdit\.\w+\(", path.read_text(), re.M)


def test_emulator_stays_out_of_the_scripts_folder() -> None:
    assert not list(SCRIPTS.glob("*emulator*")) and not list(SCRIPTS.glob("*_spec.lua"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: lua-check / lua-busted)")
    return path


def test_luacheck_is_clean() -> None:
    done = subprocess.run([tool("luacheck"), "--no-color", "."], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_busted_specs_pass_under_lua_5_4() -> None:
    done = subprocess.run([tool("busted"), "--lua=lua5.4", "-o", "utfTerminal", "tests/reaper"],
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
