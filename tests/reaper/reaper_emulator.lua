--[[
An emulation of the part of REAPER's ReaScript API that the StepEdit scripts use, written
to the documented semantics (reaper_plugin_functions.h descriptions and the ReaScript help).
Each function states the assumption it makes. Calling a `reaper.X` that is not emulated
raises "reaper.X is not emulated", except for optional extensions (ImGui, SWS, ReaPack),
which read as nil, as in a REAPER without them.

  local Emulator = dofile("tests/reaper/reaper_emulator.lua")
  local emu = Emulator.new({ project_dir = dir, media_dir = dir .. "/Media" })
  emu:install()                       -- sets the globals `reaper` and `gfx`
  local track = emu:add_track()
  local item = emu:add_item(track, { file = wav, position = 1, length = 2, startoffs = 0.5 })
  emu:run_script(installed .. "StepEdit_Faster.lua") -- get_action_context returns this path
  emu:run_deferred(30)                -- runs deferred functions until idle or timeout
  local state = emu:dump()            -- plain tables, for assertions

Clock: "virtual" (default) advances `time_precise` by one defer period (1/30 s) per tick
without sleeping; "real" uses the wall clock and sleeps between ticks (for a real engine).
]]

local Emulator = {}
Emulator.__index = Emulator

local DEFER_PERIOD = 1 / 30 -- REAPER runs deferred functions at about 30 Hz (not documented)

-- Optional extensions a plain REAPER lacks: reading them gives nil instead of an error.
local OPTIONAL_PREFIXES = { "ImGui_", "BR_", "CF_", "SNM_", "JS_", "ReaPack_", "NF_" }
local OPTIONAL_NAMES = { set_action_options = true }

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function deep_copy(value, memo)
  if type(value) ~= "table" then return value end
  memo = memo or {}
  if memo[value] then return memo[value] end
  local copy = {}
  memo[value] = copy
  for k, v in pairs(value) do copy[deep_copy(k, memo)] = deep_copy(v, memo) end
  return setmetatable(copy, getmetatable(value))
end

-- Reads a RIFF/WAVE header: format, channels, rate and the data size give the length.
function Emulator.read_wav_header(path)
  local f = io.open(path, "rb")
  if not f then return nil, "cannot open " .. path end
  local head = f:read(12)
  if not head or #head < 12 or head:sub(1, 4) ~= "RIFF" or head:sub(9, 12) ~= "WAVE" then
    f:close()
    return nil, "not a RIFF/WAVE file: " .. path
  end
  local info = {}
  while true do
    local chunk = f:read(8)
    if not chunk or #chunk < 8 then break end
    local id, size = chunk:sub(1, 4), string.unpack("<I4", chunk, 5)
    if id == "fmt " then
      local fmt = f:read(size)
      info.format, info.channels, info.sample_rate, info.byte_rate, info.block_align,
        info.bits = string.unpack("<I2I2I4I4I2I2", fmt)
      if size % 2 == 1 then f:read(1) end
    elseif id == "data" then
      local here = f:seek()
      local total = f:seek("end")
      info.data_bytes = math.min(size, total - here) -- streams may leave the size at 0xFFFFFFFF
      break
    else
      f:seek("cur", size + size % 2)
    end
  end
  f:close()
  if not info.block_align or not info.data_bytes then return nil, "no fmt/data chunk: " .. path end
  info.frames = info.data_bytes // info.block_align
  info.length = info.frames / info.sample_rate
  return info
end

function Emulator.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Emulator)
  self.project_dir = opts.project_dir or "/tmp/stepedit-emulator"
  self.rpp_path = opts.rpp_path or (self.project_dir .. "/project.rpp")
  self.media_dir = opts.media_dir or self.project_dir
  self.resource_dir = opts.resource_dir or (self.project_dir .. "/reaper-resource")
  self.clock_mode = opts.clock or "virtual"
  self.now_fn = opts.now   -- real clock: function() -> seconds
  self.sleep_fn = opts.sleep -- real clock: function(seconds)
  self.t = 1000.0
  self.project = { tracks = {}, cursor = 0, markers = {} }
  self.extstate = {}
  self.queue, self.atexit_fns = {}, {}
  self.console, self.messages, self.undo_points, self.commands = {}, {}, {}, {}
  self.processes, self.inputs_asked, self.menus, self.errors = {}, {}, {}, {}
  self.mutations = {} -- {what=, in_undo_block=} for every change to items and takes
  self.responses = { MB = {}, GetUserInputs = {}, showmenu = {} }
  self.undo_depth, self.ui_refresh, self.guid_counter = 0, 0, 0
  self.process_log = opts.process_log or "/dev/null"
  self.script_path = ""
  self.started_at = nil
  self:_build_api()
  return self
end

function Emulator:now()
  if self.clock_mode == "real" then return self.now_fn() end
  return self.t
end

function Emulator:elapsed()
  return self:now() - (self.started_at or self:now())
end

function Emulator:_guid()
  self.guid_counter = self.guid_counter + 1
  return string.format("{%08X-0000-4000-8000-%012X}", self.guid_counter, self.guid_counter)
end

function Emulator:_mutate(what)
  self.mutations[#self.mutations + 1] = { what = what, in_undo_block = self.undo_depth > 0 }
end

-------------------------------------------------------------------------------
-- Project building (test side)
-------------------------------------------------------------------------------

function Emulator:add_track()
  local track = { kind = "track", items = {}, guid = self:_guid() }
  self.project.tracks[#self.project.tracks + 1] = track
  return track
end

function Emulator:wave_source(file)
  local info, err = Emulator.read_wav_header(file)
  if not info then return nil, err end
  return { kind = "source", type = "WAVE", file = file, length = info.length,
           sample_rate = info.sample_rate, channels = info.channels }
end

function Emulator:section_source(parent, offset, length, reversed)
  return { kind = "source", type = "SECTION", parent = parent, offset = offset,
           length = length or (parent.length - offset), reversed = reversed or false,
           sample_rate = parent.sample_rate, channels = parent.channels }
end

function Emulator:midi_source(length)
  return { kind = "source", type = "MIDI", length = length, sample_rate = 0, channels = 0 }
end

-- spec: file | source, position, length, startoffs, playrate, name, selected, loop,
-- stretch_markers; returns the item.
function Emulator:add_item(track, spec)
  local source = spec.source or assert(self:wave_source(spec.file))
  local item = {
    kind = "item", track = track, guid = self:_guid(), takes = {}, curtake = 1,
    selected = spec.selected ~= false, notes = "", ext = {},
    values = { D_POSITION = spec.position or 0, D_LENGTH = spec.length or source.length,
               B_LOOPSRC = spec.loop and 1 or 0, B_MUTE = 0, D_VOL = 1, D_FADEINLEN = 0,
               D_FADEOUTLEN = 0, D_SNAPOFFSET = 0, C_LOCK = 0 },
  }
  local take = self:_new_take(item)
  take.source = source
  take.name = spec.name or (source.file and source.file:match("[^/\\]*$")) or ""
  take.values.D_STARTOFFS = spec.startoffs or 0
  take.values.D_PLAYRATE = spec.playrate or 1
  take.stretch_markers = spec.stretch_markers or 0
  track.items[#track.items + 1] = item
  table.sort(track.items, function(a, b) return a.values.D_POSITION < b.values.D_POSITION end)
  return item
end

function Emulator:_new_take(item)
  local take = { kind = "take", item = item, guid = self:_guid(), name = "", ext = {},
                 stretch_markers = 0, markers = {},
                 values = { D_STARTOFFS = 0, D_PLAYRATE = 1, D_PITCH = 0, B_PPITCH = 1,
                            D_VOL = 1, D_PAN = 0, I_CHANMODE = 0 } }
  item.takes[#item.takes + 1] = take
  return take
end

function Emulator:all_items()
  local items = {}
  for _, track in ipairs(self.project.tracks) do
    for _, item in ipairs(track.items) do items[#items + 1] = item end
  end
  return items
end

function Emulator:set_extstate(section, key, value, persist)
  self.extstate[section] = self.extstate[section] or {}
  self.extstate[section][key] = { value = tostring(value), persist = persist and true or false }
end

-------------------------------------------------------------------------------
-- Running scripts
-------------------------------------------------------------------------------

function Emulator:install()
  _G.reaper, _G.gfx = self.reaper, self.gfx
end

-- Runs a script file as REAPER does: a fresh chunk, errors reported rather than raised.
function Emulator:run_script(path)
  self.script_path = path
  self.started_at = self.started_at or self:now()
  local ok, err = xpcall(dofile, debug.traceback, path)
  if not ok then self.errors[#self.errors + 1] = err end
  return ok
end

-- Runs one defer tick: every function deferred since the last tick, then the clock moves.
function Emulator:tick()
  if self.on_tick then self.on_tick(self) end
  local batch = self.queue
  self.queue = {}
  for _, fn in ipairs(batch) do
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then self.errors[#self.errors + 1] = err end
  end
  if self.clock_mode == "real" then self.sleep_fn(DEFER_PERIOD) else self.t = self.t + DEFER_PERIOD end
end

-- Runs deferred functions until none is queued ("idle") or `timeout` seconds pass
-- ("timeout", then atexit handlers run as when the user terminates a script).
function Emulator:run_deferred(timeout)
  local deadline = self:now() + (timeout or 30)
  while #self.queue > 0 do
    if self:now() > deadline then
      self.queue = {}
      self:_run_atexit()
      return "timeout"
    end
    self:tick()
  end
  self:_run_atexit()
  return "idle"
end

function Emulator:_run_atexit()
  local fns = self.atexit_fns
  self.atexit_fns = {}
  for _, fn in ipairs(fns) do
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then self.errors[#self.errors + 1] = err end
  end
end

-- Restores the project as it was before the last undo point.
function Emulator:undo()
  local point = table.remove(self.undo_points)
  assert(point, "nothing to undo")
  self.project = point.before
  return point.description
end

-------------------------------------------------------------------------------
-- Plain-table dump of the project for assertions
-------------------------------------------------------------------------------

local function dump_source(source)
  if not source then return nil end
  return { type = source.type, file = source.file, length = source.length,
           offset = source.offset, reversed = source.reversed,
           parent = dump_source(source.parent) }
end

function Emulator:dump()
  local tracks = {}
  for _, track in ipairs(self.project.tracks) do
    local items = {}
    for _, item in ipairs(track.items) do
      local takes = {}
      for _, take in ipairs(item.takes) do
        local ext = {}
        for k, v in pairs(take.ext) do ext[k] = v end
        takes[#takes + 1] = { guid = take.guid, name = take.name, source = dump_source(take.source),
                              values = deep_copy(take.values), ext = ext,
                              markers = deep_copy(take.markers) }
      end
      items[#items + 1] = { guid = item.guid, selected = item.selected, active_take = item.curtake,
                            values = deep_copy(item.values), takes = takes, notes = item.notes }
    end
    tracks[#tracks + 1] = { items = items }
  end
  return { tracks = tracks }
end

-------------------------------------------------------------------------------
-- The API
-------------------------------------------------------------------------------

function Emulator:_build_api()
  local emu = self
  local r = {}

  local function in_project(ptr)
    if type(ptr) ~= "table" then return false end
    for _, track in ipairs(emu.project.tracks) do
      if ptr == track then return true end
      for _, item in ipairs(track.items) do
        if ptr == item then return true end
        for _, take in ipairs(item.takes) do
          if ptr == take or ptr == take.source then return true end
        end
      end
    end
    return false
  end

  local function check(ptr, kind, fn)
    if type(ptr) ~= "table" or ptr.kind ~= kind then
      error(string.format("reaper.%s: expected a %s, got %s", fn, kind, tostring(ptr)), 3)
    end
    if not in_project(ptr) and kind ~= "source" then
      -- REAPER would crash or misbehave on a stale pointer; scripts must ValidatePtr2 first.
      error(string.format("reaper.%s: stale %s pointer (not in the project)", fn, kind), 3)
    end
    return ptr
  end

  -- Messages, console, dialogs -------------------------------------------------

  -- MB/ShowMessageBox: modal; returns 1 (OK) unless a response was scripted.
  function r.ShowMessageBox(text, title, kind)
    emu.messages[#emu.messages + 1] = { text = text, title = title, type = kind,
                                        at = emu:elapsed() }
    return table.remove(emu.responses.MB, 1) or 1
  end
  r.MB = r.ShowMessageBox

  -- ShowConsoleMsg appends to the console; "" is not special here (ClearConsole clears).
  function r.ShowConsoleMsg(text) emu.console[#emu.console + 1] = tostring(text) end
  function r.ClearConsole() emu.console = {} end

  -- GetUserInputs: modal; captions are comma-separated, followed by options such as
  -- "separator=X" (the separator of the values, default ",") and "extrawidth=N"; there must be
  -- n captions, and at most 16 ("Maximum fields is 16"). Returns false on cancel, else true and
  -- the values joined by the separator. The defaults go in and the values come back in one
  -- retvals_csv buffer, which ReaScript sizes 1,024 bytes (its default for string buffers not
  -- marked NeedBig, per cfillion in reaper-oss/sws#1896): both are cut to 1,023 bytes.
  -- A scripted answer is a string, a table of values, false (cancel), or a function
  -- (asked) -> one of those, where asked holds the captions and default values.
  local USER_INPUTS_BYTES = 1023
  function r.GetUserInputs(title, n, captions, defaults)
    local separator = captions:match("separator=(.)") or ","
    local names = {}
    for caption in (captions .. ","):gmatch("(.-),") do
      if not caption:match("^%a+=") then names[#names + 1] = caption end
    end
    if #names ~= n then
      error(string.format("reaper.GetUserInputs: %d captions for %d fields", #names, n), 2)
    end
    if n > 16 then error("reaper.GetUserInputs: at most 16 fields, got " .. n, 2) end
    defaults = defaults:sub(1, USER_INPUTS_BYTES)
    local values = {}
    for value in (defaults .. separator):gmatch("(.-)" .. separator:gsub("%p", "%%%0")) do
      values[#values + 1] = value
    end
    local asked = { title = title, n = n, captions = names, defaults = defaults,
                    separator = separator, values = values }
    emu.inputs_asked[#emu.inputs_asked + 1] = asked
    local answer = table.remove(emu.responses.GetUserInputs, 1)
    if type(answer) == "function" then answer = answer(asked) end
    if answer == nil or answer == false then return false, defaults end
    if type(answer) == "table" then answer = table.concat(answer, separator) end
    return true, answer:sub(1, USER_INPUTS_BYTES)
  end

  -- ExtState: shared by every script of the REAPER process. GetExtState gives "" when absent
  -- (HasExtState tells absent from empty); persist=true also keeps the value across restarts
  -- in reaper-extstate.ini, where a value cannot hold a newline.
  function r.GetExtState(section, key)
    local s = emu.extstate[section]
    return s and s[key] and s[key].value or ""
  end
  function r.HasExtState(section, key)
    local s = emu.extstate[section]
    return s ~= nil and s[key] ~= nil
  end
  function r.SetExtState(section, key, value, persist)
    if persist and tostring(value):find("\n") then
      error("reaper.SetExtState: persisted values cannot hold newlines", 2)
    end
    emu:set_extstate(section, key, value, persist)
  end
  function r.DeleteExtState(section, key)
    if emu.extstate[section] then emu.extstate[section][key] = nil end
  end

  -- Script context ------------------------------------------------------------

  -- get_action_context: is_new, script file name, section 0 (main), command id, and the
  -- MIDI/OSC values (-1 when run from the action list), contextstr.
  function r.get_action_context()
    return true, emu.script_path, 0, 55555, -1, -1, -1, ""
  end
  -- GetAppVersion: "<version>/<platform>", REAPER 7 (Lua 5.4) as tested.
  function r.GetAppVersion() return "7.27/linux-x86_64" end
  function r.GetOS() return "Other" end
  function r.GetResourcePath() return emu.resource_dir end
  function r.time_precise() return emu:now() end

  -- defer: runs fn on a later tick of the main thread (see run_deferred).
  function r.defer(fn)
    assert(type(fn) == "function", "reaper.defer expects a function")
    emu.queue[#emu.queue + 1] = fn
    return true
  end
  r.runloop = r.defer

  -- atexit: fn runs when the script ends (no deferred call left) or is terminated.
  function r.atexit(fn) emu.atexit_fns[#emu.atexit_fns + 1] = fn end

  -- Main_OnCommand: recorded only; no native action is emulated.
  function r.Main_OnCommand(id, flag) emu.commands[#emu.commands + 1] = { id = id, flag = flag } end

  -- Undo and refresh -----------------------------------------------------------

  -- Undo_BeginBlock2/EndBlock2: blocks nest; the outermost EndBlock makes one undo point
  -- whose undo restores the project as it was at the outermost BeginBlock.
  function r.Undo_BeginBlock2()
    if emu.undo_depth == 0 then emu.undo_before = deep_copy(emu.project) end
    emu.undo_depth = emu.undo_depth + 1
  end
  function r.Undo_EndBlock2(_, description, flags)
    assert(emu.undo_depth > 0, "reaper.Undo_EndBlock2 without Undo_BeginBlock2")
    emu.undo_depth = emu.undo_depth - 1
    if emu.undo_depth == 0 then
      emu.undo_points[#emu.undo_points + 1] = { description = description, flags = flags,
                                                before = emu.undo_before }
    end
  end
  function r.Undo_BeginBlock() r.Undo_BeginBlock2(0) end
  function r.Undo_EndBlock(description, flags) r.Undo_EndBlock2(0, description, flags) end

  -- PreventUIRefresh: a counter that must end balanced (checked by tests).
  function r.PreventUIRefresh(n) emu.ui_refresh = emu.ui_refresh + n end
  function r.UpdateArrange() end
  function r.UpdateTimeline() end
  function r.UpdateItemInProject() end

  -- Project and paths ----------------------------------------------------------

  -- EnumProjects(-1): the current project and its .rpp path ("" when never saved).
  function r.EnumProjects(idx)
    if idx == -1 or idx == 0 then return emu.project, emu.rpp_path end
    return nil, ""
  end
  -- GetProjectPathEx: the project's effective media/recording folder (not the .rpp folder).
  function r.GetProjectPathEx() return emu.media_dir end
  function r.GetProjectPath() return emu.media_dir end
  function r.file_exists(path) return file_exists(path) end
  -- RecursiveCreateDirectory: creates every missing folder; positive on success.
  function r.RecursiveCreateDirectory(path)
    return os.execute("mkdir -p " .. shell_quote(path)) and 1 or 0
  end
  -- GetCursorPosition/SetEditCurPos: the edit cursor in project seconds; GetMousePosition
  -- is the screen origin (only used to place menus).
  function r.GetCursorPosition() return emu.project.cursor end
  function r.SetEditCurPos(t) emu.project.cursor = t end
  function r.GetMousePosition() return 0, 0 end
  -- Project markers and regions, kept sorted by position (not part of dump()).
  -- AddProjectMarker2(proj, isrgn, pos, rgnend, name, wantidx, color) -> its index number;
  -- EnumProjectMarkers3(proj, idx) -> retval (idx + 1, 0 past the last), isrgn, pos,
  -- rgnend, name, markrgnindexnumber, color.
  function r.AddProjectMarker2(_, isrgn, pos, rgnend, name, wantidx, color)
    local markers = emu.project.markers
    local number = wantidx >= 0 and wantidx or #markers + 1
    markers[#markers + 1] = { isrgn = isrgn, pos = pos, rgnend = isrgn and rgnend or 0,
                              name = name, number = number, color = color or 0 }
    table.sort(markers, function(a, b) return a.pos < b.pos end)
    return number
  end
  function r.EnumProjectMarkers3(_, idx)
    local m = emu.project.markers[idx + 1]
    if not m then return 0, false, 0, 0, "", 0, 0 end
    return idx + 1, m.isrgn, m.pos, m.rgnend, m.name, m.number, m.color
  end

  -- Pointers ---------------------------------------------------------------------

  -- ValidatePtr2: true while the object is part of the project (deleted or undone-away
  -- objects are invalid).
  function r.ValidatePtr2(_, ptr, kind)
    local want = ({ ["MediaItem*"] = "item", ["MediaItem_Take*"] = "take",
                    ["MediaTrack*"] = "track", ["PCM_source*"] = "source",
                    ["ReaProject*"] = "project" })[kind]
    if want == "project" then return ptr == emu.project end
    return type(ptr) == "table" and ptr.kind == want and in_project(ptr)
  end
  function r.ValidatePtr(ptr, kind) return r.ValidatePtr2(0, ptr, kind) end

  -- Items --------------------------------------------------------------------------

  -- Selected items are counted across tracks in track order, then by position.
  local function selected()
    local list = {}
    for _, item in ipairs(emu:all_items()) do
      if item.selected then list[#list + 1] = item end
    end
    return list
  end
  function r.CountSelectedMediaItems() return #selected() end
  function r.GetSelectedMediaItem(_, i) return selected()[i + 1] end
  function r.CountMediaItems() return #emu:all_items() end
  function r.GetMediaItem(_, i) return emu:all_items()[i + 1] end
  function r.GetMediaItem_Track(item) return check(item, "item", "GetMediaItem_Track").track end
  function r.IsMediaItemSelected(item) return check(item, "item", "IsMediaItemSelected").selected end
  function r.SetMediaItemSelected(item, sel)
    check(item, "item", "SetMediaItemSelected").selected = sel
  end
  -- CountTakes/GetTake: 0-based take index; GetTake is nil past the last take.
  function r.CountTakes(item) return #check(item, "item", "CountTakes").takes end
  function r.GetTake(item, i) return check(item, "item", "GetTake").takes[i + 1] end
  -- GetActiveTake: nil for an item without takes.
  function r.GetActiveTake(item)
    item = check(item, "item", "GetActiveTake")
    return item.takes[item.curtake]
  end

  -- Item values are numbers; I_CURTAKE is the 0-based active take; B_UISEL the selection.
  function r.GetMediaItemInfo_Value(item, key)
    item = check(item, "item", "GetMediaItemInfo_Value")
    if key == "I_CURTAKE" then return (item.curtake - 1) * 1.0 end
    if key == "B_UISEL" then return item.selected and 1.0 or 0.0 end
    local v = item.values[key]
    if v == nil then error("reaper.GetMediaItemInfo_Value: " .. key .. " is not emulated", 2) end
    return v * 1.0 -- the API returns doubles
  end
  function r.SetMediaItemInfo_Value(item, key, value)
    item = check(item, "item", "SetMediaItemInfo_Value")
    emu:_mutate("item " .. key)
    if key == "I_CURTAKE" then item.curtake = math.floor(value) + 1 return true end
    if key == "B_UISEL" then item.selected = value ~= 0 return true end
    if item.values[key] == nil then error("reaper.SetMediaItemInfo_Value: " .. key .. " is not emulated", 2) end
    if key == "D_LENGTH" and value < 0 then value = 0 end
    item.values[key] = value
    return true
  end
  function r.SetMediaItemLength(item, length) return r.SetMediaItemInfo_Value(item, "D_LENGTH", length) end

  -- GetSetMediaItemInfo_String: GUID (read-only here), P_NOTES, P_EXT:<key>.
  function r.GetSetMediaItemInfo_String(item, key, value, set)
    item = check(item, "item", "GetSetMediaItemInfo_String")
    if key == "GUID" then return true, item.guid end
    local field = key:match("^P_EXT:(.+)$")
    if set then emu:_mutate("item " .. key) end
    if field then
      if set then item.ext[field] = value end
      return item.ext[field] ~= nil, item.ext[field] or ""
    elseif key == "P_NOTES" then
      if set then item.notes = value end
      return true, item.notes
    end
    error("reaper.GetSetMediaItemInfo_String: " .. key .. " is not emulated", 2)
  end

  -- Takes --------------------------------------------------------------------------

  -- AddTakeToMediaItem: appends an empty take; the active take does not change.
  function r.AddTakeToMediaItem(item)
    item = check(item, "item", "AddTakeToMediaItem")
    emu:_mutate("add take")
    return emu:_new_take(item)
  end
  function r.GetMediaItemTake_Item(take) return check(take, "take", "GetMediaItemTake_Item").item end
  -- GetMediaItemTakeByGUID: searches the whole project; nil when absent.
  function r.GetMediaItemTakeByGUID(_, guid)
    for _, item in ipairs(emu:all_items()) do
      for _, take in ipairs(item.takes) do
        if take.guid == guid then return take end
      end
    end
  end
  -- SetActiveTake: makes the take the item's active take.
  function r.SetActiveTake(take)
    take = check(take, "take", "SetActiveTake")
    emu:_mutate("active take")
    for i, t in ipairs(take.item.takes) do
      if t == take then take.item.curtake = i end
    end
  end
  -- TakeIsMIDI: true for MIDI takes, also behind SECTION wrappers.
  function r.TakeIsMIDI(take)
    local source = check(take, "take", "TakeIsMIDI").source
    while source and source.type == "SECTION" do source = source.parent end
    return source ~= nil and source.type == "MIDI"
  end
  -- GetTakeNumStretchMarkers: the count set by the test (0 = linear time mapping).
  function r.GetTakeNumStretchMarkers(take)
    return check(take, "take", "GetTakeNumStretchMarkers").stretch_markers
  end
  function r.GetTakeName(take) return check(take, "take", "GetTakeName").name end

  -- Take markers: positions in the take's source time. SetTakeMarker(take, idx, name,
  -- srcpos, color) adds one when idx < 0 (srcpos needed here) or updates marker idx (nil
  -- arguments keep the old value); markers stay sorted by position ("the index ... may change
  -- if srcPos is updated") and the new index is returned, -1 for a bad idx. GetTakeMarker gives
  -- srcpos, name, color, or -1 for a missing marker; DeleteTakeMarker shifts later indices.
  local function sort_markers(take, marker)
    table.sort(take.markers, function(a, b) return a.srcpos < b.srcpos end)
    for i, m in ipairs(take.markers) do
      if m == marker then return i - 1 end
    end
  end
  function r.SetTakeMarker(take, idx, name, srcpos, color)
    take = check(take, "take", "SetTakeMarker")
    emu:_mutate("take marker")
    local marker
    if idx < 0 then
      if type(srcpos) ~= "number" then error("reaper.SetTakeMarker: a new marker needs srcpos", 2) end
      marker = { name = name or "", srcpos = srcpos, color = color or 0 }
      take.markers[#take.markers + 1] = marker
    else
      marker = take.markers[idx + 1]
      if not marker then return -1 end
      marker.name = name or marker.name
      marker.srcpos = srcpos or marker.srcpos
      marker.color = color or marker.color
    end
    return sort_markers(take, marker)
  end
  function r.GetNumTakeMarkers(take) return #check(take, "take", "GetNumTakeMarkers").markers end
  function r.GetTakeMarker(take, idx)
    local marker = check(take, "take", "GetTakeMarker").markers[idx + 1]
    if not marker then return -1, "", 0 end
    return marker.srcpos, marker.name, marker.color
  end
  function r.DeleteTakeMarker(take, idx)
    take = check(take, "take", "DeleteTakeMarker")
    if not take.markers[idx + 1] then return false end
    emu:_mutate("take marker")
    table.remove(take.markers, idx + 1)
    return true
  end
  -- ColorToNative: an OS-dependent integer; here Windows' COLORREF layout (r | g<<8 | b<<16).
  -- Scripts treat it as opaque and add 0x1000000 to mark it as set.
  function r.ColorToNative(red, green, blue) return red | (green << 8) | (blue << 16) end

  -- Take values: D_STARTOFFS (seconds into the take's source), D_PLAYRATE, D_PITCH,
  -- B_PPITCH, D_VOL, D_PAN, I_CHANMODE.
  function r.GetMediaItemTakeInfo_Value(take, key)
    take = check(take, "take", "GetMediaItemTakeInfo_Value")
    local v = take.values[key]
    if v == nil then error("reaper.GetMediaItemTakeInfo_Value: " .. key .. " is not emulated", 2) end
    return v * 1.0
  end
  function r.SetMediaItemTakeInfo_Value(take, key, value)
    take = check(take, "take", "SetMediaItemTakeInfo_Value")
    if take.values[key] == nil then error("reaper.SetMediaItemTakeInfo_Value: " .. key .. " is not emulated", 2) end
    if key == "D_PLAYRATE" and value <= 0 then error("D_PLAYRATE must be > 0", 2) end
    emu:_mutate("take " .. key)
    take.values[key] = value
    return true
  end

  -- GetSetMediaItemTakeInfo_String: P_NAME, GUID (read-only here), P_EXT:<key> (returns
  -- false and "" when the key was never set).
  function r.GetSetMediaItemTakeInfo_String(take, key, value, set)
    take = check(take, "take", "GetSetMediaItemTakeInfo_String")
    if key == "GUID" then return true, take.guid end
    if set then emu:_mutate("take " .. key) end
    if key == "P_NAME" then
      if set then take.name = value end
      return true, take.name
    end
    local field = key:match("^P_EXT:(.+)$")
    if field then
      if set then take.ext[field] = value end
      return take.ext[field] ~= nil, take.ext[field] or ""
    end
    error("reaper.GetSetMediaItemTakeInfo_String: " .. key .. " is not emulated", 2)
  end

  -- Sources --------------------------------------------------------------------------

  -- GetMediaItemTake_Source: the take's (possibly SECTION-wrapped) source; nil for empty takes.
  function r.GetMediaItemTake_Source(take) return check(take, "take", "GetMediaItemTake_Source").source end
  -- SetMediaItemTake_Source: a source already used in the project is duplicated before
  -- being set; the old source is not destroyed.
  function r.SetMediaItemTake_Source(take, source)
    take = check(take, "take", "SetMediaItemTake_Source")
    check(source, "source", "SetMediaItemTake_Source")
    emu:_mutate("take source")
    take.source = in_project(source) and deep_copy(source) or source
    return true
  end
  -- PCM_Source_CreateFromFile: nil when the file is missing or unreadable. Only WAV is
  -- emulated (its length comes from the RIFF header).
  function r.PCM_Source_CreateFromFile(path)
    if not file_exists(path) then return nil end
    return assert(emu:wave_source(path))
  end
  r.PCM_Source_CreateFromFileEx = r.PCM_Source_CreateFromFile
  -- PCM_Source_Destroy: only legal for sources no project uses; nothing to free here.
  function r.PCM_Source_Destroy() end
  -- GetMediaSourceType: "WAVE", "MIDI", or "SECTION" for sections and reversed takes.
  function r.GetMediaSourceType(source) return check(source, "source", "GetMediaSourceType").type end
  -- GetMediaSourceFileName: the file of a file source; "" for SECTION wrappers and MIDI
  -- (unverified in REAPER for SECTION: scripts walk to the parent first).
  function r.GetMediaSourceFileName(source)
    return check(source, "source", "GetMediaSourceFileName").file or ""
  end
  -- GetMediaSourceParent: the wrapped source of a SECTION, nil for a root source.
  function r.GetMediaSourceParent(source) return check(source, "source", "GetMediaSourceParent").parent end
  -- PCM_Source_GetSectionInfo: true, offset, length, reversed for SECTION wrappers; for other
  -- sources false, 0, the source length, false (unverified).
  function r.PCM_Source_GetSectionInfo(source)
    source = check(source, "source", "PCM_Source_GetSectionInfo")
    if source.type == "SECTION" then return true, source.offset, source.length, source.reversed end
    return false, 0, source.length, false
  end
  -- GetMediaSourceLength: seconds (lengthIsQN false for audio).
  function r.GetMediaSourceLength(source) return check(source, "source", "GetMediaSourceLength").length, false end
  function r.GetMediaSourceSampleRate(source) return check(source, "source", "x").sample_rate end
  function r.GetMediaSourceNumChannels(source) return check(source, "source", "x").channels end
  -- PCM_Source_BuildPeaks: peaks are not emulated; 0 = nothing to do.
  function r.PCM_Source_BuildPeaks() return 0 end

  -- Processes ----------------------------------------------------------------------

  -- Splits a command line as ExecProcess does (assumption): at spaces, with "double quotes"
  -- grouping an argument; no shell, no escapes.
  local function split_command(cmdline)
    local args, i = {}, 1
    while i <= #cmdline do
      local c = cmdline:sub(i, i)
      if c:match("%s") then
        i = i + 1
      else
        local arg = ""
        while i <= #cmdline and not cmdline:sub(i, i):match("%s") do
          if cmdline:sub(i, i) == '"' then
            local close = cmdline:find('"', i + 1, true) or (#cmdline + 1)
            arg, i = arg .. cmdline:sub(i + 1, close - 1), close + 1
          else
            arg, i = arg .. cmdline:sub(i, i), i + 1
          end
        end
        args[#args + 1] = arg
      end
    end
    return args
  end
  emu.split_command = split_command

  -- ExecProcess(cmdline, timeoutmsec): nil when the program cannot be started. timeout
  -- -1/-2: returns at once and the process keeps running (the exit code is meaningless,
  -- "-1004" as observed on Linux, no output). 0: waits; >0: waits at most that long. When
  -- waiting it returns "<exit code>\n<stdout>" (stderr is not captured).
  function r.ExecProcess(cmdline, timeout)
    local args = split_command(cmdline)
    local record = { cmdline = cmdline, args = args, timeout = timeout, at = emu:elapsed() }
    emu.processes[#emu.processes + 1] = record
    local program = args[1] or ""
    local found = program:find("/", 1, true) and os.execute("test -x " .. shell_quote(program))
      or (not program:find("/", 1, true) and program ~= ""
          and os.execute("command -v " .. shell_quote(program) .. " >/dev/null 2>&1"))
    if not found then record.started = false return nil end
    record.started = true
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    local command = table.concat(quoted, " ")
    local log = shell_quote(emu.process_log)
    if timeout < 0 then
      local p = io.popen("sh -c " .. shell_quote(command .. " >>" .. log .. " 2>&1 </dev/null & echo $!"))
      record.pid = tonumber(p:read("l"))
      p:close()
      return "-1004\n"
    end
    if timeout > 0 then command = string.format("timeout %.3f %s", timeout / 1000, command) end
    local p = io.popen(command .. " 2>>" .. log)
    local out = p:read("a")
    local _, _, code = p:close()
    record.exit_code, record.output = code, out
    return tostring(code) .. "\n" .. out
  end

  setmetatable(r, { __index = function(_, name)
    if OPTIONAL_NAMES[name] then return nil end
    for _, prefix in ipairs(OPTIONAL_PREFIXES) do
      if name:sub(1, #prefix) == prefix then return nil end
    end
    error("reaper." .. tostring(name) .. " is not emulated", 2)
  end })
  self.reaper = r

  -- gfx: only what a popup menu needs. showmenu returns the 1-based index of the chosen
  -- item, counting every item except submenu headers (">name"); 0 when nothing is chosen
  -- or the item is greyed out ("#").
  local g = { x = 0, y = 0, mouse_x = 0, mouse_y = 0 }
  function g.init() return 1 end
  function g.quit() end
  function g.showmenu(menu)
    emu.menus[#emu.menus + 1] = menu
    local want = table.remove(emu.responses.showmenu, 1)
    if type(want) == "number" then return want end
    local path, index = {}, 0
    for entry in (menu .. "|"):gmatch("(.-)|") do
      local flags, label = entry:match("^([<>#!]*)(.*)$")
      if flags:find(">", 1, true) then
        path[#path + 1] = label
      else
        index = index + 1
        local full = table.concat(path, "/") .. (#path > 0 and "/" or "") .. label
        if full == want then return flags:find("#", 1, true) and 0 or index end
      end
      if flags:find("<", 1, true) then path[#path] = nil end
    end
    return 0
  end
  self.gfx = g
end

return Emulator
