-- @description StepEdit library (shared by the StepEdit actions)
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @provides
--   [nomain] .
--   [nomain] StepEdit/*.lua
-- @about
--   # StepEdit library
--
--   Shared code of the StepEdit actions: settings, the OSC and JSON codecs, the two
--   transports to the StepEdit engine, turning selected items into edit requests, the
--   background job loop, putting results back as new takes, transcripts and the text
--   editor. It is not an action itself.

--[[
Loads the modules in the StepEdit/ folder next to this file and returns their API as one
table (what the StepEdit_*.lua actions call). Each module is a file of one concern:

  StepEdit/codec.lua      protocol mirror of bridge/protocol.py (PROTOCOL_VERSION,
                          DEFAULT_PORT, ADDRESS, ERROR_CODES, JOB_STATES, STATE_EVENTS),
                          json_encode/json_decode, osc_encode/osc_decode (pure Lua)
  StepEdit/hmac.lua       SHA-256 and HMAC-SHA256 (pure Lua)
  StepEdit/auth.lua       sign(packet, key): the /stepedit/auth envelope (pure Lua)
  StepEdit/files.lua      paths, command-line quoting, file reads and writes (pure Lua)
  StepEdit/settings.lua   ExtState section "StepEdit": settings, running jobs, cancel requests
  StepEdit/items.lua      item_slice(item), edit_label(edit), take_name(edit, passes),
                          sensitive_spans(slice)
  StepEdit/transport.lua  OSC over UDP (LuaSocket) or `stepedit send` + status files, one
                          interface; query(addresses, on_reply) for ping/capabilities
  StepEdit/ui.lua         messages, progress (ReaImGui window or console), dialogs
  StepEdit/batch.lua      one job per selected item, the defer loop, results -> new takes
                          (or transcripts) in one undo point
  StepEdit/transcripts.lua  words with times kept with the take (P_EXT), item notes, take
                          markers, filler lists
  StepEdit/editor.lua     the "Edit as text" box: ReaImGui window or GetUserInputs
  StepEdit/actions.lua    what each action runs

API (fields of the returned table)
  everything of codec.lua; settings(), set_setting(key, value), SECTION, VERSION;
  item_slice, edit_label, take_name; open_transport(settings), query, engine_down_message;
  stored_transcript(take) -> {language, text, input, start, length, words = {{word, start,
  stop, filler}, ...}} | nil (what "Transcribe selected items" keeps with a take);
  edit_selected_items(edit, opts), repeat_last_edit(), one_more_pass(), edit_dialog(),
  cancel_jobs(), engine_status(), start_engine(), settings_dialog(),
  transcribe_selected_items(), edit_as_text()

Each module is a chunk called with `import` as its argument: import(name) loads
StepEdit/<name>.lua once per load of this file (no require: package.loaded would keep
modules of another copy of the scripts).
]]

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local folder = here .. "StepEdit" .. (here:match("\\$") and "\\" or "/")

local loaded = {}

local function import(name)
  if loaded[name] == nil then
    loaded[name] = false -- a module importing itself (directly or not) fails below
    local chunk, err = loadfile(folder .. name .. ".lua")
    if not chunk then
      error("StepEdit library file missing or broken (reinstall the \"StepEdit library\" " ..
        "package with ReaPack): " .. tostring(err), 0)
    end
    loaded[name] = chunk(import)
  end
  assert(loaded[name], "StepEdit module imports itself: " .. name)
  return loaded[name]
end

local settings, items, transport = import("settings"), import("items"), import("transport")
local transcripts = import("transcripts")

local M = {
  VERSION = "0.1.0",
  SECTION = settings.SECTION,
  settings = settings.settings,
  set_setting = settings.set_setting,
  item_slice = items.item_slice,
  edit_label = items.edit_label,
  take_name = items.take_name,
  open_transport = transport.open_transport,
  query = transport.query,
  engine_down_message = transport.engine_down_message,
  stored_transcript = transcripts.stored,
}
for key, value in pairs(import("codec")) do M[key] = value end
for key, value in pairs(import("actions")) do M[key] = value end

return M
