-- @description StepEdit quick edits (one action per edit)
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @metapackage
-- @provides
--   [main] . > StepEdit_More happy.lua
--   [main] . > StepEdit_More sad.lua
--   [main] . > StepEdit_More angry.lua
--   [main] . > StepEdit_Whisper.lua
--   [main] . > StepEdit_Denoise.lua
--   [main] . > StepEdit_Remove silences.lua
--   [main] . > StepEdit_Faster.lua
--   [main] . > StepEdit_Slower.lua
--   [main] . > StepEdit_Insert breath at edit cursor.lua
--   [main] . > StepEdit_Insert laughter at edit cursor.lua
--   [main] . > StepEdit_Remove fillers.lua
-- @about
--   # StepEdit quick edits
--
--   One action per edit, ready for a key binding. ReaPack installs this script once under
--   each action's name; each copy reads its edit from its own file name.
--
--   - More happy, More sad, More angry: emotion edits
--   - Whisper: whisper style
--   - Denoise: removes background noise; the length is unchanged
--   - Remove silences: keeps natural short pauses; the item shrinks to the new take
--   - Faster, Slower: speaking rate, pitch and timbre kept; the item follows the new length
--   - Insert breath at edit cursor, Insert laughter at edit cursor: a nonverbal sound at the
--     edit cursor, in each selected item the cursor is in
--   - Remove fillers: removes um, uh, er (and the fillers set per language in
--     "StepEdit_Settings") with their hesitation pauses; every other word stays
--
--   Each selected item gets a new active take named after the edit ("StepEdit faster") whose
--   audio is the edited slice the item plays; the original take and file stay untouched.
--   Needs the StepEdit engine running (see "StepEdit_Start engine").

-- Action name (the installed file name without "StepEdit_" and ".lua") -> edit.
local EDITS = {
  ["More happy"] = { type = "emotion", option = "happy" },
  ["More sad"] = { type = "emotion", option = "sad" },
  ["More angry"] = { type = "emotion", option = "angry" },
  ["Whisper"] = { type = "style", option = "whisper" },
  ["Denoise"] = { type = "denoise" },
  ["Remove silences"] = { type = "vad" },
  ["Faster"] = { type = "speed", option = "faster" },
  ["Slower"] = { type = "speed", option = "slower" },
  ["Insert breath at edit cursor"] = { type = "paralinguistic", option = "Breathing" },
  ["Insert laughter at edit cursor"] = { type = "paralinguistic", option = "Laughter" },
  ["Remove fillers"] = { type = "fillers" }, -- language and filler list: from the settings
}
local AT_CURSOR = { at_cursor = true } -- position = edit cursor, in the item's source time

local script_path = select(2, reaper.get_action_context())
local name = script_path:match("StepEdit_([^/\\]*)%.lua$")
if not EDITS[name] then
  local names = {}
  for known in pairs(EDITS) do names[#names + 1] = "StepEdit_" .. known .. ".lua" end
  table.sort(names)
  reaper.MB("\"" .. script_path:match("[^/\\]*$") .. "\" is not a StepEdit quick edit. " ..
    "This script runs under the names ReaPack installs it as:\n\n" .. table.concat(names, "\n") ..
    "\n\nInstall the \"StepEdit quick edits\" package with ReaPack (Extensions > ReaPack > " ..
    "Browse packages) and run those actions.", "StepEdit", 0)
  return reaper.defer(function() end)
end

local script_dir = script_path:match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.edit_selected_items(EDITS[name], name:match(" at edit cursor$") and AT_CURSOR)
