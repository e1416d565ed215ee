-- @noindex
-- StepEdit transcripts: the words of a take with their times. Kept with the take in its
-- extension data (P_EXT:StepEdit_transcript, saved in the project and undone with it), so that
-- "Edit as text" shows them without transcribing again; written into the item's notes (REAPER
-- has notes on items, not on takes) and, as a setting, as take markers at word starts.
--
--   from_result(result, output_path) -> transcript | nil, why   of /stepedit/transcribe (reads
--                                       the sidecar file when the words are not in the result)
--   from_edit_result(result, language) -> transcript | nil   the words a text or fillers edit
--                                       left, in the result's time
--   stored(take)                     -> transcript | nil
--   for_slice(slice)                 -> the take's transcript if it is of what the item plays
--   store(take, slice, transcript, settings)   P_EXT, notes, markers (inside an undo block)
--   text(transcript)                 -> the words as a reader sees them
--   fillers_for(language, settings)  -> the filler words to send | nil (the engine's own list)
--
-- A transcript: {language, model, text, duration, words = {{word, start, stop, filler}, ...}}
-- with word times in seconds from the slice start; once stored also input, start, length (the
-- slice: which file, which range), section_offset and markers (whether markers were added).

local import = ...
local codec = import("codec")
local files = import("files")

local M = {}

local KEY = "P_EXT:StepEdit_transcript"
local FILLER_COLOR = { 230, 140, 40 } -- take markers of fillers stand out
local SAME_START_S, SAME_LENGTH_S = 0.001, 0.01

-------------------------------------------------------------------------------
-- Text
-------------------------------------------------------------------------------

local function is_cjk(code)
  return (code >= 0x3400 and code <= 0x9FFF) or (code >= 0xF900 and code <= 0xFAFF)
end

local function edge_codes(word)
  local ok, first = pcall(utf8.codepoint, word, 1)
  local last_at = utf8.offset(word, -1)
  local ok_last, last = pcall(utf8.codepoint, word, last_at or 1)
  return ok and first or 0, ok_last and last or 0
end

-- Words joined with spaces, except between two CJK words (as the engine joins them).
local function join_words(words)
  local out, previous_last = {}, nil
  for i, w in ipairs(words) do
    local first, last = edge_codes(w.word)
    if i > 1 and not (is_cjk(previous_last) and is_cjk(first)) then out[#out + 1] = " " end
    out[#out + 1] = w.word
    previous_last = last
  end
  return table.concat(out)
end

function M.text(transcript)
  return transcript.text or join_words(transcript.words)
end

-------------------------------------------------------------------------------
-- From the engine
-------------------------------------------------------------------------------

local function number(v) return type(v) == "number" and v == v end

-- The protocol's transcript object -> a transcript, or nil and why.
local function read_transcript(t)
  if type(t) ~= "table" or type(t.words) ~= "table" then
    return nil, "the engine's transcript holds no word list"
  end
  local words = {}
  for _, w in ipairs(t.words) do
    if type(w) ~= "table" or type(w.word) ~= "string" or not number(w.start)
        or not number(w["end"]) then
      return nil, "the engine's transcript holds a malformed word"
    end
    words[#words + 1] = { word = w.word, start = w.start, stop = w["end"],
                          filler = w.filler == true }
  end
  return {
    language = type(t.language) == "string" and t.language or "auto",
    model = type(t.model) == "string" and t.model or "",
    text = type(t.text) == "string" and t.text or join_words(words),
    duration = number(t.duration) and t.duration or nil,
    words = words,
  }
end

function M.from_result(result, output_path)
  local t = type(result) == "table" and result.transcript or nil
  if type(t) ~= "table" or result.words_in_file or type(t.words) ~= "table" then
    local data = type(output_path) == "string" and files.read_file(output_path)
    if not data then
      return nil, "the engine's transcript file is missing: " .. tostring(output_path)
    end
    local ok, decoded = pcall(codec.json_decode, data)
    if not ok or type(decoded) ~= "table" then
      return nil, "the engine's transcript file is not JSON: " .. output_path
    end
    t = type(decoded.transcript) == "table" and decoded.transcript or decoded
  end
  return read_transcript(t)
end

-- Words still spoken in a text or fillers edit's result (not deleted, masked or tags).
local SPOKEN = { kept = true, moved = true, replaced = true, new = true }

function M.from_edit_result(result, language)
  if type(result) ~= "table" or type(result.words) ~= "table" then return nil end
  local words = {}
  for _, w in ipairs(result.words) do
    if type(w) == "table" and SPOKEN[w.action] and type(w.word) == "string"
        and number(w.start) and number(w["end"]) then
      words[#words + 1] = { word = w.word, start = w.start, stop = w["end"], filler = false }
    end
  end
  if #words == 0 then return nil end
  return { language = language or "auto", model = "StepEdit edit result", words = words,
           text = join_words(words), duration = number(result.duration) and result.duration }
end

-------------------------------------------------------------------------------
-- Kept with the take
-------------------------------------------------------------------------------

local function ms(x) return math.floor(x * 1000 + 0.5) / 1000 end

local function encode(t)
  local words = codec.json_array()
  for _, w in ipairs(t.words) do
    words[#words + 1] = codec.json_array({ w.word, w.start, w.stop, w.filler and 1 or 0 })
  end
  return codec.json_encode({
    v = 1, language = t.language, model = t.model, text = M.text(t), duration = t.duration,
    input = t.input, start = t.start, length = t.length, section_offset = t.section_offset,
    markers = t.markers, words = words,
  })
end

function M.stored(take)
  local _, data = reaper.GetSetMediaItemTakeInfo_String(take, KEY, "", false)
  if data == "" then return nil end
  local ok, t = pcall(codec.json_decode, data)
  if not ok or type(t) ~= "table" or t.v ~= 1 or type(t.words) ~= "table" then return nil end
  local words = {}
  for _, w in ipairs(t.words) do
    words[#words + 1] = { word = w[1], start = w[2], stop = w[3], filler = w[4] == 1 }
  end
  t.words = words
  return t
end

function M.for_slice(slice)
  local t = M.stored(slice.take)
  if t and t.input == slice.input and number(t.start) and number(t.length)
      and math.abs(t.start - slice.start) < SAME_START_S
      and math.abs(t.length - slice.length) < SAME_LENGTH_S then
    return t
  end
end

-- Take markers are in the take's source time: the file's time less the section offset.
local function marker_position(t, w)
  return t.start - (t.section_offset or 0) + w.start
end

local function remove_markers(take, t)
  local ours = {}
  for _, w in ipairs(t.words) do
    ours[w.word] = ours[w.word] or {}
    table.insert(ours[w.word], marker_position(t, w))
  end
  for i = reaper.GetNumTakeMarkers(take) - 1, 0, -1 do
    local position, name = reaper.GetTakeMarker(take, i)
    for _, at in ipairs(ours[name] or {}) do
      if math.abs(at - position) < 1e-4 then
        reaper.DeleteTakeMarker(take, i)
        break
      end
    end
  end
end

local function add_markers(take, t)
  local filler_color = reaper.ColorToNative(table.unpack(FILLER_COLOR)) | 0x1000000
  for _, w in ipairs(t.words) do
    reaper.SetTakeMarker(take, -1, w.word, marker_position(t, w), w.filler and filler_color or 0)
  end
end

-- The notes keep what the user wrote: a transcript of one of the item's takes that ends them
-- is replaced, else the transcript goes after the user's notes.
local function write_notes(item, text)
  local _, notes = reaper.GetSetMediaItemInfo_String(item, "P_NOTES", "", false)
  local replaced = false
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetTake(item, i)
    local old = take and M.stored(take)
    local old_text = old and M.text(old) or ""
    if not replaced and old_text ~= "" and notes:sub(-#old_text) == old_text then
      notes, replaced = notes:sub(1, #notes - #old_text) .. text, true
    end
  end
  if not replaced then
    notes = notes:match("^%s*$") and text or (notes:gsub("%s+$", "") .. "\n\n" .. text)
  end
  reaper.GetSetMediaItemInfo_String(item, "P_NOTES", notes, true)
end

function M.store(take, slice, transcript, s)
  local previous = M.stored(take)
  if previous and previous.markers then remove_markers(take, previous) end
  local t = { words = {} }
  for key, value in pairs(transcript) do t[key] = t[key] or value end
  for i, w in ipairs(transcript.words) do -- to the millisecond, as stored (markers match)
    t.words[i] = { word = w.word, start = ms(w.start), stop = ms(w.stop), filler = w.filler }
  end
  t.input, t.start, t.length = slice.input, slice.start, slice.length
  t.section_offset, t.markers = slice.section_offset or 0, s.take_markers
  if t.markers then add_markers(take, t) end
  write_notes(reaper.GetMediaItemTake_Item(take), M.text(t))
  reaper.GetSetMediaItemTakeInfo_String(take, KEY, encode(t), true)
  return t
end

-------------------------------------------------------------------------------
-- Fillers
-------------------------------------------------------------------------------

-- The settings' list for the language; with "auto", the lists of every language that has one.
function M.fillers_for(language, s)
  local lists = language == "auto" and { s.fillers.en, s.fillers.zh } or { s.fillers[language] }
  local out = codec.json_array()
  for _, list in ipairs(lists) do
    for _, word in ipairs(list or {}) do out[#out + 1] = word end
  end
  return #out > 0 and out or nil
end

return M
