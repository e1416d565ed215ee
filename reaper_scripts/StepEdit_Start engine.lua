-- @description Start StepEdit engine
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @about
--   Starts the StepEdit engine in the background ("stepedit serve"). The first time, it asks
--   for the path of the stepedit command (or of the Python of its environment) and keeps it
--   in the StepEdit settings.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.start_engine()
