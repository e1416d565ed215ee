-- @noindex
-- StepEdit settings and the state the scripts share, all in REAPER's ExtState section
-- "StepEdit".
--
--   settings()               -> {host, port, engine_command, keep_length, iterations, transport,
--                                language, mask_sound, take_markers, fillers = {en=, zh=},
--                                key = {id=, secret=} | nil (sign requests when set)}
--   set_setting(key, value)     persisted
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
  return {
    host = ext("host"),
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
