-- @description Edit selected items…
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @about
--   Opens a menu of every edit type and option the running StepEdit engine reports (greyed
--   out when its backend cannot render it yet), then asks for iterations and, where the edit
--   uses them, the transcript or target text. Results land as new active takes.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.edit_dialog()
