-- @description Insert laughter at edit cursor
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @about
--   Inserts laughter at the edit cursor into each selected item the cursor is in. Each
--   selected item gets a new active take named "StepEdit Laughter" whose audio is the edited
--   slice the item plays; the original take and file stay untouched. Needs the StepEdit
--   engine running (see "StepEdit_Start engine").

local EDIT = { type = "paralinguistic", option = "Laughter" }
local OPTIONS = { at_cursor = true } -- position = edit cursor, in the item's source time

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.edit_selected_items(EDIT, OPTIONS)
