-- @description More angry
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @about
--   Makes the selected speech items sound angrier. Each selected item gets a new active take
--   named "StepEdit angry" whose audio is the edited slice the item plays; the original take
--   and file stay untouched. Needs the StepEdit engine running (see "StepEdit_Start
--   engine").

local EDIT = { type = "emotion", option = "angry" }

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.edit_selected_items(EDIT)
