"""StepEdit_Quick edits.lua: each alias ReaPack installs runs its own edit of the vocabulary."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from engine.edits import EDIT_TYPES, parse_edit
from tests.reaper.harness import SCRIPTS, Project, install_scripts, make_index, run_action

QUICK_EDITS = SCRIPTS / "StepEdit_Quick edits.lua"
ALIASES = [source.file for source in make_index().parse_header(QUICK_EDITS).sources]


def action(alias: str) -> str:
    return alias.removeprefix("StepEdit_").removesuffix(".lua")


def test_every_alias_runs_its_own_valid_edit_of_the_vocabulary(project: Project) -> None:
    edits = {}
    for alias in ALIASES:
        # Nothing selected: the action stores its edit as the last edit, then stops.
        result = run_action(project, action(alias))
        assert [m["text"] for m in result["messages"]] == [
            "Select one or more speech items first."
        ], alias
        assert result["undo_points"] == [], alias
        last = json.loads(result["extstate"]["last_edit"])
        edit, at_cursor = last["edit"], bool(last["opts"] and last["opts"].get("at_cursor"))
        assert edit["type"] in EDIT_TYPES, alias
        assert edit.get("option", "") in (EDIT_TYPES[edit["type"]].options or ("",)), alias
        assert at_cursor == alias.endswith(" at edit cursor.lua"), alias
        # The library adds each item's cursor position to an edit that inserts at the cursor.
        parse_edit({**edit, **({"position": [0.5]} if at_cursor else {})})
        edits[alias] = (edit["type"], edit.get("option", ""))
    assert len(set(edits.values())) == len(ALIASES), f"two aliases run the same edit: {edits}"


@pytest.mark.parametrize("name", ["Louder", "Quick edits"])
def test_an_unknown_name_says_which_names_the_script_runs_under(
    project: Project, name: str
) -> None:
    folder = install_scripts(project.dir / "reaper-resource")
    shutil.copyfile(QUICK_EDITS, folder / f"StepEdit_{name}.lua")
    result = run_action(project, name, items=[{"file": str(project.clip)}])
    [message] = result["messages"]
    assert message["text"].startswith(f'"StepEdit_{name}.lua" is not a StepEdit quick edit.')
    assert 'Install the "StepEdit quick edits" package with ReaPack' in message["text"]
    # The script's alias table and its @provides list name the same actions.
    assert re.findall(r"^StepEdit_.*\.lua$", message["text"], re.M) == sorted(ALIASES)
    assert result["after"] == result["before"]
    assert result["undo_points"] == []
    assert "last_edit" not in result["extstate"]
