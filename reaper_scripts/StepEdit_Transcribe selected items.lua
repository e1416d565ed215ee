-- @description Transcribe selected items
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @about
--   Transcribes what each selected item plays: the words go into the item's notes and, with
--   their times, into the take (for "StepEdit_Edit as text"); with the setting "Take markers
--   at words" each word also gets a take marker at its start. One undo point.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.transcribe_selected_items()
