-- @noindex
-- StepEdit actions: what each StepEdit_*.lua action calls (through StepEdit_lib.lua).
--
--   edit_selected_items(edit, opts)  edit = {type, option, iterations, text, target_text};
--                                    opts.at_cursor inserts at the edit cursor
--   repeat_last_edit(), one_more_pass(), edit_dialog(), cancel_jobs(),
--   engine_status(), start_engine(), settings_dialog(),
--   transcribe_selected_items(), edit_as_text()

local import = ...
local batch = import("batch")
local codec = import("codec")
local editor = import("editor")
local files = import("files")
local items = import("items")
local settings = import("settings")
local transcripts = import("transcripts")
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

local ONE_PASS = { text = true, fillers = true } -- edits of words: iterations mean nothing
local KNOWN_LANGUAGES = { en = true, zh = true }

local function language_of(transcript, s)
  if s.language == "auto" and transcript and KNOWN_LANGUAGES[transcript.language] then
    return transcript.language
  end
  return s.language
end

-- A text or fillers edit's result says which words it kept, with times: they become the new
-- take's transcript, so that "Edit as text" on it needs no transcription.
local function keep_result_words(job, take)
  local transcript = transcripts.from_edit_result(job.result, job.edit.language)
  if not transcript then return end
  local slice = items.item_slice(job.target_item)
  if slice and slice.take == take and slice.start < 0.001
      and math.abs(slice.length - (transcript.duration or slice.length)) < 0.01 then
    transcripts.store(take, slice, transcript, settings.settings())
  end
end

-------------------------------------------------------------------------------
-- Edits of the selected items
-------------------------------------------------------------------------------

-- The language, filler list and known transcript a fillers edit of this slice sends.
local function complete_fillers_edit(edit, slice, s)
  local transcript = transcripts.for_slice(slice)
  local language = language_of(transcript, s)
  edit.language = language ~= "auto" and language or nil
  edit.fillers = transcripts.fillers_for(language, s)
  if transcript then edit.text = transcripts.text(transcript) end
end

-- edit: {type=, option=, iterations=, text=, target_text=}; opts.at_cursor inserts at the
-- edit cursor (paralinguistic).
function M.edit_selected_items(edit, opts)
  opts = opts or {}
  local s = settings.settings()
  edit = copy_edit(edit)
  if not ONE_PASS[edit.type] then edit.iterations = edit.iterations or s.iterations end
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
    if this_edit.type == "fillers" then complete_fillers_edit(this_edit, slice, s) end
    return slice, this_edit, edit.iterations
  end, { on_take = keep_result_words })
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
    edit.iterations = not ONE_PASS[edit.type] and 1 or nil
    edit.position = nil -- an insertion is not repeated at the same spot
    if edit.type == "paralinguistic" then
      return nil, "insertions are not repeated; run the insert action again"
    end
    if edit.type == "text" then
      return nil, "text edits are not repeated; run \"StepEdit_Edit as text\" on it"
    end
    if edit.type == "fillers" then complete_fillers_edit(edit, slice, settings.settings()) end
    return slice, edit, (tonumber(info.passes) or 1) + 1
  end, { on_take = keep_result_words })
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
-- Transcripts and editing as text
-------------------------------------------------------------------------------

local TRANSCRIBE_WORDING = { done = "item(s) transcribed", nothing = "nothing to transcribe",
                             failed = "could not be transcribed; they are unchanged" }

-- One transcription job per item; the transcripts are stored in one undo point.
local function transcribe(item_list, after)
  local s = settings.settings()
  return batch.start(function(item)
    local slice, reason = items.item_slice(item)
    if not slice then return nil, reason end
    return slice, { language = s.language }
  end, {
    items = item_list, address = "transcribe", undo_name = "StepEdit transcribe",
    wording = TRANSCRIBE_WORDING, after = after,
    prepare = function(job)
      if not job.target_take then return nil, "the take was deleted while the engine worked" end
      job.transcript, job.why = transcripts.from_result(job.result, job.output_path)
      return job.transcript ~= nil, job.why
    end,
    apply = function(job)
      transcripts.store(job.target_take, job.slice, job.transcript, s)
      reaper.UpdateItemInProject(job.target_item)
      return true
    end,
  })
end

function M.transcribe_selected_items()
  return transcribe(nil)
end

local EDIT_HELP = "Delete words, type words, move them; write [Laughter], [Breathing], ... " ..
  "between words to insert that sound, and {words} in braces to mask them. Apply makes a " ..
  "new take."
local KEPT_NOTE = "Your edited text is kept: run \"StepEdit_Edit as text\" again to change it."

local function draft_key(slice)
  return "draft:" .. slice.take_guid
end

-- One text edit of the item whose take the transcript belongs to: a new take, one undo point.
local function send_text_edit(slice, transcript, edited)
  local s = settings.settings()
  local language = language_of(transcript, s)
  local edit = { type = "text", option = s.mask_sound, text = transcripts.text(transcript),
                 target_text = edited, language = language ~= "auto" and language or nil }
  local item = items.find_item_by_guid(slice.item_guid)
  if not item then
    msg("The item was deleted while its text was edited; nothing was sent.")
    return no_undo()
  end
  return batch.start(function(it)
    local now, reason = items.item_slice(it)
    if not now then return nil, reason end
    if now.take_guid ~= slice.take_guid or not transcripts.for_slice(now) then
      return nil, "the item changed while its text was edited; run \"StepEdit_Edit as " ..
        "text\" again"
    end
    return now, edit, 1
  end, {
    items = { item }, on_take = keep_result_words, failure_note = KEPT_NOTE,
    after = function(b)
      if b.jobs[1] and b.jobs[1].applied then
        reaper.DeleteExtState(settings.SECTION, draft_key(slice), false)
      end
    end,
  })
end

local function open_text_editor(slice, transcript)
  local original = transcripts.text(transcript)
  local ok, draft = pcall(codec.json_decode,
    reaper.GetExtState(settings.SECTION, draft_key(slice)))
  local kept = ok and type(draft) == "table" and draft.original == original and draft.text
  editor.edit({ title = "StepEdit: " .. items.describe_item(slice) .. " as text",
                text = kept or original, original = original, help = EDIT_HELP },
    function(edited)
      if not edited then
        reaper.DeleteExtState(settings.SECTION, draft_key(slice), false)
        return no_undo()
      end
      if edited == editor.squash(original) then
        msg("The text is unchanged; nothing was sent.")
        return no_undo()
      end
      -- kept until the edit lands, so that a refused edit need not be typed again
      reaper.SetExtState(settings.SECTION, draft_key(slice),
        codec.json_encode({ original = original, text = edited }), false)
      return send_text_edit(slice, transcript, edited)
    end)
end

-- Opens the selected item's transcript in a text box (transcribing it first when the take
-- has none for what the item plays); Apply sends one text edit.
function M.edit_as_text()
  local selected = items.selected_items()
  if #selected ~= 1 then
    msg("Select one speech item to edit as text.")
    return no_undo()
  end
  local slice, reason = items.item_slice(selected[1])
  if not slice then
    msg("StepEdit cannot edit " .. items.describe_item(selected[1]) .. " as text: " .. reason)
    return no_undo()
  end
  local transcript = transcripts.for_slice(slice)
  if transcript then return open_text_editor(slice, transcript) end
  return transcribe({ selected[1] }, function(b)
    if not (b.jobs[1] and b.jobs[1].applied) then return end
    local item = items.find_item_by_guid(slice.item_guid)
    local now = item and items.item_slice(item)
    local fresh = now and transcripts.for_slice(now)
    if fresh then open_text_editor(now, fresh) end
  end)
end

-------------------------------------------------------------------------------
-- Engine status and the "Edit selected items..." dialog, from /stepedit/capabilities
-------------------------------------------------------------------------------

function M.engine_status()
  transports.query({ ADDRESS.ping, ADDRESS.capabilities }, function(replies, why)
    if not replies then return msg(transports.no_reply_message(why)) end
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
    if not replies then return msg(transports.no_reply_message(why)) end
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
    transports.query({ ADDRESS.ping }, function(replies, why)
      if replies then
        console("StepEdit: the engine is running.")
      elseif why == "unauthorized" then -- running, but it wants this computer's signature
        msg(transports.no_reply_message(why))
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
    { "Speech language (auto/en/zh)", s.language },
    { "Masked words become (room_tone/silence/bleep)", s.mask_sound },
    { "Take markers at words (0/1)", s.take_markers and 1 or 0 },
    { "English fillers (blank: the engine's)", table.concat(s.fillers.en, " ") },
    { "Mandarin fillers (blank: the engine's)", table.concat(s.fillers.zh, " ") },
    { "Engine is remote (auto/0/1)", settings.raw("remote") },
    { "Shared paths (here=engine; ...)", table.concat(s.map_paths, "; ") },
    { "Engine key id", s.key and s.key.id or settings.DEFAULTS.key_id },
    -- "*": REAPER hides what is typed in this field
    { "*Engine secret (stepedit secret; blank: none)", s.key and s.key.secret or "" },
  })
  if not values then return no_undo() end
  local keys = { "host", "port", "engine_command", "keep_length", "iterations", "transport",
                 "language", "mask_sound", "take_markers", "fillers_en", "fillers_zh", "remote",
                 "map_paths", "key_id", "secret" }
  local secret = values[#keys]:match("^%s*(.-)%s*$"):lower()
  if secret ~= "" and not secret:match("^" .. ("%x"):rep(64) .. "$") then
    values[#keys] = s.key and s.key.secret or ""
    msg("The engine secret was not changed: a StepEdit secret is 64 hex characters. Run " ..
      "\"stepedit secret\" where the engine runs to see it.")
  else
    values[#keys] = secret
  end
  for i, key in ipairs(keys) do settings.set_setting(key, values[i]) end
  return no_undo()
end

return M
