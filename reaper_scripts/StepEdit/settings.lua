-- @noindex
-- StepEdit settings and the state the scripts share, all in REAPER's ExtState section
-- "StepEdit".
--
--   settings()               -> {host, port, engine_command, keep_length, iterations, transport,
--                                language, mask_sound, take_markers, fillers = {en=, zh=},
--                                key = {id=, secret=} | nil (sign requests when set),
--                                remote (the engine cannot read this computer's files),
--                                map_paths = {"CLIENT_PREFIX=ENGINE_PREFIX", ...}}
--   set_setting(key, value)     persisted
--   raw(key)                 -> the stored text, or the default
--   running_ids(), set_running(add, remove)   ids of the jobs running scripts wait for
--   cancel_serial(), request_cancel()         "Cancel jobs" bumps the serial; batches watch it

local import = ...
local codec = import("codec")

local M = {}

M.SECTION = "StepEdit"

M.DEFAULTS = {
  host = "127.0.0.1", port = tostring(codec.DEFAULT_PORT), engine_command = "stepedit",
  keep_length = "0", iterations = "1", transport = "auto",
  language = "auto", mask_sound = "room_tone", take_markers = "0",
  fillers_en = "", fillers_zh = "", -- "": the engine's own list for that language
  -- The engine's secret (`stepedit secret`) lives only here, in REAPER's own settings file,
  -- never in a project or a log; "" sends plain requests.
  key_id = "default", secret = "",
  -- "auto": remote when the host is not this computer; "1"/"0" force it.
  remote = "auto", map_paths = "", -- "C:/Projects=/mnt/projects; ..." (shared storage)
}

M.LANGUAGES = { auto = true, en = true, zh = true }
M.MASK_SOUNDS = { room_tone = true, silence = true, bleep = true }

-- "um, uh  er" -> {"um", "uh", "er"}
local function word_list(text)
  local words = {}
  for word in text:gmatch("[^%s,;]+") do words[#words + 1] = word end
  return words
end

local function ext(key)
  local value = reaper.GetExtState(M.SECTION, key)
  if value == "" then return M.DEFAULTS[key] or "" end
  return value
end

local function is_loopback(host)
  return host == "localhost" or host == "::1" or host:match("^127%.") ~= nil
end

-- "a=b; c=d" -> {"a=b", "c=d"}: prefixes may hold spaces, not ";".
local function path_maps(text)
  local maps = {}
  for entry in text:gmatch("[^;]+") do
    local here, there = entry:match("^%s*(.-)%s*=%s*(.-)%s*$")
    if here and here ~= "" and there ~= "" then maps[#maps + 1] = here .. "=" .. there end
  end
  return maps
end

-- The stored text of a setting, or its default (what a dialog shows).
M.raw = ext

-- Pasted values may bring spaces; blank reads as the default.
local function trimmed(key)
  local value = ext(key):match("^%s*(.-)%s*$")
  return value ~= "" and value or M.DEFAULTS[key]
end

function M.set_setting(key, value)
  reaper.SetExtState(M.SECTION, key, tostring(value), true)
end

function M.settings()
  local port = math.tointeger(tonumber(ext("port"))) or codec.DEFAULT_PORT
  local iterations = math.tointeger(tonumber(ext("iterations"))) or 1
  local language = ext("language"):lower()
  local mask = ext("mask_sound"):lower():gsub("[ -]", "_")
  local secret = trimmed("secret")
  local host, remote = ext("host"), ext("remote")
  return {
    host = host,
    port = port,
    engine_command = ext("engine_command"),
    keep_length = ext("keep_length") == "1",
    iterations = math.max(1, math.min(5, iterations)),
    transport = ext("transport"),
    language = M.LANGUAGES[language] and language or "auto",
    mask_sound = M.MASK_SOUNDS[mask] and mask or "room_tone",
    take_markers = ext("take_markers") == "1",
    fillers = { en = word_list(ext("fillers_en")), zh = word_list(ext("fillers_zh")) },
    key = secret ~= "" and { id = trimmed("key_id"), secret = secret } or nil,
    remote = remote == "1" or (remote ~= "0" and not is_loopback(host)),
    map_paths = path_maps(ext("map_paths")),
  }
end

-- Running jobs, shared between running scripts (not persisted).

function M.running_ids()
  local ids = {}
  for id in reaper.GetExtState(M.SECTION, "running"):gmatch("%S+") do ids[#ids + 1] = id end
  return ids
end

function M.set_running(add, remove)
  local keep = {}
  for _, id in ipairs(M.running_ids()) do
    if not remove[id] then keep[#keep + 1] = id end
  end
  for _, id in ipairs(add) do keep[#keep + 1] = id end
  reaper.SetExtState(M.SECTION, "running", table.concat(keep, " "), false)
end

function M.cancel_serial()
  return reaper.GetExtState(M.SECTION, "cancel_serial")
end

function M.request_cancel()
  reaper.SetExtState(M.SECTION, "cancel_serial", tostring(reaper.time_precise()), false)
end

return M
