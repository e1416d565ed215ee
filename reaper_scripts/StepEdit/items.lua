-- @noindex
-- StepEdit items: what part of which file a selected item plays, and names for takes.
--
--   item_slice(item)          -> slice | nil, reason   (the source range the item plays)
--   edit_label(edit)          -> "happy", "remove silences", ...
--   take_name(edit, passes)   -> "StepEdit happy ×2"
--   describe_item(slice_or_item) -> "\"voice.wav\" at 0:01.5" (for messages)
--   sensitive_spans(slice)    -> {{start, end}, ...} file seconds under "sensitive" regions

local import = ...
local files = import("files")

local M = {}

local TIMES = "\u{D7}" -- the multiplication sign in take names ("happy ×2")

-------------------------------------------------------------------------------
-- Edit labels and take names
-------------------------------------------------------------------------------

local TYPE_LABELS = { vad = "remove silences", denoise = "denoise", clone = "clone",
                      fillers = "remove fillers", text = "text edit" }

function M.edit_label(edit)
  local option = edit.option or ""
  if edit.type == "text" then return TYPE_LABELS.text end -- its option is the mask sound
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
-- Items, takes and their GUIDs
-------------------------------------------------------------------------------

function M.take_guid(take)
  return select(2, reaper.GetSetMediaItemTakeInfo_String(take, "GUID", "", false))
end

function M.item_guid(item)
  return select(2, reaper.GetSetMediaItemInfo_String(item, "GUID", "", false))
end

function M.name_of_take(take)
  return select(2, reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false))
end

function M.set_take_name(take, name)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", name, true)
end

function M.selected_items()
  local items = {}
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    items[#items + 1] = reaper.GetSelectedMediaItem(0, i)
  end
  return items
end

function M.find_item_by_guid(guid)
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    if M.item_guid(item) == guid then return item end
  end
end

local function clock(seconds)
  return string.format("%d:%04.1f", seconds // 60, seconds % 60)
end

function M.describe_item(slice_or_item)
  local item = slice_or_item.item or slice_or_item
  local take = reaper.ValidatePtr2(0, item, "MediaItem*") and reaper.GetActiveTake(item)
  local name = slice_or_item.name or (take and M.name_of_take(take)) or "empty item"
  local position = slice_or_item.position or reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  return string.format("\"%s\" at %s", name, clock(position))
end

-------------------------------------------------------------------------------
-- Item -> the source range it plays
-------------------------------------------------------------------------------

-- Returns {input, start, length, playrate, ...} or nil and why the item cannot be edited.
-- section_offset: where the take's source starts in the file (SECTION wrappers), so that a
-- time t in the file is t - section_offset in the take's source time (take markers).
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
  if not files.is_absolute(file) then
    file = files.join(files.dirname(select(2, reaper.EnumProjects(-1, ""))), file)
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
    playrate = playrate, item_guid = M.item_guid(item), take_guid = M.take_guid(take),
    section_offset = offset,
    name = M.name_of_take(take), position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    lead_in = (start - (reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS") + offset))
      / playrate, -- item time before the first sample sent (item starts before its source)
  }
end

-- The parts of the slice under project regions named "sensitive", in seconds of the file
-- (what `stepedit send --sensitive` masks before the audio leaves this computer).
function M.sensitive_spans(slice)
  local spans, i = {}, 0
  local item_start = slice.position + slice.lead_in
  local function file_time(t)
    local into = math.max(0, math.min(slice.length, (t - item_start) * slice.playrate))
    return slice.start + into
  end
  while true do
    local found, is_region, from, to, name = reaper.EnumProjectMarkers3(0, i)
    if found == 0 then break end
    if is_region and name:lower():find("sensitive", 1, true) then
      local a, b = file_time(from), file_time(to)
      if b > a then spans[#spans + 1] = { a, b } end
    end
    i = i + 1
  end
  return spans
end

-- Where the edit cursor is in the slice's source time, or nil when it is outside the item.
function M.cursor_position(slice)
  local cursor = reaper.GetCursorPosition()
  local item_length = reaper.GetMediaItemInfo_Value(slice.item, "D_LENGTH")
  local into = cursor - slice.position
  if into < 0 or into > item_length then return nil end
  return math.max(0, math.min(slice.length, (into - slice.lead_in) * slice.playrate))
end

return M
