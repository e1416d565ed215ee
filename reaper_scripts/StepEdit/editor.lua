-- @noindex
-- StepEdit text editor for "Edit as text": a ReaImGui window with a multi-line text box when
-- ReaImGui is installed, else REAPER's GetUserInputs dialog.
--
--   edit(opts, on_done)   opts = {title, text, original, help}; calls on_done(text) on Apply,
--                         on_done(nil) on Cancel or when the text does not fit the dialog
--                         (after saying why)
--   fallback_lines(text)  -> lines, separator | nil, why   how the dialog shows a text
--   squash(text)          -> the text with runs of white space as one space
--
-- The GetUserInputs fallback: at most 16 fields, and REAPER hands the values back in one
-- buffer of 1,024 bytes (ReaScript's default size for such a string), so the text is spread
-- over up to 16 one-line fields separated by a character the text does not hold (commas in
-- the text are fine), and a text is refused beyond FALLBACK_MAX_BYTES, leaving room to type.

local import = ...
local ui = import("ui")

local M = {}

local MAX_FIELDS = 16                 -- GetUserInputs: "Maximum fields is 16"
local BUFFER_BYTES = 1023             -- what GetUserInputs can return (1,024 with the NUL)
M.FALLBACK_MAX_BYTES = 800            -- the text shown; the rest is room for the user's words
local SPARE_FIELDS = 2                -- empty lines to type more into
local SEPARATORS = { "|", "~", "^", "`" }

-- Runs of spaces and line breaks as one space, none at the ends.
function M.squash(text)
  return (text:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end
local squash = M.squash

-------------------------------------------------------------------------------
-- ReaImGui
-------------------------------------------------------------------------------

local function imgui_editor(ImGui, opts, on_done)
  local ctx = ImGui.CreateContext("StepEdit text")
  local buffer = opts.text
  local function frame()
    ImGui.SetNextWindowSize(ctx, 640, 360, ImGui.Cond_FirstUseEver)
    local visible, open = ImGui.Begin(ctx, opts.title, true)
    local choice
    if visible then
      ImGui.TextWrapped(ctx, opts.help)
      local _, text = ImGui.InputTextMultiline(ctx, "##text", buffer, -1,
        -ImGui.GetFrameHeightWithSpacing(ctx))
      buffer = text
      if ImGui.Button(ctx, "Apply") then choice = "apply" end
      ImGui.SameLine(ctx)
      if ImGui.Button(ctx, "Cancel") then choice = "cancel" end
      if opts.original and buffer ~= opts.original then
        ImGui.SameLine(ctx)
        if ImGui.Button(ctx, "Back to the transcript") then buffer = opts.original end
      end
      ImGui.End(ctx)
    end
    if choice == "apply" then on_done(squash(buffer)) return false end
    if choice == "cancel" or not open then on_done(nil) return false end
    return true
  end
  local function tick()
    local ok, again = xpcall(frame, debug.traceback)
    if not ok then
      ui.msg("StepEdit stopped after an internal error; nothing was changed.\n\n" ..
        tostring(again))
    elseif again then
      reaper.defer(tick)
    end
  end
  reaper.defer(tick)
end

-------------------------------------------------------------------------------
-- GetUserInputs
-------------------------------------------------------------------------------

function M.fallback_lines(text)
  text = squash(text)
  if #text > M.FALLBACK_MAX_BYTES then
    return nil, string.format("The text has %d bytes; REAPER's plain input dialog holds " ..
      "about %d with room to type.", #text, M.FALLBACK_MAX_BYTES)
  end
  local separator
  for _, candidate in ipairs(SEPARATORS) do
    if not text:find(candidate, 1, true) then separator = candidate break end
  end
  if not separator then
    return nil, "The text holds every character the plain input dialog could separate " ..
      "lines with (" .. table.concat(SEPARATORS, " ") .. ")."
  end
  local width = math.max(48, math.ceil(#text / (MAX_FIELDS - SPARE_FIELDS)))
  local lines = { "" }
  for word in text:gmatch("%S+") do
    local line = lines[#lines]
    if line ~= "" and #line + 1 + #word > width then lines[#lines + 1] = word
    else lines[#lines] = line == "" and word or line .. " " .. word end
  end
  while #lines > MAX_FIELDS - SPARE_FIELDS do -- long words: join the last lines
    lines[#lines - 1] = lines[#lines - 1] .. " " .. table.remove(lines)
  end
  for _ = 1, SPARE_FIELDS do lines[#lines + 1] = "" end
  return lines, separator
end

local function fallback_editor(opts, on_done)
  local lines, separator = M.fallback_lines(opts.text)
  if not lines then
    ui.msg(separator .. "\n\nInstall ReaImGui (ReaTeam Extensions, with ReaPack) to edit " ..
      "any length of text, or split the item and edit a part. Nothing was changed.",
      "StepEdit: text too long")
    return on_done(nil)
  end
  local captions = {}
  for i = 1, #lines do captions[i] = "Line " .. i end
  local ok, csv = reaper.GetUserInputs(opts.title, #lines, table.concat(captions, ",") ..
    ",separator=" .. separator .. ",extrawidth=460", table.concat(lines, separator))
  if not ok then return on_done(nil) end
  if #csv >= BUFFER_BYTES then
    ui.msg("The edited text is longer than REAPER's plain input dialog can return " ..
      "(1,023 bytes), so part of it was lost; nothing was sent.\n\nInstall ReaImGui " ..
      "(ReaTeam Extensions, with ReaPack) to edit longer texts.", "StepEdit: text too long")
    return on_done(nil)
  end
  local parts = {}
  for value in (csv .. separator):gmatch("(.-)" .. separator:gsub("%p", "%%%0")) do
    parts[#parts + 1] = value
  end
  return on_done(squash(table.concat(parts, " ")))
end

function M.edit(opts, on_done)
  local ImGui = ui.imgui()
  if ImGui then return imgui_editor(ImGui, opts, on_done) end
  return fallback_editor(opts, on_done)
end

return M
