-- @noindex
-- StepEdit actions: what each StepEdit_*.lua action calls (through StepEdit_lib.lua).
--
--   edit_selected_items(edit, opts)  edit = {type, option, iterations, text, target_text};
--                                    opts.at_cursor inserts at the edit cursor
--   repeat_last_edit(), one_more_pass(), edit_dialog(), cancel_jobs(),
--   engine_status(), start_engine(), settings_dialog()

local import = ...
local batch = import("batch")
local codec = import("codec")
local files = import("files")
local items = import("items")
local settings = import("settings")
local transports = import("transport")
local ui = import("ui")

local M = {}

local ADDRESS = codec.ADDRESS
local msg, console, no_undo = ui.msg, ui.console, ui.no_undo

local function copy_edit(edit)
  local copy = {}
  for k, v in pairs(edit) do copy[k] = v end
  return copy
end

-------------------------------------------------------------------------------
-- Edits of the selected items
-------------------------------------------------------------------------------

-- edit: {type=, option=, iterations=, text=, target_text=}; opts.at_cursor inserts at the
-- edit cursor (paralinguistic).
function M.edit_selected_items(edit, opts)
  opts = opts or {}
  edit = copy_edit(edit)
  edit.iterations = edit.iterations or settings.settings().iterations
  reaper.SetExtState(settings.SECTION, "last_edit",
    codec.json_encode({ edit = edit, opts = opts }), true)
  return batch.start(function(item)
    local slice, reason = items.item_slice(item)
    if not slice then return nil, reason end
    local this_edit = copy_edit(edit)
    if opts.at_cursor then
      local at = items.cursor_position(slice)
      if not at then return nil, "the edit cursor is not inside this item" end
      this_edit.position = codec.json_array({ at })
    end
    return slice, this_edit, edit.iterations
  end)
end

function M.repeat_last_edit()
  local ok, last = pcall(codec.json_decode, reaper.GetExtState(settings.SECTION, "last_edit"))
  if not ok or type(last) ~= "table" or type(last.edit) ~= "table" then
    msg("There is no previous StepEdit edit to repeat yet.")
    return no_undo()
  end
  return M.edit_selected_items(last.edit, last.opts)
end

-- Runs the edit that made each item's active take once more, on that take's audio.
function M.one_more_pass()
  return batch.start(function(item)
    local take = reaper.GetActiveTake(item)
    if not take then return nil, "the item is empty" end
    local _, meta = reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:StepEdit", "", false)
    local ok, info = pcall(codec.json_decode, meta)
    if not ok or type(info) ~= "table" or type(info.edit) ~= "table" then
      return nil, "its active take is not a StepEdit result"
    end
    local slice, reason = items.item_slice(item)
    if not slice then return nil, reason end
    local edit = copy_edit(info.edit)
    edit.iterations = 1
    edit.position = nil -- an insertion is not repeated at the same spot
    if edit.type == "paralinguistic" then
      return nil, "insertions are not repeated; run the insert action again"
    end
    return slice, edit, (tonumber(info.passes) or 1) + 1
  end)
end

function M.cancel_jobs()
  local ids = settings.running_ids()
  if #ids == 0 then
    msg("No StepEdit jobs are running.")
    return no_undo()
  end
  local transport = transports.open_transport()
  for _, id in ipairs(ids) do transport:cancel({ id = id }) end
  transport:close()
  settings.request_cancel()
  console(string.format("StepEdit: cancelling %d job(s).", #ids))
  return no_undo()
end

-------------------------------------------------------------------------------
-- Engine status and the "Edit selected items..." dialog, from /stepedit/capabilities
-------------------------------------------------------------------------------

function M.engine_status()
  transports.query({ ADDRESS.ping, ADDRESS.capabilities }, function(replies)
    if not replies then
      return msg(transports.engine_down_message(), "StepEdit: engine not running")
    end
    local pong = replies[ADDRESS.ping]
    local text = pong.text or string.format("StepEdit %s (protocol v%d), backend %s on %s",
      tostring(pong.args[2]), pong.args[1] or 0, tostring(pong.args[3]), tostring(pong.args[4]))
    local lines = { (text:gsub("%s+$", "")), "", "Edits this engine can render now:" }
    local ok, caps = pcall(codec.json_decode, replies[ADDRESS.capabilities].args[1])
    local edits = ok and type(caps) == "table" and caps.backends
      and caps.backends[caps.backend] and caps.backends[caps.backend].edits or {}
    local types = {}
    for name in pairs(edits) do types[#types + 1] = name end
    table.sort(types)
    for _, name in ipairs(types) do
      local options = table.concat(edits[name], ", ")
      lines[#lines + 1] = "  " .. name .. (options ~= "" and ": " .. options or "")
    end
    local s = settings.settings()
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("Engine %s:%d; running jobs: %d.", s.host, s.port,
      #settings.running_ids())
    msg(table.concat(lines, "\n"), "StepEdit engine status")
  end)
end

function M.edit_dialog()
  if reaper.CountSelectedMediaItems(0) == 0 then
    msg("Select one or more speech items first.")
    return no_undo()
  end
  transports.query({ ADDRESS.capabilities }, function(replies, why)
    if not replies then
      return msg(transports.engine_down_message() .. (why and "\n\n" .. why or ""),
        "StepEdit: engine not running")
    end
    local ok, caps = pcall(codec.json_decode, replies[ADDRESS.capabilities].args[1])
    if not ok or type(caps) ~= "table" then return msg("StepEdit: unreadable capabilities.") end
    local edit = ui.pick_from_menu(caps)
    if not edit then return end
    local uses = {}
    for _, u in ipairs(caps.edit_types[edit.type].uses or {}) do uses[u] = true end
    local max = math.tointeger(caps.max_iterations) or 5
    local fields = { { string.format("Iterations (1-%d)", max), settings.settings().iterations } }
    if uses.text then fields[#fields + 1] = { "Transcript (optional)", "" } end
    if uses.target_text then fields[#fields + 1] = { "Target text", "" } end
    local values = ui.ask("StepEdit " .. items.edit_label(edit), fields)
    if not values then return end
    edit.iterations = math.max(1, math.min(max, math.tointeger(tonumber(values[1])) or 1))
    local i = 2
    if uses.text then edit.text, i = values[i], i + 1 end
    if uses.target_text then edit.target_text = values[i] end
    for k, v in pairs(edit) do if v == "" then edit[k] = nil end end
    M.edit_selected_items(edit, { at_cursor = uses.positions and not edit.target_text })
  end)
end

-------------------------------------------------------------------------------
-- Engine start and settings
-------------------------------------------------------------------------------

local function command_for(path)
  if files.basename(path):lower():match("^python") then return files.quote(path) .. " -m bridge" end
  return files.quote(path)
end

function M.start_engine()
  local s = settings.settings()
  local command = s.engine_command
  if command == settings.DEFAULTS.engine_command and
      not reaper.HasExtState(settings.SECTION, "engine_command") then
    local values = ui.ask("Start StepEdit engine", {
      { "Path of stepedit or its python", "" } })
    if not values or values[1] == "" then return no_undo() end
    command = command_for(values[1])
    settings.set_setting("engine_command", command)
  end
  local out = reaper.ExecProcess(string.format("%s serve --host %s --port %d", command,
    s.host, s.port), -2)
  if not out then
    msg("Could not run \"" .. command .. "\".\n\nSet the path of stepedit (or of the Python " ..
      "of its environment) with the action \"StepEdit_Settings\".")
    return no_undo()
  end
  console(string.format("StepEdit: starting the engine (%s serve --port %d)...", command,
    s.port))
  local started = reaper.time_precise()
  local function check()
    transports.query({ ADDRESS.ping }, function(replies)
      if replies then
        console("StepEdit: the engine is running.")
      elseif reaper.time_precise() - started < 30 then
        reaper.defer(check)
      else
        msg(string.format("The StepEdit engine did not answer within 30 s.\n\nRun it in a " ..
          "terminal to see why:\n\n    %s serve --port %d", command, s.port))
      end
    end)
  end
  if transports.sockets_available() then check() else no_undo() end
end

function M.settings_dialog()
  local s = settings.settings()
  local values = ui.ask("StepEdit settings", {
    { "Engine host", s.host }, { "Engine port", s.port },
    { "Engine command (stepedit path)", s.engine_command },
    { "Keep item length (0/1)", s.keep_length and 1 or 0 },
    { "Default iterations (1-5)", s.iterations },
    { "Transport (auto/osc/process)", s.transport },
  })
  if not values then return no_undo() end
  local keys = { "host", "port", "engine_command", "keep_length", "iterations", "transport" }
  for i, key in ipairs(keys) do settings.set_setting(key, values[i]) end
  return no_undo()
end

return M
