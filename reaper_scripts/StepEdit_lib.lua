-- @description StepEdit library (shared by the StepEdit actions)
-- @author StepEdit contributors
-- @version 0.1.0
-- @changelog Initial release.
-- @provides [nomain] .
-- @about
--   # StepEdit library
--
--   Shared code of the StepEdit actions: settings, the OSC and JSON codecs, the two
--   transports to the StepEdit engine, turning selected items into edit requests, the
--   background job loop and putting results back as new takes. It is not an action itself.

--[[
API summary (everything below is a field of the table this file returns)

Settings (ExtState section "StepEdit"; host, port, engine_command, keep_length, iterations,
transport = auto|osc|process)
  settings()                     -> table of typed values
  set_setting(key, value)

Codecs (pure Lua, no REAPER calls)
  json_encode(value)             -> string  (keys sorted; json_array(t) marks an empty array)
  json_decode(text)              -> value   (raises "JSON: ..." on bad input; null -> json_null)
  osc_encode(address, ...)       -> bytes   (integer -> i, float -> f, string -> s;
                                             osc_float(x) forces f)
  osc_decode(bytes)              -> { {address=, args={...}}, ... }  (bundles unpacked;
                                             raises "malformed OSC: ..." on bad input)

Protocol mirror of bridge/protocol.py: PROTOCOL_VERSION, ADDRESS, ERROR_CODES

Items
  item_slice(item)               -> slice | nil, reason   (the source range the item plays)
  edit_label(edit)               -> "happy", "remove silences", ...
  take_name(edit, passes)        -> "StepEdit happy ×2"

Engine
  open_transport(settings)       -> OSC-over-UDP transport when LuaSocket loads, else the
                                    `stepedit send` + status-file transport
  query(addresses, on_reply)     ping/capabilities (async over OSC, short CLI call otherwise)
  engine_down_message(settings)  -> the text telling how to start the engine

Actions (each one is what a StepEdit_*.lua file calls)
  edit_selected_items(edit, opts)  edit = {type, option, iterations, text, target_text};
                                   opts.at_cursor inserts at the edit cursor
  repeat_last_edit(), one_more_pass(), edit_dialog(), cancel_jobs(),
  engine_status(), start_engine(), settings_dialog()
]]

local M = {}

M.VERSION = "0.1.0"
M.SECTION = "StepEdit"
M.PROTOCOL_VERSION = 1

-- Mirrors bridge/protocol.py; tests/reaper/test_codec_crosscheck.py keeps them in step.
M.ADDRESS = {
  ping = "/stepedit/ping", pong = "/stepedit/pong",
  capabilities = "/stepedit/capabilities", edit = "/stepedit/edit",
  accepted = "/stepedit/accepted", progress = "/stepedit/progress",
  done = "/stepedit/done", error = "/stepedit/error",
  cancel = "/stepedit/cancel", status = "/stepedit/status",
}

M.ERROR_CODES = {
  malformed = "the datagram is not a valid OSC packet",
  unknown_address = "no such OSC address",
  bad_arguments = "wrong number or types of OSC arguments",
  invalid_json = "the request argument is not valid JSON",
  bad_request = "a request field is missing, of the wrong type or out of range",
  invalid_edit = "unknown edit type or option, bad iterations or positions",
  unsupported = "the running backend cannot render this edit",
  input_not_found = "the input file does not exist",
  input_not_audio = "the input is a directory or not a readable audio file",
  input_corrupt = "the input file is truncated or damaged",
  bad_slice = "start/length lie outside the file or are not positive",
  silent_input = "the slice holds only silence",
  non_finite = "the input holds NaN or infinite samples",
  too_long = "the slice is longer than the engine's configured maximum",
  output_unwritable = "the output folder is missing or not writable",
  unknown_job = "no job with that id",
  queue_full = "too many jobs waiting; retry later",
  cancelled = "the job was cancelled",
  shutting_down = "the engine is stopping and takes no new jobs",
  backend_failed = "the backend failed while rendering",
  checkpoint = "model files are missing or malformed",
  internal = "an unexpected engine error (see the engine log)",
}

-- No word from the engine this long after sending means it is down (the process transport
-- first has to start `stepedit send`).
local ENGINE_DOWN_S = { osc = 1.5, process = 1.8 }
local RESEND_S = 0.4          -- resend an unanswered /stepedit/edit (UDP may drop it)
local STATUS_QUERY_S = 3      -- ask for a silent job's status this often (OSC transport)
local SILENT_JOB_S = 15       -- OSC: a job whose status queries go unanswered this long failed
local STALLED_JOB_S = 900     -- process transport: no status-file change this long -> failed
local POLL_FILES_S = 0.2      -- status-file poll interval
local UNDO_STATE_ITEMS = 4
local TIMES = "\u{D7}"        -- the multiplication sign in take names ("happy ×2")

-------------------------------------------------------------------------------
-- Settings
-------------------------------------------------------------------------------

local DEFAULTS = {
  host = "127.0.0.1", port = "9301", engine_command = "stepedit",
  keep_length = "0", iterations = "1", transport = "auto",
}

local function ext(key)
  local value = reaper.GetExtState(M.SECTION, key)
  if value == "" then return DEFAULTS[key] or "" end
  return value
end

function M.set_setting(key, value)
  reaper.SetExtState(M.SECTION, key, tostring(value), true)
end

function M.settings()
  local port = math.tointeger(tonumber(ext("port"))) or 9301
  local iterations = math.tointeger(tonumber(ext("iterations"))) or 1
  return {
    host = ext("host"),
    port = port,
    engine_command = ext("engine_command"),
    keep_length = ext("keep_length") == "1",
    iterations = math.max(1, math.min(5, iterations)),
    transport = ext("transport"),
  }
end

-------------------------------------------------------------------------------
-- JSON
-------------------------------------------------------------------------------

M.json_null = setmetatable({}, { __tostring = function() return "null" end })
local ARRAY = {}

function M.json_array(t)
  return setmetatable(t or {}, ARRAY)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == ARRAY then return true end
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local function encode_value(v, out)
  local kind = type(v)
  if v == nil or v == M.json_null then
    out[#out + 1] = "null"
  elseif kind == "boolean" then
    out[#out + 1] = tostring(v)
  elseif kind == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("JSON: cannot encode " .. tostring(v))
    end
    if math.type(v) == "integer" then
      out[#out + 1] = string.format("%d", v)
    else -- the shortest form that reads back as the same double
      local s
      for digits = 15, 17 do
        s = string.format("%." .. digits .. "g", v)
        if tonumber(s) == v then break end
      end
      out[#out + 1] = s
    end
  elseif kind == "string" then
    out[#out + 1] = encode_string(v)
  elseif kind == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("JSON: object keys must be strings") end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k) .. ":"
        encode_value(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    error("JSON: cannot encode a " .. kind)
  end
end

function M.json_encode(value)
  local out = {}
  encode_value(value, out)
  return table.concat(out)
end

local decode_value

local function json_error(pos, what)
  error(string.format("JSON: %s at character %d", what, pos), 0)
end

local function skip_space(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function decode_string(text, pos)
  local out, i = {}, pos + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then json_error(pos, "unterminated string") end
    if c == '"' then return table.concat(out), i + 1 end
    if c:byte() < 32 then json_error(i, "control character in string") end
    if c == "\\" then
      local e = text:sub(i + 1, i + 1)
      local simple = ({ b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
                        ['"'] = '"', ["\\"] = "\\", ["/"] = "/" })[e]
      if simple then
        out[#out + 1], i = simple, i + 2
      elseif e == "u" then
        local hex = text:match("^%x%x%x%x", i + 2)
        if not hex then json_error(i, "bad \\u escape") end
        local code = tonumber(hex, 16)
        i = i + 6
        if code >= 0xD800 and code <= 0xDBFF then
          local low = text:match("^\\u(%x%x%x%x)", i)
          low = low and tonumber(low, 16)
          if not low or low < 0xDC00 or low > 0xDFFF then
            json_error(i, "unpaired surrogate")
          end
          code, i = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00), i + 6
        elseif code >= 0xDC00 and code <= 0xDFFF then
          json_error(i, "unpaired surrogate")
        end
        out[#out + 1] = utf8.char(code)
      else
        json_error(i, "bad escape")
      end
    else
      local j = text:find('[%c"\\]', i) or #text + 1
      out[#out + 1], i = text:sub(i, j - 1), j
    end
  end
end

local function decode_number(text, pos)
  local int = text:match("^-?0", pos) or text:match("^-?[1-9]%d*", pos)
  if not int then json_error(pos, "bad number") end
  local stop = pos + #int
  local frac = text:match("^%.%d+", stop) or ""
  local exp = text:match("^[eE][-+]?%d+", stop + #frac) or ""
  if text:match("^[.eE%d]", stop + #frac + #exp) then json_error(pos, "bad number") end
  local s = int .. frac .. exp
  return tonumber(s), pos + #s
end

local LITERALS = { ["true"] = true, ["false"] = false }

function decode_value(text, pos)
  pos = skip_space(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    local obj = {}
    pos = skip_space(text, pos + 1)
    if text:sub(pos, pos) == "}" then return obj, pos + 1 end
    while true do
      if text:sub(pos, pos) ~= '"' then json_error(pos, "expected a string key") end
      local key
      key, pos = decode_string(text, pos)
      pos = skip_space(text, pos)
      if text:sub(pos, pos) ~= ":" then json_error(pos, "expected ':'") end
      obj[key], pos = decode_value(text, pos + 1)
      pos = skip_space(text, pos)
      c = text:sub(pos, pos)
      if c == "}" then return obj, pos + 1 end
      if c ~= "," then json_error(pos, "expected ',' or '}'") end
      pos = skip_space(text, pos + 1)
    end
  elseif c == "[" then
    local arr = M.json_array()
    pos = skip_space(text, pos + 1)
    if text:sub(pos, pos) == "]" then return arr, pos + 1 end
    while true do
      arr[#arr + 1], pos = decode_value(text, pos)
      pos = skip_space(text, pos)
      c = text:sub(pos, pos)
      if c == "]" then return arr, pos + 1 end
      if c ~= "," then json_error(pos, "expected ',' or ']'") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(text, pos)
  elseif c == "-" or c:match("%d") then
    return decode_number(text, pos)
  end
  for word, value in pairs(LITERALS) do
    if text:sub(pos, pos + #word - 1) == word then return value, pos + #word end
  end
  if text:sub(pos, pos + 3) == "null" then return M.json_null, pos + 4 end
  json_error(pos, c == "" and "unexpected end" or "unexpected '" .. c .. "'")
end

function M.json_decode(text)
  local value, pos = decode_value(text, 1)
  pos = skip_space(text, pos)
  if pos <= #text then json_error(pos, "trailing characters") end
  return value
end

-------------------------------------------------------------------------------
-- OSC 1.0 (int32, float32, string; bundles on decode)
-------------------------------------------------------------------------------

local FLOAT = {}

function M.osc_float(x)
  return setmetatable({ value = x }, FLOAT)
end

local function osc_string(s)
  if s:find("\0", 1, true) then error("OSC strings cannot contain NUL") end
  return s .. string.rep("\0", 4 - #s % 4)
end

function M.osc_encode(address, ...)
  local tags, data = { "," }, {}
  for i = 1, select("#", ...) do
    local arg = select(i, ...)
    if getmetatable(arg) == FLOAT then
      tags[#tags + 1], data[#data + 1] = "f", string.pack(">f", arg.value)
    elseif math.type(arg) == "integer" then
      if arg < -0x80000000 or arg > 0x7fffffff then error("OSC int32 out of range: " .. arg) end
      tags[#tags + 1], data[#data + 1] = "i", string.pack(">i4", arg)
    elseif math.type(arg) == "float" then
      tags[#tags + 1], data[#data + 1] = "f", string.pack(">f", arg)
    elseif type(arg) == "string" then
      tags[#tags + 1], data[#data + 1] = "s", osc_string(arg)
    else
      error("OSC arguments are integers, floats or strings, got " .. type(arg))
    end
  end
  return osc_string(address) .. osc_string(table.concat(tags)) .. table.concat(data)
end

local function malformed(what)
  error("malformed OSC: " .. what, 0)
end

local function read_string(data, pos, last)
  local nul = data:find("\0", pos, true)
  if not nul or nul > last then malformed("unterminated string at byte " .. pos) end
  local next_pos = pos + (nul - pos) // 4 * 4 + 4
  if next_pos - 1 > last then malformed("string padding runs past the end") end
  if data:sub(nul, next_pos - 1):find("[^\0]") then malformed("non-zero string padding") end
  return data:sub(pos, nul - 1), next_pos
end

local FIXED_ARGS = { i = ">i4", f = ">f", h = ">i8", d = ">d" }

local function decode_message(data, pos, last, out)
  local address, types
  address, pos = read_string(data, pos, last)
  if address:sub(1, 1) ~= "/" then malformed("address must start with '/': " .. address) end
  if pos > last then
    out[#out + 1] = { address = address, args = M.json_array() } -- type tags may be omitted
    return
  end
  types, pos = read_string(data, pos, last)
  if types:sub(1, 1) ~= "," then malformed("type tags must start with ','") end
  local args = M.json_array() -- an array even when empty (encodes as [])
  for tag in types:sub(2):gmatch(".") do
    if FIXED_ARGS[tag] then
      if pos + string.packsize(FIXED_ARGS[tag]) - 1 > last then
        malformed("argument runs past the end")
      end
      args[#args + 1], pos = string.unpack(FIXED_ARGS[tag], data, pos)
    elseif tag == "s" or tag == "S" then
      args[#args + 1], pos = read_string(data, pos, last)
    elseif tag == "b" then
      if pos + 3 > last then malformed("blob size runs past the end") end
      local size = string.unpack(">i4", data, pos)
      if size < 0 or pos + 3 + size > last then malformed("blob runs past the end") end
      args[#args + 1] = data:sub(pos + 4, pos + 3 + size)
      pos = pos + 4 + (size + 3) // 4 * 4
    elseif tag == "T" or tag == "F" then
      args[#args + 1] = tag == "T"
    elseif tag == "N" or tag == "I" then
      args[#args + 1] = M.json_null
    else
      malformed("unsupported type tag '" .. tag .. "'")
    end
  end
  if pos ~= last + 1 then malformed("trailing bytes after arguments") end
  out[#out + 1] = { address = address, args = args }
end

local function decode_packet(data, pos, last, out)
  if (last - pos + 1) % 4 ~= 0 or last < pos then malformed("size is not a multiple of 4") end
  if data:sub(pos, pos + 7) ~= "#bundle\0" then return decode_message(data, pos, last, out) end
  pos = pos + 16 -- "#bundle\0" + 8-byte time tag
  if pos - 1 > last then malformed("bundle shorter than its header") end
  while pos <= last do
    if pos + 3 > last then malformed("bundle element size runs past the end") end
    local size = string.unpack(">i4", data, pos)
    if size <= 0 or pos + 3 + size > last then malformed("bundle element runs past the end") end
    decode_packet(data, pos + 4, pos + 3 + size, out)
    pos = pos + 4 + size
  end
end

function M.osc_decode(data)
  local out = {}
  decode_packet(data, 1, #data, out)
  return out
end

-------------------------------------------------------------------------------
-- Small helpers
-------------------------------------------------------------------------------

local function msg(text, title)
  reaper.MB(text, title or "StepEdit", 0)
end

local function console(text)
  reaper.ShowConsoleMsg(text .. "\n")
end

local function no_undo()
  reaper.defer(function() end) -- ends the script without a "ReaScript: Run" undo point
end

local function dirname(path)
  return path:match("^(.*)[/\\][^/\\]*$") or path
end

local function basename(path)
  return path:match("[^/\\]*$")
end

local function join(dir, name)
  local sep = (dir:find("\\", 1, true) and not dir:find("/", 1, true)) and "\\" or "/"
  if dir:sub(-1) == sep then return dir .. name end
  return dir .. sep .. name
end

local function is_absolute(path)
  return path:sub(1, 1) == "/" or path:sub(1, 2) == "\\\\" or path:match("^%a:[/\\]") ~= nil
end

-- ExecProcess is not a shell: it splits the command line at spaces and honours double quotes.
local function quote(arg)
  if arg:find('"', 1, true) then error("cannot pass a double quote to a command: " .. arg) end
  if arg == "" or arg:find("%s") then return '"' .. arg .. '"' end
  return arg
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local function write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  return true
end

local job_counter = 0

-- Unique even where math.random is not seeded (Lua 5.3 in REAPER 6): the clock leads, as
-- result files are named after the first 8 characters.
local function new_job_id()
  job_counter = job_counter + 1
  local micros = math.floor(reaper.time_precise() * 1e6) + job_counter
  return string.format("%08x%04x%04x", micros & 0xffffffff, math.random(0, 0xffff),
    job_counter & 0xffff)
end

local function take_guid(take)
  return select(2, reaper.GetSetMediaItemTakeInfo_String(take, "GUID", "", false))
end

local function item_guid(item)
  return select(2, reaper.GetSetMediaItemInfo_String(item, "GUID", "", false))
end

local function take_name(take)
  return select(2, reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false))
end

local function set_take_name(take, name)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", name, true)
end

local function selected_items()
  local items = {}
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    items[#items + 1] = reaper.GetSelectedMediaItem(0, i)
  end
  return items
end

local function find_item_by_guid(guid)
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    if item_guid(item) == guid then return item end
  end
end

local function clock(seconds)
  return string.format("%d:%04.1f", seconds // 60, seconds % 60)
end

-------------------------------------------------------------------------------
-- Edit labels and take names
-------------------------------------------------------------------------------

local TYPE_LABELS = { vad = "remove silences", denoise = "denoise", clone = "clone" }

function M.edit_label(edit)
  local option = edit.option or ""
  if option == "" then return TYPE_LABELS[edit.type] or edit.type end
  if option == "remove" then return edit.type .. " remove" end
  return option
end

function M.take_name(edit, passes)
  passes = passes or edit.iterations or 1
  local name = "StepEdit " .. M.edit_label(edit)
  if passes > 1 then name = name .. " " .. TIMES .. passes end
  return name
end

-------------------------------------------------------------------------------
-- Item -> the source range it plays
-------------------------------------------------------------------------------

-- Returns {input, start, length, playrate, ...} or nil and why the item cannot be edited.
function M.item_slice(item)
  local take = reaper.GetActiveTake(item)
  if not take then return nil, "the item is empty" end
  if reaper.TakeIsMIDI(take) then return nil, "MIDI takes cannot be edited" end
  if reaper.GetTakeNumStretchMarkers(take) > 0 then
    return nil, "the take has stretch markers (remove them or glue the item first)"
  end
  local source = reaper.GetMediaItemTake_Source(take)
  local offset = 0
  while true do -- SECTION wrappers (sections, reversed takes) sit on top of the file's source
    local parent = reaper.GetMediaSourceParent(source)
    if not parent then break end
    local is_section, section_offset, _, reversed = reaper.PCM_Source_GetSectionInfo(source)
    if reversed then return nil, "the take is reversed (glue the item first)" end
    if is_section then offset = offset + section_offset end
    source = parent
  end
  local file = reaper.GetMediaSourceFileName(source, "")
  if file == "" then return nil, "the take has no source file" end
  if not is_absolute(file) then
    file = join(dirname(select(2, reaper.EnumProjects(-1, ""))), file)
  end
  if not reaper.file_exists(file) then return nil, "its source file is missing: " .. file end

  local playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  local item_length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local start = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS") + offset
  local stop = start + item_length * playrate
  local source_length = reaper.GetMediaSourceLength(source)
  start, stop = math.max(start, 0), math.min(stop, source_length)
  if stop - start < 0.01 then return nil, "the item plays none of its source file" end
  return {
    item = item, take = take, input = file, start = start, length = stop - start,
    playrate = playrate, item_guid = item_guid(item), take_guid = take_guid(take),
    name = take_name(take), position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    lead_in = (start - (reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS") + offset))
      / playrate, -- item time before the first sample sent (item starts before its source)
  }
end

local function describe_item(slice_or_item)
  local item = slice_or_item.item or slice_or_item
  local take = reaper.ValidatePtr2(0, item, "MediaItem*") and reaper.GetActiveTake(item)
  local name = slice_or_item.name or (take and take_name(take)) or "empty item"
  local position = slice_or_item.position or reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  return string.format("\"%s\" at %s", name, clock(position))
end

-------------------------------------------------------------------------------
-- Transports: OSC over UDP (LuaSocket), or `stepedit send` + status files
-------------------------------------------------------------------------------

local function load_socket()
  local dir = reaper.GetResourcePath() ..
    "/Scripts/Mavriq ReaScript Repository/Various/Mavriq-Lua-Sockets/"
  if not package.cpath:find(dir, 1, true) then
    package.cpath = package.cpath .. ";" .. dir .. "?.dll;" .. dir .. "?.so"
    package.path = package.path .. ";" .. dir .. "?.lua"
  end
  for _, name in ipairs({ "socket", "socket.core" }) do
    local ok, socket = pcall(require, name)
    if ok and type(socket) == "table" and socket.udp then return socket end
  end
end

local Osc = {}
Osc.__index = Osc

local function open_osc(settings)
  local socket = load_socket()
  if not socket then return nil end
  local host = settings.host
  if not host:match("^%d+%.%d+%.%d+%.%d+$") then host = socket.dns.toip(host) or host end
  local udp = socket.udp()
  udp:settimeout(0)
  local ok, err = udp:setsockname(host:match("^127%.") and host or "0.0.0.0", 0)
  if not ok then error("cannot open a UDP socket: " .. tostring(err)) end
  return setmetatable({ udp = udp, host = host, port = settings.port, kind = "osc" }, Osc)
end

function Osc:send(address, ...)
  self.udp:sendto(M.osc_encode(address, ...), self.host, self.port)
end

function Osc:start(job)
  self:send(M.ADDRESS.edit, job.id, M.json_encode(job.request))
  job.asked_at = reaper.time_precise()
  return true
end

-- Reads every waiting datagram; returns the decoded messages.
function Osc:receive()
  local messages = {}
  while true do
    local data = self.udp:receive()
    if not data then break end
    local ok, decoded = pcall(M.osc_decode, data)
    if ok then
      for _, m in ipairs(decoded) do messages[#messages + 1] = m end
    end
  end
  return messages
end

local EVENT_KINDS = { accepted = true, progress = true, done = true, error = true }

function Osc:poll(jobs, now)
  local events = {}
  for _, m in ipairs(self:receive()) do
    local kind = m.address:match("^/stepedit/(%a+)$")
    if EVENT_KINDS[kind] and type(m.args[1]) == "string" then
      local a = m.args
      events[#events + 1] = { id = a[1], kind = kind, fraction = a[2], stage = a[3],
                              output_path = a[2], result = a[3], code = a[2], message = a[3] }
    end
  end
  for _, job in ipairs(jobs) do -- UDP may drop packets: resend or ask again
    if not job.final and now - job.asked_at >= (job.accepted and STATUS_QUERY_S or RESEND_S) then
      if job.accepted then self:send(M.ADDRESS.status, job.id) else self:start(job) end
      job.asked_at = now
    end
  end
  return events
end

function Osc:is_silent(job, now)
  return now - job.heard_at > SILENT_JOB_S
end

function Osc:cancel(job)
  self:send(M.ADDRESS.cancel, job.id)
end

function Osc:close()
  self.udp:close()
end

local Process = {}
Process.__index = Process

local function jobs_dir()
  local dir = join(reaper.GetResourcePath(), "Data/StepEdit/jobs")
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

local function open_process(settings)
  return setmetatable({ command = settings.engine_command, kind = "process",
                        engine = settings.host .. ":" .. settings.port, dir = jobs_dir() }, Process)
end

function Process:run(args)
  return reaper.ExecProcess(self.command .. " " .. args .. " --engine " .. self.engine, -2)
end

function Process:start(job)
  job.status_file = join(self.dir, job.id .. ".status.json")
  job.request_file = join(self.dir, job.id .. ".request.json")
  job.request.status_file = job.status_file
  local ok, err = write_file(job.request_file, M.json_encode(job.request))
  if not ok then return nil, "cannot write " .. job.request_file .. ": " .. tostring(err) end
  if not self:run("send --job-id " .. job.id .. " --request-file " .. quote(job.request_file)) then
    return nil, "could not run the StepEdit client \"" .. self.command .. "\""
  end
  job.polled_at = 0
  return true
end

local STATE_EVENTS = { queued = "accepted", running = "progress", done = "done",
                       error = "error", cancelled = "error" }

function Process:poll(jobs, now)
  local events = {}
  for _, job in ipairs(jobs) do
    if not job.final and now - job.polled_at >= POLL_FILES_S then
      job.polled_at = now
      local text = read_file(job.status_file)
      local ok, status = pcall(M.json_decode, text or "")
      if text and ok and type(status) == "table" and status.job_id == job.id then
        local stamp = table.concat({ tostring(status.state), tostring(status.stage),
                                     tostring(status.progress) }, "|")
        if stamp ~= job.status_stamp then
          job.status_stamp = stamp
          local kind = STATE_EVENTS[status.state]
          local err = type(status.error) == "table" and status.error or {}
          if kind then
            events[#events + 1] = {
              id = job.id, kind = kind, fraction = status.progress, stage = status.stage,
              output_path = status.output_path, result = status.result,
              code = err.code or status.state, message = err.message or "",
            }
          end
        end
      end
    end
  end
  return events
end

function Process:is_silent(job, now)
  return now - job.heard_at > (job.accepted and STALLED_JOB_S or SILENT_JOB_S)
end

function Process:cancel(job)
  self:run("cancel " .. job.id)
end

function Process:close(jobs)
  for _, job in ipairs(jobs or {}) do
    if job.status_file then os.remove(job.status_file) end
    if job.request_file then os.remove(job.request_file) end
  end
end

function M.open_transport(settings)
  settings = settings or M.settings()
  if settings.transport ~= "process" then
    local transport = open_osc(settings)
    if transport then return transport end
    if settings.transport == "osc" then
      error("the transport setting is \"osc\" but LuaSocket is not installed (install " ..
        "\"Mavriq Lua Sockets\" with ReaPack, or set the transport to auto)", 0)
    end
  end
  return open_process(settings)
end

function M.engine_down_message(settings)
  settings = settings or M.settings()
  return string.format(
    "The StepEdit engine is not answering on %s:%d.\n\n" ..
    "Start it with the action \"StepEdit_Start engine\", or in a terminal:\n\n" ..
    "    stepedit serve --port %d\n\nNothing was changed.",
    settings.host, settings.port, settings.port)
end

-------------------------------------------------------------------------------
-- Running jobs (shared between running scripts through ExtState)
-------------------------------------------------------------------------------

local function running_ids()
  local ids = {}
  for id in reaper.GetExtState(M.SECTION, "running"):gmatch("%S+") do ids[#ids + 1] = id end
  return ids
end

local function set_running(add, remove)
  local keep = {}
  for _, id in ipairs(running_ids()) do
    if not remove[id] then keep[#keep + 1] = id end
  end
  for _, id in ipairs(add) do keep[#keep + 1] = id end
  reaper.SetExtState(M.SECTION, "running", table.concat(keep, " "), false)
end

local function cancel_serial()
  return reaper.GetExtState(M.SECTION, "cancel_serial")
end

-------------------------------------------------------------------------------
-- Progress display: ReaImGui window when installed, else console + take names
-------------------------------------------------------------------------------

local function open_imgui(title)
  if not reaper.ImGui_GetBuiltinPath then return nil end
  package.path = reaper.ImGui_GetBuiltinPath() .. "/?.lua;" .. package.path
  local ok, ImGui = pcall(function() return require("imgui")("0.9") end)
  if not ok then return nil end
  return { ImGui = ImGui, ctx = ImGui.CreateContext("StepEdit"), title = title, open = true }
end

-- Draws one frame; returns true when the user pressed Cancel.
local function draw_imgui(ui, jobs)
  local ImGui, ctx = ui.ImGui, ui.ctx
  ImGui.SetNextWindowSize(ctx, 420, 70 + 44 * #jobs, ImGui.Cond_FirstUseEver)
  local visible, open = ImGui.Begin(ctx, ui.title, true)
  ui.open = open
  local cancel = false
  if visible then
    for _, job in ipairs(jobs) do
      ImGui.Text(ctx, describe_item(job.slice))
      local overlay = job.final and job.outcome or
        string.format("%s %d%%", job.stage or "sending", math.floor((job.fraction or 0) * 100))
      ImGui.ProgressBar(ctx, job.final and 1 or (job.fraction or 0), -1, 0, overlay)
    end
    cancel = ImGui.Button(ctx, "Cancel")
    ImGui.End(ctx)
  end
  return cancel
end

local function show_text_progress(job)
  if not job.accepted then return end
  local percent = math.floor((job.fraction or 0) * 100)
  local stamp = (job.stage or "") .. percent // 10
  if stamp == job.shown or job.final then return end
  job.shown = stamp
  console(string.format("StepEdit %s: %s %s %d%%", M.edit_label(job.edit),
    describe_item(job.slice), job.stage or "", percent))
  local take = reaper.GetMediaItemTakeByGUID(0, job.slice.take_guid)
  if take and reaper.ValidatePtr2(0, take, "MediaItem_Take*") and job.owns_name then
    set_take_name(take, string.format("%s [StepEdit %d%%]", job.slice.name, percent))
    reaper.UpdateItemInProject(reaper.GetMediaItemTake_Item(take))
  end
end

local function restore_take_names(jobs)
  for _, job in ipairs(jobs) do
    if job.owns_name and job.shown then
      local take = reaper.GetMediaItemTakeByGUID(0, job.slice.take_guid)
      if take and reaper.ValidatePtr2(0, take, "MediaItem_Take*") then
        set_take_name(take, job.slice.name)
      end
      job.shown = nil
    end
  end
end

-------------------------------------------------------------------------------
-- Results -> new takes
-------------------------------------------------------------------------------

local COPIED_TAKE_VALUES = { "D_PLAYRATE", "B_PPITCH", "D_PITCH", "D_VOL", "D_PAN", "I_CHANMODE" }

-- Re-finds the item (by GUID: pointers may have changed) and checks the result file.
local function resolve_result(job)
  local old = reaper.GetMediaItemTakeByGUID(0, job.slice.take_guid)
  if old and not reaper.ValidatePtr2(0, old, "MediaItem_Take*") then old = nil end
  local item = old and reaper.GetMediaItemTake_Item(old) or find_item_by_guid(job.slice.item_guid)
  if not item or not reaper.ValidatePtr2(0, item, "MediaItem*") then
    return nil, "the item was deleted while the engine worked"
  end
  local path = job.output_path
  if type(path) ~= "string" or not reaper.file_exists(path) then
    return nil, "the engine's result file is missing: " .. tostring(path)
  end
  job.target_item, job.target_take = item, old
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
  set_take_name(take, M.take_name(job.edit, job.passes))
  reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:StepEdit", M.json_encode({
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
  return true
end

local function failure_line(job)
  return string.format("- %s: %s", describe_item(job.slice), job.failure)
end

-- Applies every finished job of a batch in one undo point; one message for all failures.
local function finish_batch(batch)
  restore_take_names(batch.jobs)
  local done, failed = {}, {}
  for _, refusal in ipairs(batch.refused) do failed[#failed + 1] = refusal end
  for _, job in ipairs(batch.jobs) do
    if job.output_path and not job.failure then
      local ok, err = resolve_result(job)
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
      local ok, added, err = pcall(apply_result, job, batch.keep_length)
      if ok and added then
        applied = applied + 1
      else
        job.failure = ok and err or ("error while adding the take: " .. tostring(added))
        failed[#failed + 1] = job
      end
    end
    reaper.Main_OnCommand(40047, 0) -- Peaks: Build any missing peaks
    reaper.PreventUIRefresh(-1)
    reaper.UpdateArrange()
    reaper.Undo_EndBlock2(0, batch.undo_name, UNDO_STATE_ITEMS)
  end
  if not batch.quiet then
    console(string.format("%s: %d take(s) added, %d failed%s.", batch.undo_name, applied,
      #failed, batch.cancelled and ", the rest cancelled" or ""))
  end
  if #failed > 0 then
    local lines = {}
    for _, job in ipairs(failed) do lines[#lines + 1] = failure_line(job) end
    msg(string.format("%s: %d of %d item(s) could not be edited; their takes are " ..
      "unchanged.\n\n%s", batch.undo_name, #failed, #batch.jobs + #batch.refused,
      table.concat(lines, "\n")))
  end
end

-------------------------------------------------------------------------------
-- The batch loop
-------------------------------------------------------------------------------

local function describe_error(code, message)
  local text = tostring(code)
  if message and message ~= "" then text = text .. ": " .. message
  elseif M.ERROR_CODES[code] then text = text .. ": " .. M.ERROR_CODES[code] end
  return text
end

local function handle_event(job, event, now)
  job.heard_at = now
  if job.final then return end
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
    job.result = type(event.result) == "string" and select(2, pcall(M.json_decode, event.result))
      or event.result
  elseif event.kind == "error" then
    job.accepted, job.final, job.outcome = true, true, tostring(event.code)
    job.code = event.code
    job.failure = describe_error(event.code, event.message)
  end
end

local function run_batch(batch)
  local transport, jobs = batch.transport, batch.jobs
  local started = reaper.time_precise()
  local serial = cancel_serial()
  local ui = open_imgui(batch.undo_name)
  batch.quiet = ui ~= nil -- the window shows progress; keep the console closed
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
    set_running({}, ids)
    restore_take_names(jobs)
    pcall(transport.close, transport, jobs)
  end
  reaper.atexit(cleanup)

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
      for _, job in ipairs(jobs) do
        if job.id == event.id then handle_event(job, event, now) end
      end
    end
    local heard = false
    for _, job in ipairs(jobs) do heard = heard or job.accepted end
    if not heard and now - started > ENGINE_DOWN_S[transport.kind] then
      for _, job in ipairs(jobs) do transport:cancel(job) end -- in case it wakes up later
      cleanup()
      msg(M.engine_down_message(batch.settings), "StepEdit: engine not running")
      return false
    end
    for _, job in ipairs(jobs) do
      if not job.final and transport:is_silent(job, now) then
        job.final, job.outcome = true, "no answer"
        job.failure = "the engine stopped answering about this job"
      end
    end
    if cancel_serial() ~= serial then cancel_all("cancelled") end
    if ui and ui.open then
      if draw_imgui(ui, jobs) then cancel_all("cancelled") end
    else
      for _, job in ipairs(jobs) do show_text_progress(job) end
    end
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
-- Starting edits
-------------------------------------------------------------------------------

local function media_dir()
  local dir = reaper.GetProjectPathEx(0, "")
  if dir == "" then dir = dirname(select(2, reaper.EnumProjects(-1, ""))) end
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

local function copy_edit(edit)
  local copy = {}
  for k, v in pairs(edit) do copy[k] = v end
  return copy
end

-- plan(item) -> slice, edit, passes  |  nil, reason.  Starts one job per planned item.
local function start_batch(plan)
  local settings = M.settings()
  local items = selected_items()
  if #items == 0 then
    msg("Select one or more speech items first.")
    return no_undo()
  end
  local batch = { jobs = {}, refused = {}, settings = settings,
                  keep_length = settings.keep_length }
  local names = {}
  for _, item in ipairs(items) do
    local slice, edit, passes = plan(item)
    if slice then
      local job = { id = new_job_id(), slice = slice, edit = edit, passes = passes,
                    stage = "sending", fraction = 0 }
      job.request = { input = slice.input, start = slice.start, length = slice.length,
                      edit = edit }
      job.owns_name = not names[slice.take_guid] -- one job shows progress in a take's name
      names[slice.take_guid] = true
      batch.jobs[#batch.jobs + 1] = job
      local name = M.take_name(edit, passes)
      batch.undo_name = (batch.undo_name == nil or batch.undo_name == name) and name
        or "StepEdit edits"
    else
      batch.refused[#batch.refused + 1] = { slice = { item = item }, failure = edit }
    end
  end
  if #batch.jobs == 0 then
    local lines = {}
    for _, refusal in ipairs(batch.refused) do lines[#lines + 1] = failure_line(refusal) end
    msg("StepEdit: nothing to edit.\n\n" .. table.concat(lines, "\n"))
    return no_undo()
  end

  local ok, transport = pcall(M.open_transport, settings)
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
  set_running(ids, {})
  batch.sent = running
  return run_batch(batch)
end

local function cursor_position(slice)
  local cursor = reaper.GetCursorPosition()
  local item_length = reaper.GetMediaItemInfo_Value(slice.item, "D_LENGTH")
  local into = cursor - slice.position
  if into < 0 or into > item_length then return nil end
  return math.max(0, math.min(slice.length, (into - slice.lead_in) * slice.playrate))
end

-- edit: {type=, option=, iterations=, text=, target_text=}; opts.at_cursor inserts at the
-- edit cursor (paralinguistic).
function M.edit_selected_items(edit, opts)
  opts = opts or {}
  edit = copy_edit(edit)
  edit.iterations = edit.iterations or M.settings().iterations
  reaper.SetExtState(M.SECTION, "last_edit", M.json_encode({ edit = edit, opts = opts }), true)
  return start_batch(function(item)
    local slice, reason = M.item_slice(item)
    if not slice then return nil, reason end
    local this_edit = copy_edit(edit)
    if opts.at_cursor then
      local at = cursor_position(slice)
      if not at then return nil, "the edit cursor is not inside this item" end
      this_edit.position = M.json_array({ at })
    end
    return slice, this_edit, edit.iterations
  end)
end

function M.repeat_last_edit()
  local ok, last = pcall(M.json_decode, reaper.GetExtState(M.SECTION, "last_edit"))
  if not ok or type(last) ~= "table" or type(last.edit) ~= "table" then
    msg("There is no previous StepEdit edit to repeat yet.")
    return no_undo()
  end
  return M.edit_selected_items(last.edit, last.opts)
end

-- Runs the edit that made each item's active take once more, on that take's audio.
function M.one_more_pass()
  return start_batch(function(item)
    local take = reaper.GetActiveTake(item)
    if not take then return nil, "the item is empty" end
    local _, meta = reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:StepEdit", "", false)
    local ok, info = pcall(M.json_decode, meta)
    if not ok or type(info) ~= "table" or type(info.edit) ~= "table" then
      return nil, "its active take is not a StepEdit result"
    end
    local slice, reason = M.item_slice(item)
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
  local ids = running_ids()
  if #ids == 0 then
    msg("No StepEdit jobs are running.")
    return no_undo()
  end
  local transport = M.open_transport()
  for _, id in ipairs(ids) do transport:cancel({ id = id }) end
  if transport.kind == "osc" then transport:close() end
  reaper.SetExtState(M.SECTION, "cancel_serial", tostring(reaper.time_precise()), false)
  console(string.format("StepEdit: cancelling %d job(s).", #ids))
  return no_undo()
end

-------------------------------------------------------------------------------
-- Engine queries (ping, capabilities): async over OSC, short blocking CLI call otherwise
-------------------------------------------------------------------------------

local QUERY_TIMEOUT_S = 1.5

-- Calls on_reply(messages_by_address) when every address answered, or on_reply(nil) on timeout.
function M.query(addresses, on_reply)
  local settings = M.settings()
  local transport = M.open_transport(settings)
  if transport.kind == "osc" then
    local replies, want, started = {}, #addresses, reaper.time_precise()
    local reply_of = { [M.ADDRESS.ping] = M.ADDRESS.pong,
                       [M.ADDRESS.capabilities] = M.ADDRESS.capabilities }
    for _, address in ipairs(addresses) do transport:send(address) end
    local function tick()
      local ok, err = xpcall(function()
        for _, m in ipairs(transport:receive()) do
          for _, address in ipairs(addresses) do
            if reply_of[address] == m.address and not replies[address] then
              replies[address], want = m, want - 1
            end
          end
        end
        if want == 0 or reaper.time_precise() - started > QUERY_TIMEOUT_S then
          transport:close()
          on_reply(want == 0 and replies or nil)
          return false
        end
        return true
      end, debug.traceback)
      if not ok then msg("StepEdit: " .. tostring(err)) elseif err then reaper.defer(tick) end
    end
    return reaper.defer(tick)
  end
  -- No sockets: the CLI prints the answer; this blocks REAPER for at most ~2 s.
  local replies = {}
  for _, address in ipairs(addresses) do
    local command = address == M.ADDRESS.ping and "ping" or "capabilities"
    local out = reaper.ExecProcess(settings.engine_command .. " " .. command .. " --engine " ..
      transport.engine .. " --timeout " .. QUERY_TIMEOUT_S, 5000)
    local code, text = (out or ""):match("^(%-?%d+)\n(.*)$")
    if code ~= "0" then return on_reply(nil, out and text or "could not run " ..
      settings.engine_command) end
    if command == "ping" then
      replies[address] = { address = M.ADDRESS.pong, text = text }
    else
      replies[address] = { address = M.ADDRESS.capabilities, args = { text } }
    end
  end
  on_reply(replies)
end

function M.engine_status()
  M.query({ M.ADDRESS.ping, M.ADDRESS.capabilities }, function(replies)
    if not replies then
      return msg(M.engine_down_message(), "StepEdit: engine not running")
    end
    local pong = replies[M.ADDRESS.ping]
    local text = pong.text or string.format("StepEdit %s (protocol v%d), backend %s on %s",
      tostring(pong.args[2]), pong.args[1] or 0, tostring(pong.args[3]), tostring(pong.args[4]))
    local lines = { (text:gsub("%s+$", "")), "", "Edits this engine can render now:" }
    local ok, caps = pcall(M.json_decode, replies[M.ADDRESS.capabilities].args[1])
    local edits = ok and type(caps) == "table" and caps.backends
      and caps.backends[caps.backend] and caps.backends[caps.backend].edits or {}
    local types = {}
    for name in pairs(edits) do types[#types + 1] = name end
    table.sort(types)
    for _, name in ipairs(types) do
      local options = table.concat(edits[name], ", ")
      lines[#lines + 1] = "  " .. name .. (options ~= "" and ": " .. options or "")
    end
    local s = M.settings()
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("Engine %s:%d; running jobs: %d.", s.host, s.port,
      #running_ids())
    msg(table.concat(lines, "\n"), "StepEdit engine status")
  end)
end

-------------------------------------------------------------------------------
-- "Edit selected items..." dialog, built from /stepedit/capabilities
-------------------------------------------------------------------------------

-- Captions are comma-separated; values use "|" so that they may hold commas.
local function ask(title, fields)
  local captions, defaults = {}, {}
  for i, f in ipairs(fields) do captions[i], defaults[i] = f[1], f[2] end
  local ok, csv = reaper.GetUserInputs(title, #fields,
    table.concat(captions, ",") .. ",separator=|,extrawidth=220", table.concat(defaults, "|"))
  if not ok then return nil end
  local values = {}
  for value in (csv .. "|"):gmatch("(.-)|") do values[#values + 1] = value end
  return values
end

local function pick_from_menu(caps)
  local renderable = caps.backends and caps.backends[caps.backend]
    and caps.backends[caps.backend].edits or {}
  local types, entries, menu = {}, {}, {}
  for name in pairs(caps.edit_types or {}) do types[#types + 1] = name end
  table.sort(types)
  for _, name in ipairs(types) do
    local options = caps.edit_types[name].options or {}
    local can = renderable[name] ~= nil
    if #options == 0 then
      menu[#menu + 1] = (can and "" or "#") .. name
      entries[#entries + 1] = { type = name, option = "" }
    else
      menu[#menu + 1] = ">" .. name
      for i, option in ipairs(options) do
        local ok_option = false
        for _, o in ipairs(renderable[name] or {}) do ok_option = ok_option or o == option end
        menu[#menu + 1] = (i == #options and "<" or "") .. (ok_option and "" or "#") .. option
        entries[#entries + 1] = { type = name, option = option }
      end
    end
  end
  local x, y = reaper.GetMousePosition()
  gfx.init("StepEdit", 0, 0, 0, x, y)
  gfx.x, gfx.y = gfx.mouse_x, gfx.mouse_y
  local choice = gfx.showmenu(table.concat(menu, "|"))
  gfx.quit()
  return entries[choice]
end

function M.edit_dialog()
  if reaper.CountSelectedMediaItems(0) == 0 then
    msg("Select one or more speech items first.")
    return no_undo()
  end
  M.query({ M.ADDRESS.capabilities }, function(replies, why)
    if not replies then
      return msg(M.engine_down_message() .. (why and "\n\n" .. why or ""),
        "StepEdit: engine not running")
    end
    local ok, caps = pcall(M.json_decode, replies[M.ADDRESS.capabilities].args[1])
    if not ok or type(caps) ~= "table" then return msg("StepEdit: unreadable capabilities.") end
    local edit = pick_from_menu(caps)
    if not edit then return end
    local uses = {}
    for _, u in ipairs(caps.edit_types[edit.type].uses or {}) do uses[u] = true end
    local max = math.tointeger(caps.max_iterations) or 5
    local fields = { { string.format("Iterations (1-%d)", max), M.settings().iterations } }
    if uses.text then fields[#fields + 1] = { "Transcript (optional)", "" } end
    if uses.target_text then fields[#fields + 1] = { "Target text", "" } end
    local values = ask("StepEdit " .. M.edit_label(edit), fields)
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
  if basename(path):lower():match("^python") then return quote(path) .. " -m bridge" end
  return quote(path)
end

function M.start_engine()
  local settings = M.settings()
  local command = settings.engine_command
  if command == DEFAULTS.engine_command and not reaper.HasExtState(M.SECTION, "engine_command") then
    local values = ask("Start StepEdit engine", {
      { "Path of stepedit or its python", "" } })
    if not values or values[1] == "" then return no_undo() end
    command = command_for(values[1])
    M.set_setting("engine_command", command)
  end
  local out = reaper.ExecProcess(string.format("%s serve --host %s --port %d", command,
    settings.host, settings.port), -2)
  if not out then
    msg("Could not run \"" .. command .. "\".\n\nSet the path of stepedit (or of the Python " ..
      "of its environment) with the action \"StepEdit_Settings\".")
    return no_undo()
  end
  console(string.format("StepEdit: starting the engine (%s serve --port %d)...", command,
    settings.port))
  local started = reaper.time_precise()
  local function check()
    M.query({ M.ADDRESS.ping }, function(replies)
      if replies then
        console("StepEdit: the engine is running.")
      elseif reaper.time_precise() - started < 30 then
        reaper.defer(check)
      else
        msg(string.format("The StepEdit engine did not answer within 30 s.\n\nRun it in a " ..
          "terminal to see why:\n\n    %s serve --port %d", command, settings.port))
      end
    end)
  end
  if open_osc(settings) then check() else no_undo() end
end

function M.settings_dialog()
  local s = M.settings()
  local values = ask("StepEdit settings", {
    { "Engine host", s.host }, { "Engine port", s.port },
    { "Engine command (stepedit path)", s.engine_command },
    { "Keep item length (0/1)", s.keep_length and 1 or 0 },
    { "Default iterations (1-5)", s.iterations },
    { "Transport (auto/osc/process)", s.transport },
  })
  if not values then return no_undo() end
  local keys = { "host", "port", "engine_command", "keep_length", "iterations", "transport" }
  for i, key in ipairs(keys) do M.set_setting(key, values[i]) end
  return no_undo()
end

return M
