-- @noindex
-- StepEdit codec: the protocol mirror, JSON and OSC 1.0 (pure Lua, no reaper.* calls).
--
--   PROTOCOL_VERSION, DEFAULT_PORT, ADDRESS, ERROR_CODES, JOB_STATES, STATE_EVENTS
--   json_encode(value)        -> string  (keys sorted; json_array(t) marks an empty array)
--   json_decode(text)         -> value   (raises "JSON: ..." on bad input; null -> json_null)
--   osc_encode(address, ...)  -> bytes   (integer -> i, float -> f, string -> s;
--                                         osc_float(x) forces f, osc_blob(bytes) is b)
--   osc_decode(bytes)         -> { {address=, args={...}}, ... }  (bundles unpacked;
--                                         raises "malformed OSC: ..." on bad input)
--   osc_decode_head(bytes)    -> {address=, args=, truncated=true} | nil: the complete
--                                         leading arguments of a message cut short (a
--                                         datagram larger than the receive buffer)

local M = {}

-- The protocol contract is defined in bridge/protocol.py; these are its Lua copies, and
-- tests/reaper/test_codec_crosscheck.py compares them with the Python definitions.
M.PROTOCOL_VERSION = 1
M.DEFAULT_PORT = 9301

M.ADDRESS = {
  ping = "/stepedit/ping", pong = "/stepedit/pong",
  capabilities = "/stepedit/capabilities", edit = "/stepedit/edit",
  transcribe = "/stepedit/transcribe",
  accepted = "/stepedit/accepted", progress = "/stepedit/progress",
  done = "/stepedit/done", error = "/stepedit/error",
  cancel = "/stepedit/cancel", status = "/stepedit/status",
  auth = "/stepedit/auth", -- wraps a signed packet (auth.lua)
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
  forbidden_path = "a path lies outside the engine's configured input or output roots",
  unauthorized = "the request's authentication is missing, wrong, stale or replayed",
  unknown_job = "no job with that id",
  queue_full = "too many jobs waiting; retry after the hint in the error's 4th argument",
  cancelled = "the job was cancelled",
  shutting_down = "the engine is stopping and takes no new jobs",
  backend_failed = "the backend failed while rendering",
  checkpoint = "model files are missing or malformed",
  internal = "an unexpected engine error (see the engine log)",
}

-- States of a job, as the status file and /stepedit/status report them.
M.JOB_STATES = { "queued", "running", "done", "error", "cancelled" }

-- The reply (an ADDRESS key) each status-file state stands for: a status file read by the
-- process transport gives the same events as the OSC replies do.
M.STATE_EVENTS = { queued = "accepted", running = "progress", done = "done",
                   error = "error", cancelled = "error" }

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
-- OSC 1.0 (int32, float32, string, blob; bundles on decode)
-------------------------------------------------------------------------------

local FLOAT, BLOB = {}, {}

function M.osc_float(x)
  return setmetatable({ value = x }, FLOAT)
end

function M.osc_blob(bytes)
  return setmetatable({ value = bytes }, BLOB)
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
    elseif getmetatable(arg) == BLOB then
      tags[#tags + 1], data[#data + 1] = "b",
        string.pack(">s4", arg.value) .. string.rep("\0", -#arg.value % 4)
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

-- A message whose end was cut off (LuaSocket builds that receive at most 8192 bytes truncate
-- larger datagrams): its address and the arguments that arrived whole, or nil when not even
-- the address and type tags did. Bundles are not read.
function M.osc_decode_head(data)
  local ok, head = pcall(function()
    local last = #data
    local address, pos = read_string(data, 1, last)
    if address:sub(1, 1) ~= "/" then return nil end
    local types
    types, pos = read_string(data, pos, last)
    local args = M.json_array()
    for tag in types:sub(2):gmatch(".") do
      local value, next_pos
      if FIXED_ARGS[tag] then
        if pos + string.packsize(FIXED_ARGS[tag]) - 1 > last then break end
        value, next_pos = string.unpack(FIXED_ARGS[tag], data, pos)
      elseif tag == "s" or tag == "S" then
        local read
        read, value, next_pos = pcall(read_string, data, pos, last)
        if not read then break end
      else
        break
      end
      args[#args + 1], pos = value, next_pos
    end
    return { address = address, args = args, truncated = true }
  end)
  return ok and head or nil
end

return M
