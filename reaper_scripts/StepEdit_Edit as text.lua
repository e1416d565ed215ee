-- @description Edit as text
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @about
--   Opens the selected item's transcript in a text box (transcribing it first if needed).
--   Delete words, type or move words, write [Laughter] or [Breathing] between words, or
--   {words} in braces to mask them; Apply renders the changed text as a new active take,
--   one undo point. A ReaImGui window when ReaImGui is installed, else REAPER's input dialog
--   (up to about 800 bytes of text).

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])") or ""
local ok, StepEdit = pcall(dofile, script_dir .. "StepEdit_lib.lua")
if not ok then
  reaper.MB("This action needs StepEdit_lib.lua next to it; install the \"StepEdit library\" " ..
    "package with ReaPack (Extensions > ReaPack > Browse packages).\n\n" .. tostring(StepEdit),
    "StepEdit", 0)
  return reaper.defer(function() end)
end

StepEdit.edit_as_text()
