-- @noindex
-- StepEdit batches: one job per selected item, the background loop that follows them, and
-- the results put back as new takes (or transcripts) in one undo point.
--
--   start(plan, opts)  plan(item) -> slice, spec, passes | nil, reason; starts one job per
--                      planned item and follows them from defer ticks until all have ended.
--                      spec is the edit, or for opts.address == "transcribe" the fields the
--                      transcription request adds (language, text).
--   opts: items       the items (default: the selected ones)
--         address     "edit" (default) or "transcribe"
--         undo_name   (default: the take name of the edit)
--         prepare(job) -> true | nil, why   before the undo block, once the job is done
--                      (default: the result file must exist)
--         apply(job)  -> true | nil, why   inside the undo block (default: a new take)
--         on_take(job, take)               after the default apply, inside the undo block
--         after(batch)                     once the results are applied and failures shown;
--                                          job.applied tells which were
--         wording = {done=, failed=, nothing=}, failure_note  for the messages

local import = ...
local codec = import("codec")
local files = import("files")
local items = import("items")
local settings = import("settings")
local transports = import("transport")
local ui = import("ui")

local M = {}

local UNDO_STATE_ITEMS = 4
-- queue_full: resend after the engine's hint, doubled at each further refusal, this often at
-- most; one wait is capped so that a job never sleeps for hours.
local QUEUE_TRIES, MAX_QUEUE_WAIT_S = 8, 120
local WAITING = "waiting for the engine (queue full)"
local msg, console, no_undo = ui.msg, ui.console, ui.no_undo

local job_counter = 0

-- Unique even where math.random is not seeded (Lua 5.3 in REAPER 6): the clock leads, as
-- result files are named after the first 8 characters.
local function new_job_id()
  job_counter = job_counter + 1
  local micros = math.floor(reaper.time_precise() * 1e6) + job_counter
  return string.format("%08x%04x%04x", micros & 0xffffffff, math.random(0, 0xffff),
    job_counter & 0xffff)
end

-------------------------------------------------------------------------------
-- Results -> new takes
-------------------------------------------------------------------------------

local COPIED_TAKE_VALUES = { "D_PLAYRATE", "B_PPITCH", "D_PITCH", "D_VOL", "D_PAN", "I_CHANMODE" }

-- Re-finds the item (by GUID: pointers may have changed).
local function resolve_result(job)
  local old = reaper.GetMediaItemTakeByGUID(0, job.slice.take_guid)
  if old and not reaper.ValidatePtr2(0, old, "MediaItem_Take*") then old = nil end
  local item = old and reaper.GetMediaItemTake_Item(old)
    or items.find_item_by_guid(job.slice.item_guid)
  if not item or not reaper.ValidatePtr2(0, item, "MediaItem*") then
    return nil, "the item was deleted while the engine worked"
  end
  job.target_item, job.target_take = item, old
  return true
end

local function check_output_file(job)
  local path = job.output_path
  if type(path) ~= "string" or not reaper.file_exists(path) then
    return nil, "the engine's result file is missing: " .. tostring(path)
  end
  return true
end

local function apply_result(job, keep_length)
  local item, old, path = job.target_item, job.target_take, job.output_path
  local source = reaper.PCM_Source_CreateFromFile(path)
  if not source then return nil, "REAPER could not open the result " .. path end

  local take = reaper.AddTakeToMediaItem(item)
  reaper.SetMediaItemTake_Source(take, source)
  for _, key in ipairs(COPIED_TAKE_VALUES) do
    if old then
      reaper.SetMediaItemTakeInfo_Value(take, key, reaper.GetMediaItemTakeInfo_Value(old, key))
    end
  end
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", 0)
  items.set_take_name(take, items.take_name(job.edit, job.passes))
  reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:StepEdit", codec.json_encode({
    edit = job.edit, passes = job.passes, job_id = job.id,
    input = job.request.input, start = job.request.start, length = job.request.length,
  }), true)
  reaper.SetActiveTake(take)
  reaper.SetMediaItemInfo_Value(item, "B_LOOPSRC", 0)
  if not keep_length then
    local playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
    local length = reaper.GetMediaSourceLength(reaper.GetMediaItemTake_Source(take))
    reaper.SetMediaItemInfo_Value(item, "D_LENGTH", length / playrate + job.slice.lead_in)
    reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", -job.slice.lead_in * playrate)
  elseif job.slice.lead_in > 0 then -- keep the audio where it was in the item
    reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS",
      -job.slice.lead_in * reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE"))
  end
  reaper.UpdateItemInProject(item)
  return true, take
end

local function failure_line(job)
  return string.format("- %s: %s", items.describe_item(job.slice), job.failure)
end

local function apply_take(batch, job)
  local added, take_or_err = apply_result(job, batch.keep_length)
  if added and batch.on_take then
    local ok, err = pcall(batch.on_take, job, take_or_err)
    if not ok then console("StepEdit: " .. tostring(err)) end -- the take stays
  end
  return added, take_or_err
end

-- Applies every finished job of a batch in one undo point; one message for all failures.
local function finish_batch(batch)
  ui.restore_take_names(batch.jobs)
  local done, failed = {}, {}
  for _, refusal in ipairs(batch.refused) do failed[#failed + 1] = refusal end
  for _, job in ipairs(batch.jobs) do
    if job.output_path and not job.failure then
      local ok, err = resolve_result(job)
      if ok then ok, err = (batch.prepare or check_output_file)(job) end
      if not ok then job.failure = err end
    end
    if job.output_path and not job.failure then done[#done + 1] = job
    elseif job.code ~= "cancelled" then failed[#failed + 1] = job end
  end
  local applied = 0
  if #done > 0 then
    reaper.Undo_BeginBlock2(0)
    reaper.PreventUIRefresh(1)
    for _, job in ipairs(done) do
      local ok, added, err
      if batch.apply then ok, added, err = pcall(batch.apply, job)
      else ok, added, err = pcall(apply_take, batch, job) end
      if ok and added then
        applied, job.applied = applied + 1, true
      else
        job.failure = ok and err or ("error while applying the result: " .. tostring(added))
        failed[#failed + 1] = job
      end
    end
    reaper.Main_OnCommand(40047, 0) -- Peaks: Build any missing peaks
    reaper.PreventUIRefresh(-1)
    reaper.UpdateArrange()
    reaper.Undo_EndBlock2(0, batch.undo_name, UNDO_STATE_ITEMS)
  end
  if not batch.quiet then
    console(string.format("%s: %d %s, %d failed%s.", batch.undo_name, applied,
      batch.wording.done, #failed, batch.cancelled and ", the rest cancelled" or ""))
  end
  if #failed > 0 then
    local lines = {}
    for _, job in ipairs(failed) do lines[#lines + 1] = failure_line(job) end
    msg(string.format("%s: %d of %d item(s) %s.\n\n%s%s", batch.undo_name, #failed,
      #batch.jobs + #batch.refused, batch.wording.failed, table.concat(lines, "\n"),
      batch.failure_note and "\n\n" .. batch.failure_note or ""))
  end
  if batch.after then batch.after(batch) end
end

-------------------------------------------------------------------------------
-- The batch loop
-------------------------------------------------------------------------------

local function describe_error(code, message)
  local text = tostring(code)
  if message and message ~= "" then text = text .. ": " .. message
  elseif codec.ERROR_CODES[code] then text = text .. ": " .. codec.ERROR_CODES[code] end
  return text
end

-- The engine's queue is full: the job waits (not blocking REAPER: the loop resends it) for
-- retry_after plus up to half of it again as jitter, so that clients do not resend in step.
local function wait_for_queue(job, event, now)
  if job.retry_at then return end -- another answer to a send made before the wait began
  job.queue_tries = (job.queue_tries or 0) + 1
  if job.queue_tries >= QUEUE_TRIES then
    job.final, job.outcome, job.code = true, "queue full", "queue_full"
    job.failure = string.format("the engine's queue stayed full (%d tries); try again later",
      job.queue_tries)
    return
  end
  local hint = math.max(0.25, math.min(60, tonumber(event.retry_after) or 1))
  local wait = math.min(MAX_QUEUE_WAIT_S, hint * 2 ^ (job.queue_tries - 1))
  job.retry_at = now + wait * (1 + math.random() / 2)
  job.stage, job.fraction = WAITING, 0
end

local function handle_event(job, event, now)
  job.heard_at, job.heard = now, true
  if job.final then return end
  if event.kind == "error" and event.code == "queue_full" then
    return wait_for_queue(job, event, now)
  end
  if event.kind == "accepted" then
    job.accepted = true
    if job.stage == "sending" then job.stage = "queued" end
  elseif event.kind == "progress" then
    job.accepted = true
    job.fraction = tonumber(event.fraction) or job.fraction
    job.stage = type(event.stage) == "string" and event.stage or job.stage
  elseif event.kind == "done" then
    job.accepted, job.final, job.fraction, job.outcome = true, true, 1, "done"
    job.output_path = event.output_path
    local result = event.result -- JSON text (OSC), a table (status file) or nil (cut short)
    if type(result) == "string" then
      local ok, decoded = pcall(codec.json_decode, result)
      result = ok and decoded or nil
    end
    job.result = type(result) == "table" and result or nil
  elseif event.kind == "error" then
    job.accepted, job.final, job.outcome = true, true, tostring(event.code)
    job.code = event.code
    job.failure = describe_error(event.code, event.message)
  end
end

local function run_batch(batch)
  local transport, jobs = batch.transport, batch.jobs
  local started = reaper.time_precise()
  local serial = settings.cancel_serial()
  local window = ui.open_progress_window(batch.undo_name)
  batch.quiet = window ~= nil -- the window shows progress; keep the console closed
  if not batch.quiet then
    console(string.format("%s: %d item(s) sent to the engine (%s transport).",
      batch.undo_name, batch.sent, transport.kind))
  end
  local ended = false

  local function cleanup()
    if ended then return end
    ended = true
    local ids = {}
    for _, job in ipairs(jobs) do ids[job.id] = true end
    settings.set_running({}, ids)
    ui.restore_take_names(jobs)
    pcall(transport.close, transport, jobs)
  end
  reaper.atexit(cleanup)

  -- The engine refused the signature (its answer names no job): no job of this batch can
  -- start; the failure message tells how to set the secret.
  local function refuse_all(event, now)
    for _, job in ipairs(jobs) do
      if not job.final then handle_event(job, { kind = "error", code = event.code }, now) end
    end
    batch.failure_note = transports.unauthorized_message()
  end

  local function cancel_all(reason)
    batch.cancelled = true
    for _, job in ipairs(jobs) do
      if not job.final then
        transport:cancel(job)
        job.final, job.code, job.outcome, job.failure = true, "cancelled", "cancelled", reason
      end
    end
  end

  local function step()
    local now = reaper.time_precise()
    for _, event in ipairs(transport:poll(jobs, now)) do
      if event.kind == "error" and event.code == "unauthorized" then refuse_all(event, now) end
      for _, job in ipairs(jobs) do
        if job.id == event.id then handle_event(job, event, now) end
      end
    end
    for _, job in ipairs(jobs) do
      if job.retry_at and now >= job.retry_at then
        job.retry_at, job.heard_at, job.stage = nil, now, "sending"
        local sent, err = transport:start(job)
        if not sent then job.final, job.failure = true, err end
      end
    end
    local heard = false
    for _, job in ipairs(jobs) do heard = heard or job.heard end
    if not heard and now - started > transport.engine_down_s then
      for _, job in ipairs(jobs) do transport:cancel(job) end -- in case it wakes up later
      cleanup()
      msg(transports.engine_down_message(batch.settings), "StepEdit: engine not running")
      return false
    end
    for _, job in ipairs(jobs) do
      if not job.final and not job.retry_at and transport:is_silent(job, now) then
        job.final, job.outcome = true, "no answer"
        job.failure = "the engine stopped answering about this job"
      end
    end
    if settings.cancel_serial() ~= serial then cancel_all("cancelled") end
    if ui.show_progress(window, jobs) then cancel_all("cancelled") end
    for _, job in ipairs(jobs) do
      if not job.final then return true end
    end
    cleanup()
    finish_batch(batch)
    return false
  end

  local function tick()
    local ok, again = xpcall(step, debug.traceback)
    if not ok then
      cleanup()
      msg("StepEdit stopped after an internal error; nothing was changed.\n\n" .. tostring(again))
    elseif again then
      reaper.defer(tick)
    end
  end
  tick()
end

-------------------------------------------------------------------------------
-- Starting a batch
-------------------------------------------------------------------------------

local function media_dir()
  local dir = reaper.GetProjectPathEx(0, "")
  if dir == "" then dir = files.dirname(select(2, reaper.EnumProjects(-1, ""))) end
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

local EDIT_WORDING = { done = "take(s) added", nothing = "nothing to edit",
                       failed = "could not be edited; their takes are unchanged" }

-- Sends the planned jobs and follows them.
local function launch(batch)
  local s = batch.settings
  local ok, transport = pcall(transports.open_transport, s)
  if not ok then
    msg("StepEdit cannot reach the engine: " .. tostring(transport))
    return no_undo()
  end
  batch.transport = transport
  local output_dir, ids, running = media_dir(), {}, 0
  for _, job in ipairs(batch.jobs) do
    job.request.output_dir = output_dir
    job.heard_at = reaper.time_precise()
    local started, err = transport:start(job)
    if started then running = running + 1 else job.final, job.failure = true, err end
    ids[#ids + 1] = job.id
  end
  if running == 0 then -- e.g. the engine's client could not be run
    transport:close(batch.jobs)
    msg("StepEdit could not start any job:\n\n" .. batch.jobs[1].failure ..
      "\n\nSet the engine command with the action \"StepEdit_Settings\".")
    return no_undo()
  end
  settings.set_running(ids, {})
  batch.sent = running
  return run_batch(batch)
end

-- keep_length goes in the request only where the engine lists it in the edit type's `uses`
-- (older engines refuse unknown fields); the result then lasts exactly the slice, and the
-- item keeps its length as it does without the field.
local function ask_keep_length(batch)
  transports.query({ codec.ADDRESS.capabilities }, function(replies, why)
    if not replies then return msg(transports.no_reply_message(why)) end
    local ok, caps = pcall(codec.json_decode, replies[codec.ADDRESS.capabilities].args[1])
    local types = ok and type(caps) == "table" and type(caps.edit_types) == "table"
      and caps.edit_types or {}
    for _, job in ipairs(batch.jobs) do
      local kind = types[job.edit.type]
      for _, field in ipairs(type(kind) == "table" and kind.uses or {}) do
        if field == "keep_length" then
          local edit = {}
          for k, v in pairs(job.edit) do edit[k] = v end
          edit.keep_length = true
          job.request.edit = edit
        end
      end
    end
    launch(batch)
  end)
end

-- plan(item) -> slice, spec, passes  |  nil, reason.  Starts one job per planned item.
function M.start(plan, opts)
  opts = opts or {}
  local s = settings.settings()
  local selected = opts.items or items.selected_items()
  if #selected == 0 then
    msg("Select one or more speech items first.")
    return no_undo()
  end
  local batch = { jobs = {}, refused = {}, settings = s, keep_length = s.keep_length,
                  address = opts.address or "edit", undo_name = opts.undo_name,
                  prepare = opts.prepare, apply = opts.apply, on_take = opts.on_take,
                  after = opts.after, wording = opts.wording or EDIT_WORDING,
                  failure_note = opts.failure_note }
  local names = {}
  for _, item in ipairs(selected) do
    local slice, spec, passes = plan(item)
    if slice then
      local job = { id = new_job_id(), slice = slice, passes = passes, address = batch.address,
                    stage = "sending", fraction = 0 }
      job.request = { input = slice.input, start = slice.start, length = slice.length }
      -- masked by the client before upload; a local engine's audio never leaves
      if s.remote then job.sensitive = items.sensitive_spans(slice) end
      if batch.address == "transcribe" then
        for key, value in pairs(spec) do job.request[key] = value end
        job.label = "transcribe"
      else
        job.edit, job.request.edit, job.label = spec, spec, items.edit_label(spec)
        local name = items.take_name(spec, passes)
        batch.undo_name = opts.undo_name or
          ((batch.undo_name == nil or batch.undo_name == name) and name or "StepEdit edits")
      end
      job.owns_name = not names[slice.take_guid] -- one job shows progress in a take's name
      names[slice.take_guid] = true
      batch.jobs[#batch.jobs + 1] = job
    else
      batch.refused[#batch.refused + 1] = { slice = { item = item }, failure = spec }
    end
  end
  if #batch.jobs == 0 then
    local lines = {}
    for _, refusal in ipairs(batch.refused) do lines[#lines + 1] = failure_line(refusal) end
    msg("StepEdit: " .. batch.wording.nothing .. ".\n\n" .. table.concat(lines, "\n"))
    return no_undo()
  end

  if batch.address == "edit" and s.keep_length then return ask_keep_length(batch) end
  return launch(batch)
end

return M
